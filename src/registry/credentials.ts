// Registry credentials from containers-auth.json(5) files (and Docker's config.json, same "auths" shape),
// looked up per repository, most specific key first, the way containers/image does.

import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DOCKER_HUB, type Repository } from '../oci/reference.js';
import { UserError, errnoCode } from '../util/errors.js';

export interface Credential {
  readonly username: string;
  /** Absent when only an identity (refresh) token is known. */
  readonly password?: string;
  /** An OAuth2 refresh token, exchanged with grant_type=refresh_token at the token realm. */
  readonly identityToken?: string;
  /** The file and key it came from, for messages. */
  readonly source: string;
}

export interface CredentialStore {
  /** The files consulted, in order (existing or not), for messages. */
  readonly files: readonly string[];
  /** The credential for a repository at a given host (the endpoint's host and path). */
  lookup(repo: Repository): Credential | undefined;
}

interface AuthFile {
  readonly file: string;
  /** Normalised key ("host" or "host/ns/…") → credential. */
  readonly entries: ReadonlyMap<string, Credential>;
}

export const EMPTY_CREDENTIALS: CredentialStore = { files: [], lookup: () => undefined };

/** Docker Hub answers to several names; auth files use any of them. */
function normaliseHost(host: string): string {
  return host === 'index.docker.io' || host === 'registry-1.docker.io' ? DOCKER_HUB : host;
}

/**
 * A key as containers/image normalises it: Docker's legacy "https://index.docker.io/v1/" keys keep only
 * the host; plain keys may name a namespace or repository.
 */
export function normaliseAuthKey(key: string): string {
  const schemeless = key.replace(/^https?:\/\//, '');
  const trimmed = schemeless !== key ? schemeless.split('/')[0]! : schemeless.replace(/\/+$/, '');
  const slash = trimmed.indexOf('/');
  return slash === -1 ? normaliseHost(trimmed) : normaliseHost(trimmed.slice(0, slash)) + trimmed.slice(slash);
}

function malformed(file: string, why: string): UserError {
  return new UserError('AUTHFILE_INVALID', `credentials file ${file}: ${why}`, {
    hint: 'the format is containers-auth.json(5): {"auths":{"HOST[/NAMESPACE]":{"auth":"base64(user:password)"}}}',
    exitCode: 2,
  });
}

function decodeEntry(file: string, key: string, entry: unknown): Credential | undefined {
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw malformed(file, `auths["${key}"] is not an object`);
  const { auth, identitytoken } = entry as { auth?: unknown; identitytoken?: unknown };
  if (auth !== undefined && typeof auth !== 'string') throw malformed(file, `auths["${key}"].auth is not a string`);
  if (identitytoken !== undefined && typeof identitytoken !== 'string') throw malformed(file, `auths["${key}"].identitytoken is not a string`);
  let username = '';
  let password: string | undefined;
  if (auth) {
    const decoded = Buffer.from(auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon === -1) throw malformed(file, `auths["${key}"].auth is not base64 of "user:password"`);
    username = decoded.slice(0, colon);
    password = decoded.slice(colon + 1);
  }
  const source = `${file} (${key})`;
  if (identitytoken) return { username, identityToken: identitytoken, source };
  if (password === undefined) return undefined; // e.g. a credHelpers-only entry: nothing we can use
  return { username, password, source };
}

async function readAuthFile(file: string, required: boolean): Promise<AuthFile | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if (!required && errnoCode(err) === 'ENOENT') return undefined;
    throw new UserError('AUTHFILE_INVALID', `cannot read credentials file ${file}: ${errnoCode(err) ?? (err as Error).message}`, { exitCode: 2 });
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw malformed(file, `not valid JSON (${(err as Error).message})`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw malformed(file, 'not a JSON object');
  const auths = (doc as { auths?: unknown }).auths;
  const entries = new Map<string, Credential>();
  if (auths === undefined) return { file, entries };
  if (typeof auths !== 'object' || auths === null || Array.isArray(auths)) throw malformed(file, '"auths" is not an object');
  for (const [key, entry] of Object.entries(auths)) {
    const credential = decodeEntry(file, key, entry);
    const normalised = normaliseAuthKey(key);
    // Two spellings of one key (docker.io and index.docker.io): the first written wins, like a map lookup would.
    if (credential && !entries.has(normalised)) entries.set(normalised, credential);
  }
  return { file, entries };
}

/** The files consulted, in containers-auth.json(5) order. */
export function authFilePaths(options: { authfile?: string; env?: NodeJS.ProcessEnv; home?: string }): { files: string[]; explicit: boolean } {
  const env = options.env ?? process.env;
  const explicit = options.authfile ?? (env.REGISTRY_AUTH_FILE || undefined);
  if (explicit !== undefined) return { files: [explicit], explicit: true };
  const home = options.home ?? os.homedir();
  const files: string[] = [];
  if (env.XDG_RUNTIME_DIR) files.push(path.join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json'));
  files.push(path.join(home, '.config', 'containers', 'auth.json'));
  files.push(env.DOCKER_CONFIG ? path.join(env.DOCKER_CONFIG, 'config.json') : path.join(home, '.docker', 'config.json'));
  return { files, explicit: false };
}

/** Keys to try for a repository, most specific first: host/a/b/img, host/a/b, host/a, host. */
export function lookupKeys(repo: Repository): string[] {
  const host = normaliseHost(repo.domain);
  const parts = repo.path.split('/');
  const keys: string[] = [];
  for (let n = parts.length; n > 0; n--) keys.push(`${host}/${parts.slice(0, n).join('/')}`);
  keys.push(host);
  return keys;
}

export async function loadCredentials(options: { authfile?: string; env?: NodeJS.ProcessEnv; home?: string } = {}): Promise<CredentialStore> {
  const { files, explicit } = authFilePaths(options);
  const loaded: AuthFile[] = [];
  for (const file of files) {
    const authFile = await readAuthFile(file, explicit);
    if (authFile) loaded.push(authFile);
  }
  return {
    files,
    lookup(repo: Repository): Credential | undefined {
      const keys = lookupKeys(repo);
      // The first file with any matching key wins, as in containers/image.
      for (const authFile of loaded) {
        for (const key of keys) {
          const credential = authFile.entries.get(key);
          if (credential) return credential;
        }
      }
      return undefined;
    },
  };
}
