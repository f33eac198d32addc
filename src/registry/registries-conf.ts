// containers-registries.conf(5) v2: which hosts a repository is actually fetched from (mirrors, then the
// primary location unless blocked). The image keeps its name; only where its bytes come from changes.

import type { Dirent } from 'node:fs';
import { readFile, readdir, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
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
  /** The file this entry was read from, for messages (several files make up the system configuration). */
  readonly file?: string;
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
    subject: { kind: 'path', name: file },
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
    file,
  };
}

/** Parses registries.conf text; `file` only names it in errors. */
export function parseRegistriesConf(text: string, file: string): RegistriesConf {
  let doc: Table;
  try {
    doc = TOML.parse(text) as Table;
  } catch (err) {
    const where = err && typeof err === 'object' && 'line' in err ? ` (line ${Number((err as { line: number }).line) + 1})` : '';
    throw new UserError('REGISTRIES_CONF_INVALID', `${file}: not valid TOML${where}: ${(err as Error).message.split('\n')[0]}`, { subject: { kind: 'path', name: file } });
  }
  // unqualified-search-registries, aliases, short-name-mode: we only ever pull fully qualified names.
  if (doc.registries !== undefined) {
    throw new UserError('REGISTRIES_CONF_INVALID', `${file}: this is the v1 format ([registries.search], [registries.insecure], [registries.block]), which pin-preload does not read`, {
      subject: { kind: 'path', name: file },
      hint: 'rewrite it as [[registry]] tables (v2, containers-registries.conf(5)), or give --registries-conf FILE with a v2 file',
    });
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

/** Where the system's containers configuration lives; injectable so tests use temp dirs. */
export interface ContainersConfigDirs {
  /** "/etc/containers" */
  readonly system: string;
  /** The user's home directory ($HOME/.config/containers is read). */
  readonly home: string;
}

export function defaultContainersConfigDirs(): ContainersConfigDirs {
  return { system: '/etc/containers', home: os.homedir() };
}

async function fileExists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return false;
    throw unreadable(file, err);
  }
}

function unreadable(file: string, err: unknown): UserError {
  return new UserError('REGISTRIES_CONF_INVALID', `cannot read registries configuration ${file}: ${errnoCode(err) ?? (err as Error).message}`, { subject: { kind: 'path', name: file } });
}

/**
 * The "*.conf" files of a drop-in directory in lexical (byte) order; none when it does not exist. Other
 * files and sub-directories are ignored, as containers-registries.conf.d(5) says.
 */
export async function dropinFiles(dir: string): Promise<string[]> {
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return [];
    throw unreadable(dir, err);
  }
  return entries
    .filter((e) => e.name.endsWith('.conf') && !e.isDirectory())
    .map((e) => e.name)
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    .map((n) => path.join(dir, n));
}

/**
 * The files skopeo and podman read, in order (containers-registries.conf(5) and .conf.d(5)): the user's
 * registries.conf if it exists, replacing the system one and its drop-ins; otherwise the system file and
 * its drop-ins; then the user's drop-ins in both cases. Files that do not exist are left out.
 */
export async function systemRegistriesConfFiles(dirs: ContainersConfigDirs): Promise<string[]> {
  const user = path.join(dirs.home, '.config', 'containers');
  const userMain = path.join(user, 'registries.conf');
  const files: string[] = [];
  if (await fileExists(userMain)) {
    files.push(userMain);
  } else {
    const systemMain = path.join(dirs.system, 'registries.conf');
    if (await fileExists(systemMain)) files.push(systemMain);
    files.push(...(await dropinFiles(path.join(dirs.system, 'registries.conf.d'))));
  }
  files.push(...(await dropinFiles(path.join(user, 'registries.conf.d'))));
  return files;
}

/**
 * Later files over earlier ones, as containers/image merges drop-ins: a [[registry]] with the prefix of an
 * earlier one replaces it whole, others are added.
 */
export function mergeRegistriesConfs(confs: readonly RegistriesConf[], file?: string): RegistriesConf {
  const byPrefix = new Map<string, RegistryConf>();
  for (const conf of confs) for (const registry of conf.registries) byPrefix.set(registry.prefix, registry);
  return { ...(file !== undefined ? { file } : {}), registries: [...byPrefix.values()] };
}

async function readRegistriesConfFile(file: string): Promise<RegistriesConf> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw unreadable(file, err);
  }
  return parseRegistriesConf(text, file);
}

/**
 * `--registries-conf FILE` alone when given (it replaces the system configuration, as skopeo's flag does);
 * otherwise the system's containers configuration, merged. Without any file every repository is fetched
 * from its own host.
 */
export async function loadRegistriesConf(file?: string, dirs: ContainersConfigDirs = defaultContainersConfigDirs()): Promise<RegistriesConf> {
  if (file !== undefined) return readRegistriesConfFile(file);
  const files = await systemRegistriesConfFiles(dirs);
  if (files.length === 0) return EMPTY_REGISTRIES_CONF;
  const confs = await Promise.all(files.map(readRegistriesConfFile));
  return mergeRegistriesConfs(confs, files.join(', '));
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
    endpoints.push(endpointOf(rewrite(repo, registry, mirror.location, registry.file ?? conf.file), mirror.insecure, true));
  }
  if (!registry.blocked) endpoints.push(endpointOf(rewrite(repo, registry, registry.location, registry.file ?? conf.file), registry.insecure, false));
  if (endpoints.length === 0) {
    throw new UserError(
      'REGISTRY_BLOCKED',
      `pulling ${repo.domain}/${repo.path} is blocked by ${registry.file ?? conf.file ?? 'registries.conf'} (prefix "${registry.prefix}", blocked = true) and no mirror applies to a pull by ${byDigest ? 'digest' : 'tag'}`,
      { hint: byDigest ? 'add a [[registry.mirror]] for it' : 'refer to the image by digest, or add a mirror that allows pulls by tag', subject: { kind: 'image', name: `${repo.domain}/${repo.path}` } },
    );
  }
  return endpoints;
}
