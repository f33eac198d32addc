// Registry credentials from containers-auth.json(5) files (and Docker's config.json, same "auths" shape),
// looked up per repository, most specific key first, the way containers/image does; `credHelpers` and
// `credsStore` entries ask a docker-credential-helpers program (docker-credential-NAME get).

import { execFile } from 'node:child_process';
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
  /** The credential for a repository at a given host (the endpoint's host and path); may run a helper. */
  lookup(repo: Repository): Promise<Credential | undefined>;
}

interface AuthFile {
  readonly file: string;
  /** Normalised key ("host" or "host/ns/…") → credential. */
  readonly entries: ReadonlyMap<string, Credential>;
  /** Normalised host → helper NAME (docker-credential-NAME), from "credHelpers". */
  readonly helpers: ReadonlyMap<string, string>;
  /** The default helper for hosts without an entry, from "credsStore". */
  readonly store: string | undefined;
}

export const EMPTY_CREDENTIALS: CredentialStore = { files: [], lookup: async () => undefined };

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
    subject: { kind: 'path', name: file },
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
    throw new UserError('AUTHFILE_INVALID', `cannot read credentials file ${file}: ${errnoCode(err) ?? (err as Error).message}`, { subject: { kind: 'path', name: file } });
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw malformed(file, `not valid JSON (${(err as Error).message})`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw malformed(file, 'not a JSON object');
  const { auths, credHelpers, credsStore } = doc as { auths?: unknown; credHelpers?: unknown; credsStore?: unknown };
  const entries = new Map<string, Credential>();
  if (auths !== undefined) {
    if (typeof auths !== 'object' || auths === null || Array.isArray(auths)) throw malformed(file, '"auths" is not an object');
    for (const [key, entry] of Object.entries(auths)) {
      const credential = decodeEntry(file, key, entry);
      const normalised = normaliseAuthKey(key);
      // Two spellings of one key (docker.io and index.docker.io): the first written wins, like a map lookup would.
      if (credential && !entries.has(normalised)) entries.set(normalised, credential);
    }
  }
  const helpers = new Map<string, string>();
  if (credHelpers !== undefined) {
    if (typeof credHelpers !== 'object' || credHelpers === null || Array.isArray(credHelpers)) throw malformed(file, '"credHelpers" is not an object');
    for (const [key, name] of Object.entries(credHelpers)) {
      if (typeof name !== 'string' || !HELPER_NAME.test(name)) throw malformed(file, `credHelpers["${key}"] is not a helper name (docker-credential-NAME)`);
      helpers.set(normaliseAuthKey(key), name);
    }
  }
  if (credsStore !== undefined && (typeof credsStore !== 'string' || (credsStore !== '' && !HELPER_NAME.test(credsStore)))) {
    throw malformed(file, '"credsStore" is not a helper name (docker-credential-NAME)');
  }
  return { file, entries, helpers, store: credsStore || undefined };
}

/** A helper name becomes part of a program name: no path separators, no option-like leading dash. */
const HELPER_NAME = /^[A-Za-z0-9_.][A-Za-z0-9_.-]*$/;
const HELPER_TIMEOUT_MS = 60_000;
/** What docker-credential-helpers print (with a non-zero exit) when they hold nothing for the server. */
const HELPER_NOT_FOUND = 'credentials not found in native keychain';

function helperError(program: string, host: string, origin: string, why: string, hint: string): UserError {
  return new UserError('CREDENTIAL_HELPER_FAILED', `credential helper ${program} (${origin}) failed for registry ${host}: ${why}`, { hint, subject: { kind: 'registry', name: host } });
}

/**
 * `docker-credential-NAME get` with the registry host on stdin, per the docker-credential-helpers protocol:
 * {"Username","Secret"} on stdout; the user "<token>" means Secret is an identity (refresh) token.
 * "Not found" is no credential (an anonymous pull may still work); anything else is an error naming both.
 */
export function credentialFromHelper(name: string, host: string, origin: string): Promise<Credential | undefined> {
  const program = `docker-credential-${name}`;
  return new Promise((resolve, reject) => {
    const child = execFile(program, ['get'], { timeout: HELPER_TIMEOUT_MS, maxBuffer: 1024 * 1024 }, (err, stdout, stderr) => {
      const said = (stdout.trim() || stderr.trim()).split('\n')[0] ?? '';
      if (err) {
        if (said === HELPER_NOT_FOUND) return resolve(undefined);
        if (errnoCode(err) === 'ENOENT') {
          return reject(helperError(program, host, origin, 'it is not on PATH', `install ${program}, or remove the entry from ${origin.split(' ')[0]} and give --authfile FILE with the credentials`));
        }
        const how = err.killed ? `timed out after ${HELPER_TIMEOUT_MS / 1000} s` : `exit code ${String((err as { code?: unknown }).code)}`;
        return reject(helperError(program, host, origin, `${how}${said ? `: ${said}` : ''}`, `run "echo ${host} | ${program} get" to see why (a locked keychain, or not logged in: podman login ${host})`));
      }
      let doc: unknown;
      try {
        doc = JSON.parse(stdout);
      } catch {
        return reject(helperError(program, host, origin, 'its output is not JSON', `check that ${program} speaks the docker-credential-helpers protocol`));
      }
      const { Username, Secret } = (doc ?? {}) as { Username?: unknown; Secret?: unknown };
      if (typeof Username !== 'string' || typeof Secret !== 'string') {
        return reject(helperError(program, host, origin, 'its output has no "Username" and "Secret" strings', `check that ${program} speaks the docker-credential-helpers protocol`));
      }
      const source = `${origin}: ${program}`;
      resolve(Username === '<token>' ? { username: '', identityToken: Secret, source } : { username: Username, password: Secret, source });
    });
    child.stdin?.on('error', () => undefined); // a helper that exits without reading stdin is judged by its exit code
    child.stdin?.end(host);
  });
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
  // One helper run per helper and host: every request of a pull asks again.
  const asked = new Map<string, Promise<Credential | undefined>>();
  const ask = (name: string, host: string, origin: string): Promise<Credential | undefined> => {
    const key = `${name}\0${host}`;
    let answer = asked.get(key);
    if (!answer) {
      answer = credentialFromHelper(name, host, origin);
      asked.set(key, answer);
    }
    return answer;
  };
  return {
    files,
    async lookup(repo: Repository): Promise<Credential | undefined> {
      const host = normaliseHost(repo.domain);
      const keys = lookupKeys(repo);
      // The first file with any match wins, as in containers/image: its credHelpers entry for the host
      // (helpers know hosts, not namespaces), then its auths keys, then its credsStore as Docker does.
      for (const authFile of loaded) {
        const helper = authFile.helpers.get(host);
        if (helper !== undefined) return ask(helper, host, `${authFile.file} credHelpers["${host}"]`);
        for (const key of keys) {
          const credential = authFile.entries.get(key);
          if (credential) return credential;
        }
        if (authFile.store !== undefined) {
          const credential = await ask(authFile.store, host, `${authFile.file} credsStore`);
          if (credential) return credential;
        }
      }
      return undefined;
    },
  };
}
