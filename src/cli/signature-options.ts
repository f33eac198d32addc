// The options that fetch release signatures (`--signature-store`, `--release-keyring`,
// `--allow-unsigned-releases`), shared by `bundle plan` and `bundle create`, and applying them to a plan.

import type { Command } from 'commander';
import type { BundlePlan } from '../plan/plan.js';
import type { SignatureOptions } from '../plan/release-signatures.js';
import { UserError } from '../util/errors.js';
import { optionOrigin } from './spec-options.js';

export interface SignatureOptionValues {
  readonly signatureStore?: string;
  readonly releaseKeyring?: string;
  readonly allowUnsignedReleases?: boolean;
}

export function addSignatureOptions(command: Command): Command {
  return command
    .option('--signature-store <url>', 'fetch each release\'s signatures from this store (URL/sha256=<hex>/signature-N), e.g. https://mirror.openshift.com/pub/openshift-v4/signatures/openshift/release')
    .option('--release-keyring <file>', 'with --signature-store: also verify each signature with gpgv against this keyring (binary or armored)')
    .option('--allow-unsigned-releases', 'with --signature-store: bundle a release the store has no signature for instead of refusing it');
}

/**
 * Checked before any planning or download: the store URL, the keyring's readability, and that the other two
 * options come with a store. Undefined when no store is asked for. `given` is the command line before --spec
 * filled it in: an error about a value the spec gave names its key and file, as for `since`.
 */
export async function checkSignatureOptions(options: SignatureOptionValues, given: SignatureOptionValues & { readonly spec?: string } = options): Promise<SignatureOptions | undefined> {
  if (options.signatureStore === undefined) {
    if (options.releaseKeyring !== undefined || options.allowUnsignedReleases) {
      throw new UserError('USAGE', `${options.releaseKeyring !== undefined ? '--release-keyring' : '--allow-unsigned-releases'} goes with --signature-store URL`, { subject: { kind: 'option', name: '--signature-store' } });
    }
    return undefined;
  }
  const storeOrigin = optionOrigin(given, 'signatureStore', 'signature-store');
  const { parseSignatureStore } = await import('../release/signature-store.js');
  const store = parseSignatureStore(options.signatureStore, storeOrigin);
  if (options.releaseKeyring === undefined) return { store, storeOrigin, ...(options.allowUnsignedReleases ? { allowUnsigned: true } : {}) };
  // Where the keyring came from goes with it: errors raised while planning (a signature it does not verify) name it.
  const keyringOrigin = optionOrigin(given, 'releaseKeyring', 'release-keyring');
  const { readKeyringHead } = await import('../release/release-keyring.js');
  await readKeyringHead(options.releaseKeyring, keyringOrigin);
  return { store, storeOrigin, keyring: options.releaseKeyring, keyringOrigin, ...(options.allowUnsignedReleases ? { allowUnsigned: true } : {}) };
}

/** The plan with its releases' signatures when a store was asked for; the plan as it is otherwise. */
export async function applySignatureOptions(plan: BundlePlan, checked: SignatureOptions | undefined, signal?: AbortSignal): Promise<BundlePlan> {
  if (checked === undefined) return plan;
  const { withReleaseSignatures } = await import('../plan/release-signatures.js');
  return withReleaseSignatures(plan, { ...checked, ...(signal ? { signal } : {}) });
}
