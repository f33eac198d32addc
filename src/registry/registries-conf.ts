// containers-registries.conf(5) v2: which hosts a repository is actually fetched from (mirrors, then the
// primary location unless blocked). The image keeps its name; only where its bytes come from changes.

import { readFile } from 'node:fs/promises';
import TOML from '@iarna/toml';
import { DOCKER_HUB, parseReference, type Reference, type Repository } from '../oci/reference.js';
import { UserError, errnoCode } from '../util/errors.js';

/** The host Docker Hub's registry API really lives on (docker.io itself serves no /v2/). */
export const DOCKER_HUB_API_HOST = 'registry-1.docker.io';

export type PullFromMirror = 'all' | 'digest-only' | 'tag-only';

export interface MirrorConf {
  readonly location: string;
  readonly insecure: boolean;
  readonly pullFromMirror: PullFromMirror;
}

export interface RegistryConf {
  /** "host[:port][/ns…]" or "*.domain"; defaults to location. */
  readonly prefix: string;
  /** Empty only for wildcard prefixes (then the reference is used unchanged). */
  readonly location: string;
  readonly insecure: boolean;
  readonly blocked: boolean;
  readonly mirrorByDigestOnly: boolean;
  readonly mirrors: readonly MirrorConf[];
}

export interface RegistriesConf {
  /** Where it was read from, for messages; undefined for the empty default. */
  readonly file?: string;
  readonly registries: readonly RegistryConf[];
}

/** One place to fetch a repository from. */
export interface Endpoint {
  /** "127.0.0.1:5000", "quay.io"; docker.io is given as registry-1.docker.io. */
  readonly host: string;
  /** The repository's path at this endpoint. */
  readonly path: string;
  /** Plain HTTP or unverified TLS allowed. */
  readonly insecure: boolean;
  readonly mirror: boolean;
}

export const EMPTY_REGISTRIES_CONF: RegistriesConf = { registries: [] };

function badValue(file: string, key: string, why: string): UserError {
  return new UserError('REGISTRIES_CONF_INVALID', `${file}: ${key}: ${why}`, {
    hint: 'see containers-registries.conf(5) for the v2 format',
    exitCode: 2,
  });
}

type Table = Record<string, unknown>;

function isTable(v: unknown): v is Table {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

/** A TOML value for messages; JSON.stringify throws on the BigInt @iarna/toml returns for integers past 2^53. */
function shown(v: unknown): string {
  return typeof v === 'bigint' ? String(v) : JSON.stringify(v);
}

function optionalBoolean(table: Table, key: string, file: string, where: string): boolean {
  const v = table[key];
  if (v === undefined) return false;
  if (typeof v !== 'boolean') throw badValue(file, `${where}.${key}`, `must be true or false, not ${shown(v)}`);
  return v;
}

function optionalString(table: Table, key: string, file: string, where: string): string {
  const v = table[key];
  if (v === undefined) return '';
  if (typeof v !== 'string') throw badValue(file, `${where}.${key}`, `must be a string, not ${shown(v)}`);
  return v;
}

/** Like containers/image: trailing slashes dropped, URL schemes refused. */
function parseLocation(text: string, file: string, key: string): string {
  const trimmed = text.replace(/\/+$/, '');
  if (/^https?:\/\//.test(trimmed)) throw badValue(file, key, `"${text}": URI schemes are not supported, write host[:port][/namespace]`);
  return trimmed;
}

function isWildcardPrefix(prefix: string): boolean {
  return prefix.startsWith('*.');
}

function parseMirror(v: unknown, file: string, where: string, registry: { mirrorByDigestOnly: boolean }): MirrorConf {
  if (!isTable(v)) throw badValue(file, where, 'must be a table ([[registry.mirror]])');
  const location = parseLocation(optionalString(v, 'location', file, where), file, `${where}.location`);
  if (location === '') throw badValue(file, `${where}.location`, 'a mirror needs a location');
  const pull = optionalString(v, 'pull-from-mirror', file, where);
  if (pull !== '' && pull !== 'all' && pull !== 'digest-only' && pull !== 'tag-only') {
    throw badValue(file, `${where}.pull-from-mirror`, `"${pull}" is not one of "all", "digest-only", "tag-only"`);
  }
  if (registry.mirrorByDigestOnly && pull !== '' && pull !== 'all') {
    throw badValue(file, `${where}.pull-from-mirror`, 'cannot be set when the registry sets mirror-by-digest-only');
  }
  return {
    location,
    insecure: optionalBoolean(v, 'insecure', file, where),
    pullFromMirror: registry.mirrorByDigestOnly ? 'digest-only' : pull === '' ? 'all' : pull,
  };
}

function parseRegistry(v: unknown, file: string, where: string): RegistryConf {
  if (!isTable(v)) throw badValue(file, where, 'must be a table ([[registry]])');
  const location = parseLocation(optionalString(v, 'location', file, where), file, `${where}.location`);
  const prefix = optionalString(v, 'prefix', file, where).replace(/\/+$/, '') || location;
  if (prefix === '') throw badValue(file, where, 'needs a location or a prefix');
  if (prefix.includes('*') && !/^\*\.[^*/:@]+$/.test(prefix)) {
    throw badValue(file, `${where}.prefix`, `"${prefix}": a wildcard is only allowed as "*.domain" with nothing after the domain`);
  }
  if (location === '' && !isWildcardPrefix(prefix)) throw badValue(file, `${where}.location`, 'may be empty only with a "*.domain" prefix');
  const mirrorByDigestOnly = optionalBoolean(v, 'mirror-by-digest-only', file, where);
  const mirrorList = v.mirror ?? [];
  if (!Array.isArray(mirrorList)) throw badValue(file, `${where}.mirror`, 'must be an array of tables ([[registry.mirror]])');
  return {
    prefix,
    location,
    insecure: optionalBoolean(v, 'insecure', file, where),
    blocked: optionalBoolean(v, 'blocked', file, where),
    mirrorByDigestOnly,
    mirrors: mirrorList.map((m, i) => parseMirror(m, file, `${where}.mirror[${i}]`, { mirrorByDigestOnly })),
  };
}

/** Parses registries.conf text; `file` only names it in errors. */
export function parseRegistriesConf(text: string, file: string): RegistriesConf {
  let doc: Table;
  try {
    doc = TOML.parse(text) as Table;
  } catch (err) {
    const where = err && typeof err === 'object' && 'line' in err ? ` (line ${Number((err as { line: number }).line) + 1})` : '';
    throw new UserError('REGISTRIES_CONF_INVALID', `${file}: not valid TOML${where}: ${(err as Error).message.split('\n')[0]}`, { exitCode: 2 });
  }
  // unqualified-search-registries, aliases, short-name-mode: we only ever pull fully qualified names.
  if (doc.registries !== undefined) {
    throw badValue(file, 'registries', 'the v1 format ([registries.search] …) is not supported; write [[registry]] tables (v2)');
  }
  const list = doc.registry ?? [];
  if (!Array.isArray(list)) throw badValue(file, 'registry', 'must be an array of tables ([[registry]])');
  const registries = list.map((r, i) => parseRegistry(r, file, `registry[${i}]`));
  const seen = new Set<string>();
  for (const r of registries) {
    if (seen.has(r.prefix)) throw badValue(file, 'registry', `prefix "${r.prefix}" is defined more than once`);
    seen.add(r.prefix);
  }
  return { file, registries };
}

/** Reads `--registries-conf FILE`; without a file every repository is fetched from its own host. */
export async function loadRegistriesConf(file?: string): Promise<RegistriesConf> {
  if (file === undefined) return EMPTY_REGISTRIES_CONF;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new UserError('REGISTRIES_CONF_INVALID', `cannot read registries configuration ${file}: ${errnoCode(err) ?? (err as Error).message}`, { exitCode: 2 });
  }
  return parseRegistriesConf(text, file);
}

/**
 * How many characters of `name` the prefix matches, or -1: a plain prefix must end at a separator
 * (":", "/", "@" or the end), a "*.domain" prefix matches any subdomain of the name's host.
 */
export function prefixMatchLength(name: string, prefix: string): number {
  if (isWildcardPrefix(prefix)) {
    const suffix = prefix.slice(1); // ".domain"
    const hostEnd = name.search(/[/@]/);
    const host = hostEnd === -1 ? name : name.slice(0, hostEnd);
    const hostName = host.replace(/:\d+$/, '');
    if (!hostName.endsWith(suffix) || hostName.length === suffix.length) return -1;
    return hostName.length;
  }
  if (!name.startsWith(prefix)) return -1;
  if (name.length === prefix.length) return prefix.length;
  const next = name[prefix.length];
  return next === '/' || next === ':' || next === '@' ? prefix.length : -1;
}

/** The name registries.conf prefixes are matched against: "host/path[:tag][@digest]". */
function matchName(repo: Repository | Reference): string {
  const ref = repo as Reference;
  return `${repo.domain}/${repo.path}${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest !== undefined ? `@${ref.digest}` : ''}`;
}

/** The `[[registry]]` table whose prefix matches `repo` longest, if any. */
export function registryFor(conf: RegistriesConf, repo: Repository | Reference): RegistryConf | undefined {
  const name = matchName(repo);
  let best: RegistryConf | undefined;
  let bestLength = -1;
  for (const r of conf.registries) {
    const length = prefixMatchLength(name, r.prefix);
    if (length > bestLength) {
      best = r;
      bestLength = length;
    }
  }
  return best;
}

export function apiHost(domain: string): string {
  return domain === DOCKER_HUB ? DOCKER_HUB_API_HOST : domain;
}

/** Rewrites the repository to `location` the way containers/image does: location + the rest after the prefix. */
function rewrite(repo: Repository, registry: RegistryConf, location: string, file: string | undefined): Repository {
  if (location === '') return { domain: repo.domain, path: repo.path };
  const name = `${repo.domain}/${repo.path}`;
  const matched = prefixMatchLength(name, registry.prefix);
  const rewritten = location + name.slice(Math.max(matched, 0));
  try {
    const parsed = parseReference(rewritten);
    return { domain: parsed.domain, path: parsed.path };
  } catch {
    throw new UserError(
      'REGISTRIES_CONF_INVALID',
      `${file ?? 'registries.conf'}: location "${location}" (prefix "${registry.prefix}") turns ${name} into "${rewritten}", which is not a repository`,
      { exitCode: 2 },
    );
  }
}

function endpointOf(repo: Repository, insecure: boolean, mirror: boolean): Endpoint {
  return { host: apiHost(repo.domain), path: repo.path, insecure, mirror };
}

/**
 * Where to fetch `repo` from, in order: the mirrors that apply to this kind of pull, then the primary
 * location unless blocked. Throws REGISTRY_BLOCKED when nothing is left.
 */
export function endpointsFor(conf: RegistriesConf, repo: Repository | Reference, byDigest: boolean): Endpoint[] {
  const registry = registryFor(conf, repo);
  if (!registry) return [endpointOf(repo, false, false)];
  const endpoints: Endpoint[] = [];
  for (const mirror of registry.mirrors) {
    if (mirror.pullFromMirror === 'digest-only' && !byDigest) continue;
    if (mirror.pullFromMirror === 'tag-only' && byDigest) continue;
    endpoints.push(endpointOf(rewrite(repo, registry, mirror.location, conf.file), mirror.insecure, true));
  }
  if (!registry.blocked) endpoints.push(endpointOf(rewrite(repo, registry, registry.location, conf.file), registry.insecure, false));
  if (endpoints.length === 0) {
    throw new UserError(
      'REGISTRY_BLOCKED',
      `pulling ${repo.domain}/${repo.path} is blocked by ${conf.file ?? 'registries.conf'} (prefix "${registry.prefix}", blocked = true) and no mirror applies to a pull by ${byDigest ? 'digest' : 'tag'}`,
      { hint: byDigest ? 'add a [[registry.mirror]] for it' : 'refer to the image by digest, or add a mirror that allows pulls by tag' },
    );
  }
  return endpoints;
}
