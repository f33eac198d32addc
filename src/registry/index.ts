// The registry client's public API: what the CLI and the bundle builder import, plus the one-call setup
// from command-line options.

import { RegistryClient, type RegistryClientOptions } from './client.js';
import { loadCredentials } from './credentials.js';
import { loadRegistriesConf } from './registries-conf.js';

export { RegistryClient, type RegistryClientOptions, type RegistryTimeouts } from './client.js';
export { loadCredentials, EMPTY_CREDENTIALS, type Credential, type CredentialStore } from './credentials.js';
export { loadRegistriesConf, parseRegistriesConf, endpointsFor, EMPTY_REGISTRIES_CONF, type Endpoint, type RegistriesConf } from './registries-conf.js';
export { DEFAULT_RETRY_POLICY, type RetryPolicy } from './retry.js';
export type { ImageSource, FetchedManifest, BlobStreamOptions } from './source.js';

/** A client set up from `--registries-conf FILE` and `--authfile FILE` (or REGISTRY_AUTH_FILE and the default files). */
export async function createImageSource(
  options: { registriesConfFile?: string; authfile?: string } & Omit<RegistryClientOptions, 'registriesConf' | 'credentials'> = {},
): Promise<RegistryClient> {
  const { registriesConfFile, authfile, ...rest } = options;
  const [registriesConf, credentials] = await Promise.all([
    loadRegistriesConf(registriesConfFile),
    loadCredentials(authfile !== undefined ? { authfile } : {}),
  ]);
  return new RegistryClient({ ...rest, registriesConf, credentials });
}
