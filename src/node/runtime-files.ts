// The files through which the container runtime learns about us: CRI-O's registries.conf.d mirror drop-in and
// pinned_images drop-in, containerd's certs.d hosts.toml files; each written atomically, only when its bytes change.

import { execFile } from 'node:child_process';
import { readFile, readdir, rmdir } from 'node:fs/promises';
import path from 'node:path';
import TOML from '@iarna/toml';
import {
  dropinFiles,
  mergeRegistriesConfs,
  parseRegistriesConf,
  prefixMatchLength,
  registryFor,
  apiHost,
  type MirrorConf,
  type RegistriesConf,
  type RegistryConf,
} from '../registry/registries-conf.js';
import { repositoryName, type Repository } from '../oci/reference.js';
import { removeFileDurably as removeFile, writeFileAtomic } from '../util/atomic-file.js';
import { UserError, errnoCode } from '../util/errors.js';
import { killPoint } from '../util/kill-point.js';
import type { NodeConfig } from './config.js';

/** First line of every file we own that has room for a comment (CRI-O's pinned file stays byte-exact MCO). */
export const OWNER_MARKER = '# Written by pin-preload. Do not edit: it is rewritten on every preload.';

function tomlString(value: string): string {
  // JSON's escapes (\" \\ \n \uXXXX) are all valid in TOML basic strings.
  return JSON.stringify(value);
}

/** A runtime file could not be written or removed: name it, its configuration key, and the usual cause. */
function fileError(file: string, key: string, err: unknown, verb: 'write' | 'read' = 'write'): UserError {
  const code = errnoCode(err);
  return new UserError('RUNTIME_FILE_FAILED', `cannot ${verb} ${file} ([runtime] ${key}): ${code ?? (err as Error).message}`, {
    hint: code === 'EROFS' || code === 'EACCES' || code === 'EPERM'
      ? `set [runtime] ${key} = "" if this runtime does not use it, or let the service write there (systemctl edit pin-preload: ReadWritePaths=${path.dirname(file)})`
      : undefined,
    subject: { kind: 'path', name: file },
    cause: err,
  });
}

/** writeFileAtomic (0644, only when the bytes differ) with errors that name the file and its key. */
async function writeOwned(file: string, content: string, key: string): Promise<boolean> {
  try {
    return await writeFileAtomic(file, content, 0o644);
  } catch (err) {
    throw fileError(file, key, err);
  }
}

async function removeOwned(file: string, key: string): Promise<boolean> {
  try {
    return await removeFile(file);
  } catch (err) {
    throw fileError(file, key, err);
  }
}

function isLoopback(listen: string): boolean {
  const host = listen.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

/** The mirror as the runtime should reach it. */
export interface MirrorEndpoint {
  /** "127.0.0.1:5000" */
  readonly listen: string;
  readonly tls: boolean;
  /** CA/cert file for a TLS mirror (containerd `ca`). */
  readonly tlsCert?: string;
}

export function mirrorEndpoint(config: NodeConfig): MirrorEndpoint {
  return {
    listen: config.mirror.listen,
    tls: config.mirror.tlsCert !== undefined,
    ...(config.mirror.tlsCert !== undefined ? { tlsCert: config.mirror.tlsCert } : {}),
  };
}

// ---------------------------------------------------------------- CRI-O: pinned_images

/**
 * CRI-O's pinned_images drop-in exactly as the MCO writes it (2-space indent per table level, one-line array,
 * every image by digest, deduplicated and sorted byte-wise like Go's sort.Strings).
 */
export function renderPinnedImages(names: readonly string[]): string {
  const sorted = [...new Set(names)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return `[crio]\n  [crio.image]\n    pinned_images = [${sorted.map(tomlString).join(', ')}]\n`;
}

/** The images a pinned-images file lists ([] when there is none), so unpinning can shrink it. */
export async function readPinnedImages(file: string): Promise<string[]> {
  if (file === '') return [];
  let parsed: { crio?: { image?: { pinned_images?: unknown } } };
  try {
    parsed = TOML.parse(await readFile(file, 'utf8')) as typeof parsed;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    throw fileError(file, 'pinned_images_file', err, 'read');
  }
  const names = parsed.crio?.image?.pinned_images;
  return Array.isArray(names) ? names.filter((n): n is string => typeof n === 'string') : [];
}

/** Writes (or, for an empty set, removes) the pinned-images file; returns whether it changed. */
export async function applyPinnedImages(file: string, names: readonly string[]): Promise<boolean> {
  if (file === '') return false;
  if (names.length === 0) return removeOwned(file, 'pinned_images_file');
  const changed = await writeOwned(file, renderPinnedImages(names), 'pinned_images_file');
  killPoint('preload:after-pinned-file');
  return changed;
}

// ---------------------------------------------------------------- CRI-O: registries.conf.d

/**
 * The registries configuration CRI-O sees without our drop-in: the main registries.conf (where the MCO renders
 * ImageDigestMirrorSets), then every drop-in that sorts before ours, a later [[registry]] with the same prefix
 * replacing an earlier one whole (as containers/image does).
 */
export async function loadEffectiveRegistries(mainFile: string, ourDropin: string): Promise<RegistriesConf> {
  const ours = path.basename(ourDropin);
  const earlier = (await dropinFiles(path.dirname(ourDropin))).filter((file) => path.basename(file) < ours);
  const confs: RegistriesConf[] = [];
  for (const file of [mainFile, ...earlier]) {
    let source: string;
    try {
      source = await readFile(file, 'utf8');
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') continue;
      throw err;
    }
    confs.push(parseRegistriesConf(source, file));
  }
  return mergeRegistriesConfs(confs, mainFile);
}

/** `location` + what is left of `repo` after the matched prefix (containers/image's rewrite). */
function rewriteLocation(repo: Repository, registry: RegistryConf, location: string): string {
  const name = repositoryName(repo);
  if (registry.prefix.startsWith('*.')) return name; // wildcard entries keep the name
  return location + name.slice(Math.max(prefixMatchLength(name, registry.prefix), 0));
}

function mirrorLines(location: string, insecure: boolean, pullFromMirror: string | undefined): string[] {
  const lines = ['[[registry.mirror]]', `location = ${tomlString(location)}`];
  if (insecure) lines.push('insecure = true');
  if (pullFromMirror !== undefined) lines.push(`pull-from-mirror = ${tomlString(pullFromMirror)}`);
  return lines;
}

/**
 * Where our mirror serves `repo` in a registries.conf mirror location. Digest pulls use the path alone (a
 * digest is unambiguous on any host); tag pulls use the host-qualified name, because a tag under a path two
 * bundled hosts share is ambiguous to the mirror (docs/mirror.md). A host with a port cannot be a name
 * component, so it keeps the path alone.
 */
function mirrorLocation(repo: Repository, mirror: MirrorEndpoint, byTag: boolean): string {
  return byTag && !repo.domain.includes(':') ? `${mirror.listen}/${repo.domain}/${repo.path}` : `${mirror.listen}/${repo.path}`;
}

/**
 * Our drop-in: one [[registry]] per source repository with our mirror first. A drop-in [[registry]] with the
 * prefix of an existing entry replaces that entry whole, and a longer prefix shadows a shorter one, so for
 * every repository an existing entry covers we carry its settings over: its mirrors after ours (rewritten to
 * this repository), and its location, `insecure`, `blocked` and `mirror-by-digest-only`. Without that, our
 * file would silently drop the cluster's ImageDigestMirrorSet mirrors and NeverContactSource blocks.
 *
 * Our mirror is used for pulls by digest only, except for the repositories in `tagPulled` (extra images the
 * bundle serves under the tag they were resolved from): there it is used for tag pulls too
 * (`pull-from-mirror = "all"`), so a pod naming the image by tag starts on an air-gapped node. A carried
 * `mirror-by-digest-only` would forbid that (containers/image rejects per-mirror settings beside it), so for
 * those repositories it becomes `pull-from-mirror = "digest-only"` on each carried mirror: the same pulls.
 */
export function renderRegistriesDropin(
  repositories: readonly Repository[],
  mirror: MirrorEndpoint,
  existing: RegistriesConf,
  tagPulled: readonly Repository[] = [],
): string {
  const unique = [...new Map(repositories.map((r) => [repositoryName(r), r])).values()].sort((a, b) =>
    repositoryName(a) < repositoryName(b) ? -1 : 1,
  );
  const byTag = new Set(tagPulled.map(repositoryName));
  const insecure = !mirror.tls || isLoopback(mirror.listen);
  const blocks = unique.map((repo) => {
    const name = repositoryName(repo);
    const tags = byTag.has(name);
    const inherited = registryFor(existing, repo);
    const digestOnlyRegistry = inherited?.mirrorByDigestOnly ?? false;
    const lines = [
      '[[registry]]',
      `prefix = ${tomlString(name)}`,
      `location = ${tomlString(inherited && inherited.location !== '' ? rewriteLocation(repo, inherited, inherited.location) : name)}`,
    ];
    if (inherited?.insecure) lines.push('insecure = true');
    if (inherited?.blocked) lines.push('blocked = true');
    // With mirror-by-digest-only on the registry, containers/image rejects per-mirror pull-from-mirror.
    const keepDigestOnlyRegistry = digestOnlyRegistry && !tags;
    if (keepDigestOnlyRegistry) lines.push('mirror-by-digest-only = true');
    const ours = keepDigestOnlyRegistry ? undefined : tags ? 'all' : 'digest-only';
    lines.push('', ...mirrorLines(mirrorLocation(repo, mirror, tags), insecure, ours));
    for (const carried of inherited?.mirrors ?? []) {
      const pull = keepDigestOnlyRegistry ? undefined : digestOnlyRegistry ? 'digest-only' : pullFromMirrorText(carried);
      lines.push('', ...mirrorLines(rewriteLocation(repo, inherited!, carried.location), carried.insecure, pull));
    }
    return lines.join('\n');
  });
  const header = [
    OWNER_MARKER,
    '# Sends pulls by digest of the bundled repositories to the local pin-preload mirror first, and pulls by tag',
    '# too for extra images bundled by tag; mirrors and settings from registries.conf for the same',
    '# repositories are carried over after it.',
  ];
  return `${[header.join('\n'), ...blocks].join('\n\n')}\n`;
}

function pullFromMirrorText(mirror: MirrorConf): string | undefined {
  return mirror.pullFromMirror === 'all' ? undefined : mirror.pullFromMirror;
}

// ---------------------------------------------------------------- containerd: certs.d/<host>/hosts.toml

/** containerd's hosts.toml for one source registry host, sending pulls and resolves to our mirror first. */
export function renderHostsToml(sourceHost: string, mirror: MirrorEndpoint): string {
  const lines = [
    OWNER_MARKER,
    `server = ${tomlString(`https://${apiHost(sourceHost)}`)}`,
    '',
    `[host.${tomlString(`${mirror.tls ? 'https' : 'http'}://${mirror.listen}`)}]`,
    '  capabilities = ["pull", "resolve"]',
  ];
  if (mirror.tls && mirror.tlsCert !== undefined) lines.push(`  ca = ${tomlString(mirror.tlsCert)}`);
  return `${lines.join('\n')}\n`;
}

async function isOurs(file: string): Promise<boolean | undefined> {
  try {
    return (await readFile(file, 'utf8')).startsWith(OWNER_MARKER);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  }
}

/** Writes one hosts.toml per source host and removes ours for hosts no longer bundled; returns changed files. */
export async function applyHostsTomls(hostsDir: string, sourceHosts: readonly string[], mirror: MirrorEndpoint): Promise<string[]> {
  const changed: string[] = [];
  const wanted = new Set(sourceHosts);
  for (const host of [...wanted].sort()) {
    const file = path.join(hostsDir, host, 'hosts.toml');
    if ((await isOurs(file)) === false) {
      throw new UserError('HOSTS_TOML_FOREIGN', `${file} exists and was not written by pin-preload; refusing to overwrite it`, {
        subject: { kind: 'path', name: file },
        hint: `merge a [host."http://${mirror.listen}"] entry with capabilities ["pull", "resolve"] into it yourself, or move it away and run preload again`,
      });
    }
    if (await writeOwned(file, renderHostsToml(host, mirror), 'hosts_dir')) changed.push(file);
  }
  const present = await readdir(hostsDir).catch((err: unknown) => (errnoCode(err) === 'ENOENT' ? ([] as string[]) : Promise.reject(err)));
  for (const host of present) {
    if (wanted.has(host)) continue;
    const file = path.join(hostsDir, host, 'hosts.toml');
    if ((await isOurs(file)) !== true) continue;
    await removeOwned(file, 'hosts_dir');
    await rmdir(path.dirname(file)).catch(() => undefined); // only if now empty
    changed.push(file);
  }
  return changed;
}

// ---------------------------------------------------------------- both runtimes

/**
 * Points the runtime at the mirror for every bundled repository: the CRI-O drop-in when configured, and for
 * containerd the hosts.toml files. `tagPulled` are the repositories CRI-O may also pull by tag from the mirror
 * (containerd's hosts.toml mirror resolves tags for every repository of the host already). An empty set
 * removes our files. Returns the files that changed.
 */
export async function applyMirrorConfig(config: NodeConfig, repositories: readonly Repository[], tagPulled: readonly Repository[] = []): Promise<string[]> {
  const mirror = mirrorEndpoint(config);
  const changed: string[] = [];
  const dropin = config.runtime.registriesDropin;
  if (dropin !== '') {
    if (repositories.length === 0) {
      if ((await isOurs(dropin)) === true && (await removeOwned(dropin, 'registries_dropin'))) changed.push(dropin);
    } else {
      const existing = await loadEffectiveRegistries(config.runtime.registriesConf, dropin);
      if ((await isOurs(dropin)) === false) {
        throw new UserError('REGISTRIES_DROPIN_FOREIGN', `${dropin} exists and was not written by pin-preload; refusing to overwrite it`, {
          subject: { kind: 'path', name: dropin },
        });
      }
      if (await writeOwned(dropin, renderRegistriesDropin(repositories, mirror, existing, tagPulled), 'registries_dropin')) changed.push(dropin);
    }
  }
  if (config.runtime.kind === 'containerd') {
    changed.push(...(await applyHostsTomls(config.runtime.hostsDir, repositories.map((r) => r.domain), mirror)));
  }
  return changed;
}

/**
 * After runtime files changed: says which and why, then runs the configured reload. Returns the number of
 * reloads run (0 or 1); no changed file, no reload.
 */
export async function reloadAfterChange(ctx: { readonly config: NodeConfig; readonly log: (line: string) => void }, files: readonly string[], what: string): Promise<number> {
  if (files.length === 0) return 0;
  const argv = ctx.config.runtime.reload;
  ctx.log(`${what} changed (${files.join(', ')})${argv.length ? `: running ${argv.join(' ')}` : ''}`);
  return (await reloadRuntime(argv)) ? 1 : 0;
}

const RELOAD_TIMEOUT_MS = 120_000;

/** Runs the configured reload command (argv, no shell); nothing configured → nothing run. */
export async function reloadRuntime(argv: readonly string[]): Promise<boolean> {
  if (argv.length === 0) return false;
  const [command, ...args] = argv as [string, ...string[]];
  await new Promise<void>((resolve, reject) => {
    execFile(command, args, { timeout: RELOAD_TIMEOUT_MS, maxBuffer: 1024 * 1024 }, (err, _stdout, stderr) => {
      if (!err) {
        resolve();
        return;
      }
      const how = errnoCode(err) === 'ENOENT' ? 'command not found' : err.killed ? `timed out after ${RELOAD_TIMEOUT_MS / 1000} s` : `exit code ${String((err as { code?: unknown }).code)}`;
      reject(
        new UserError('RUNTIME_RELOAD_FAILED', `reload command ${JSON.stringify(argv)} failed (${how})${stderr.trim() ? `: ${stderr.trim()}` : ''}`),
      );
    });
  });
  killPoint('preload:after-reload');
  return true;
}
