// The node service's configuration: /etc/pin-preload/config.toml (or --config FILE) parsed once into a typed
// NodeConfig with defaults, every key overridable by a command-line flag; bad input names the key and the file.

import { readFile } from 'node:fs/promises';
import TOML from '@iarna/toml';
import type { Command } from 'commander';
import { UserError, errnoCode } from '../util/errors.js';
import { parseSize } from '../util/size.js';

export const DEFAULT_CONFIG_FILE = '/etc/pin-preload/config.toml';

export type RuntimeKind = 'crio' | 'containerd';

export interface NodeConfig {
  /** The file the values came from; undefined when the default file was absent (pure defaults). */
  readonly file: string | undefined;
  readonly paths: { readonly bundles: string; readonly state: string; readonly trustedKey?: string };
  readonly mirror: { readonly listen: string; readonly tlsCert?: string; readonly tlsKey?: string };
  readonly runtime: {
    readonly kind: RuntimeKind;
    readonly endpoint: string;
    /** argv run after a runtime drop-in changed; empty = nothing to run. */
    readonly reload: readonly string[];
    /** CRI-O pinned_images drop-in; empty = not written (the containerd default: containerd 1.x cannot pin). */
    readonly pinnedImagesFile: string;
    readonly registriesDropin: string;
    /** The main registries.conf our drop-in must coexist with (the MCO renders ImageDigestMirrorSets into it). */
    readonly registriesConf: string;
    readonly hostsDir: string;
    readonly imageFs?: string;
  };
  readonly storage: { readonly reserveBytes: number };
  readonly pull: { readonly concurrency: number; readonly retries: number; readonly timeoutMs: number };
  /** Releases whose pins are kept (newest first); older ones are retired once the newest is all pinned. */
  readonly pins: { readonly keepReleases: number };
}

/** What a key's value must look like; `parse` gets a TOML value (or a flag's string) and throws a reason. */
interface KeySpec {
  readonly section: string;
  readonly key: string;
  readonly flag: string;
  readonly describe: string;
  readonly parse: (value: unknown) => unknown;
  /** How the flag's string is read when that differs from the file's value (argv arrays). */
  readonly parseFlag?: (value: unknown) => unknown;
}

class BadValue extends Error {}

/** A value for messages; JSON.stringify throws on the BigInt @iarna/toml returns for integers past 2^53. */
function shown(value: unknown): string {
  return typeof value === 'bigint' ? String(value) : JSON.stringify(value);
}

function text(value: unknown): string {
  if (typeof value !== 'string') throw new BadValue(`must be a string, not ${shown(value)}`);
  return value;
}

function nonEmptyText(value: unknown): string {
  const s = text(value);
  if (s.trim() === '') throw new BadValue('must not be empty');
  return s;
}

function absolutePath(value: unknown): string {
  const s = nonEmptyText(value);
  if (!s.startsWith('/')) throw new BadValue(`"${s}" must be an absolute path`);
  return s;
}

/** An absolute path, or "" meaning "do not write this file". */
function optionalPath(value: unknown): string {
  const s = text(value);
  return s === '' ? s : absolutePath(s);
}

function hostPort(value: unknown): string {
  const s = nonEmptyText(value);
  const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(s);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) throw new BadValue(`"${s}" must be host:port, e.g. "127.0.0.1:5000"`);
  return s;
}

function runtimeKind(value: unknown): RuntimeKind {
  const s = text(value);
  if (s !== 'crio' && s !== 'containerd') throw new BadValue(`"${s}" must be "crio" or "containerd"`);
  return s;
}

function endpoint(value: unknown): string {
  const s = nonEmptyText(value);
  if (!s.startsWith('unix://') && !s.startsWith('/')) throw new BadValue(`"${s}" must be a unix socket, e.g. "unix:///var/run/crio/crio.sock"`);
  return s;
}

/** On the command line an argv is a JSON array, or words split on spaces ("" = none). */
function argvFlag(value: unknown): string[] {
  if (typeof value === 'string') {
    const trimmed = value.trim();
    if (trimmed.startsWith('[')) {
      try {
        return argv(JSON.parse(trimmed) as unknown);
      } catch (err) {
        if (err instanceof BadValue) throw err;
        throw new BadValue(`"${value}" is not a JSON array of strings`);
      }
    }
    return trimmed === '' ? [] : trimmed.split(/\s+/);
  }
  return argv(value);
}

/** An argv array: the command and its arguments, run without a shell. */
function argv(value: unknown): string[] {
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
    throw new BadValue(`must be an array of strings (the command and its arguments), not ${shown(value)}`);
  }
  if (value.length > 0 && value[0] === '') throw new BadValue('the command (first element) must not be empty');
  return value as string[];
}

function size(value: unknown): number {
  const s = typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? String(value) : text(value);
  try {
    return parseSize(s);
  } catch {
    throw new BadValue(`"${s}" is not a size (e.g. "10GiB", "500MB", bytes as a number)`);
  }
}

function positiveInteger(max: number) {
  return (value: unknown): number => {
    const n = typeof value === 'string' && /^\d+$/.test(value.trim()) ? Number(value) : value;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > max) {
      throw new BadValue(`must be a whole number from 1 to ${max}, not ${shown(value)}`);
    }
    return n;
  };
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** "10m", "90s", "1h30m", "500ms" → milliseconds. */
export function parseDuration(input: string): number | undefined {
  const s = input.trim();
  if (!/^(\d+(\.\d+)?(ms|s|m|h))+$/.test(s)) return undefined;
  let total = 0;
  for (const m of s.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) total += Number(m[1]) * DURATION_UNITS[m[2]!]!;
  return total > 0 ? Math.round(total) : undefined;
}

function duration(value: unknown): number {
  const s = text(value);
  const ms = parseDuration(s);
  if (ms === undefined) throw new BadValue(`"${s}" is not a duration (e.g. "90s", "10m", "1h")`);
  return ms;
}

/** Every key of the file, in file order; docs/node.md documents the same list. */
export const CONFIG_KEYS: readonly KeySpec[] = [
  { section: 'paths', key: 'bundles', flag: 'bundles', describe: 'bundle directory', parse: absolutePath },
  { section: 'paths', key: 'state', flag: 'state', describe: 'SQLite state database', parse: absolutePath },
  { section: 'paths', key: 'trusted_key', flag: 'trusted-key', describe: 'Ed25519 public key every bundle must be signed by', parse: absolutePath },
  { section: 'mirror', key: 'listen', flag: 'listen', describe: 'mirror address host:port', parse: hostPort },
  { section: 'mirror', key: 'tls_cert', flag: 'tls-cert', describe: 'mirror TLS certificate (PEM)', parse: absolutePath },
  { section: 'mirror', key: 'tls_key', flag: 'tls-key', describe: 'mirror TLS key (PEM)', parse: absolutePath },
  { section: 'runtime', key: 'kind', flag: 'runtime', describe: 'container runtime: crio or containerd', parse: runtimeKind },
  { section: 'runtime', key: 'endpoint', flag: 'runtime-endpoint', describe: 'CRI socket, unix:///…', parse: endpoint },
  { section: 'runtime', key: 'reload', flag: 'reload', describe: 'reload command (JSON array or words; "" for none)', parse: argv, parseFlag: argvFlag },
  { section: 'runtime', key: 'pinned_images_file', flag: 'pinned-images-file', describe: 'CRI-O pinned_images drop-in ("" for none)', parse: optionalPath },
  { section: 'runtime', key: 'registries_dropin', flag: 'registries-dropin', describe: 'CRI-O registries.conf.d drop-in ("" for none)', parse: optionalPath },
  { section: 'runtime', key: 'registries_conf', flag: 'registries-conf', describe: 'main registries.conf to coexist with', parse: absolutePath },
  { section: 'runtime', key: 'hosts_dir', flag: 'hosts-dir', describe: 'containerd certs.d directory', parse: absolutePath },
  { section: 'runtime', key: 'image_fs', flag: 'image-fs', describe: 'image filesystem path (overrides CRI ImageFsInfo)', parse: absolutePath },
  { section: 'storage', key: 'reserve', flag: 'reserve', describe: 'free space to keep, e.g. 10GiB', parse: size },
  { section: 'pull', key: 'concurrency', flag: 'pull-concurrency', describe: 'images pulled at once', parse: positiveInteger(64) },
  { section: 'pull', key: 'retries', flag: 'pull-retries', describe: 'attempts per image', parse: positiveInteger(100) },
  { section: 'pull', key: 'timeout', flag: 'pull-timeout', describe: 'base timeout of one pull, e.g. 10m', parse: duration },
  { section: 'pins', key: 'keep_releases', flag: 'keep-releases', describe: 'newest releases whose pins and bundles are kept', parse: positiveInteger(1000) },
];

/** Values by "section.key", already parsed. */
type Values = Map<string, unknown>;

function defaultsFor(kind: RuntimeKind): Record<string, unknown> {
  return {
    'paths.bundles': '/var/lib/pin-preload/bundles',
    'paths.state': '/var/lib/pin-preload/state.db',
    'mirror.listen': '127.0.0.1:5000',
    'runtime.endpoint': kind === 'crio' ? 'unix:///var/run/crio/crio.sock' : 'unix:///run/containerd/containerd.sock',
    // containerd re-reads hosts.toml on every pull, so it needs no reload.
    'runtime.reload': kind === 'crio' ? ['systemctl', 'reload', 'crio'] : [],
    'runtime.pinned_images_file': kind === 'crio' ? '/etc/crio/crio.conf.d/50-pinned-images' : '',
    'runtime.registries_dropin': kind === 'crio' ? '/etc/containers/registries.conf.d/50-pin-preload.conf' : '',
    'runtime.registries_conf': '/etc/containers/registries.conf',
    'runtime.hosts_dir': '/etc/containerd/certs.d',
    'storage.reserve': 10 * 2 ** 30,
    'pull.concurrency': 5,
    'pull.retries': 5,
    'pull.timeout': 10 * 60_000,
    // The current release and the previous one, so a rollback finds its images pinned.
    'pins.keep_releases': 2,
  };
}

function configError(file: string, key: string, why: string): UserError {
  return new UserError('CONFIG_INVALID', `${file}: ${key}: ${why}`, {
    subject: { kind: 'path', name: file },
  });
}

function isTable(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

/** Parses config file text; `file` names it in errors. */
export function parseConfigText(source: string, file: string): Values {
  let doc: Record<string, unknown>;
  try {
    doc = TOML.parse(source) as Record<string, unknown>;
  } catch (err) {
    const line = err && typeof err === 'object' && 'line' in err ? ` (line ${Number((err as { line: number }).line) + 1})` : '';
    throw new UserError('CONFIG_INVALID', `${file}: not valid TOML${line}: ${(err as Error).message.split('\n')[0]}`, { subject: { kind: 'path', name: file } });
  }
  const values: Values = new Map();
  for (const [section, table] of Object.entries(doc)) {
    const known = CONFIG_KEYS.filter((k) => k.section === section);
    if (known.length === 0) throw configError(file, section, `unknown section [${section}] (known: [paths], [mirror], [runtime], [storage], [pull], [pins])`);
    if (!isTable(table)) throw configError(file, section, `must be a table ([${section}])`);
    for (const [key, value] of Object.entries(table)) {
      const spec = known.find((k) => k.key === key);
      if (!spec) throw configError(file, `${section}.${key}`, `unknown key (known in [${section}]: ${known.map((k) => k.key).join(', ')})`);
      values.set(`${section}.${key}`, parseKey(spec, value, file, `${section}.${key}`));
    }
  }
  return values;
}

function parseKey(spec: KeySpec, value: unknown, file: string, name: string, fromFlag = false): unknown {
  try {
    return (fromFlag && spec.parseFlag ? spec.parseFlag : spec.parse)(value);
  } catch (err) {
    if (err instanceof BadValue) throw configError(file, name, err.message);
    throw err;
  }
}

/** Flag values by flag name (as commander gives them: camelCase keys), strings. */
export type ConfigFlags = Readonly<Record<string, unknown>>;

function camel(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

function flagValues(flags: ConfigFlags): Values {
  const values: Values = new Map();
  for (const spec of CONFIG_KEYS) {
    const raw = flags[camel(spec.flag)];
    if (raw === undefined) continue;
    values.set(`${spec.section}.${spec.key}`, parseKey(spec, raw, 'command line', `--${spec.flag}`, true));
  }
  return values;
}

/**
 * Loads the configuration: defaults < file < flags. `configFile` undefined means the default file, which
 * may be missing (then defaults apply); an explicitly named file must exist.
 */
export async function loadNodeConfig(options: { configFile?: string; flags?: ConfigFlags } = {}): Promise<NodeConfig> {
  const file = options.configFile ?? DEFAULT_CONFIG_FILE;
  let source: string | undefined;
  try {
    source = await readFile(file, 'utf8');
  } catch (err) {
    if (!(errnoCode(err) === 'ENOENT' && options.configFile === undefined)) {
      throw new UserError('CONFIG_UNREADABLE', `cannot read configuration ${file}: ${errnoCode(err) ?? (err as Error).message}`, {
        subject: { kind: 'path', name: file },
        hint: options.configFile === undefined ? undefined : 'check the --config path',
      });
    }
  }
  const fromFile = source === undefined ? new Map() : parseConfigText(source, file);
  return resolveConfig(fromFile, flagValues(options.flags ?? {}), source === undefined ? undefined : file);
}

/** Pure: merges defaults, file values and flag values into a NodeConfig. Exposed for tests. */
export function resolveConfig(fromFile: Values, fromFlags: Values, file: string | undefined): NodeConfig {
  const merged: Values = new Map([...fromFile, ...fromFlags]);
  const kind = (merged.get('runtime.kind') as RuntimeKind | undefined) ?? 'crio';
  const defaults = defaultsFor(kind);
  const get = <T>(name: string): T => (merged.has(name) ? merged.get(name) : defaults[name]) as T;
  const tlsCert = merged.get('mirror.tls_cert') as string | undefined;
  const tlsKey = merged.get('mirror.tls_key') as string | undefined;
  if ((tlsCert === undefined) !== (tlsKey === undefined)) {
    // Blame where the lone half was set: a flag's half is the command line's, even when a file is read too.
    const given = tlsCert === undefined ? 'mirror.tls_key' : 'mirror.tls_cert';
    const where = fromFlags.has(given) ? 'command line' : (file ?? 'command line');
    throw configError(where, tlsCert === undefined ? 'mirror.tls_cert' : 'mirror.tls_key', 'tls_cert and tls_key go together: set both or neither');
  }
  const imageFs = merged.get('runtime.image_fs') as string | undefined;
  const trustedKey = merged.get('paths.trusted_key') as string | undefined;
  return {
    file,
    paths: { bundles: get('paths.bundles'), state: get('paths.state'), ...(trustedKey !== undefined ? { trustedKey } : {}) },
    mirror: { listen: get('mirror.listen'), ...(tlsCert !== undefined ? { tlsCert, tlsKey: tlsKey! } : {}) },
    runtime: {
      kind,
      endpoint: get('runtime.endpoint'),
      reload: get('runtime.reload'),
      pinnedImagesFile: get('runtime.pinned_images_file'),
      registriesDropin: get('runtime.registries_dropin'),
      registriesConf: get('runtime.registries_conf'),
      hostsDir: get('runtime.hosts_dir'),
      ...(imageFs !== undefined ? { imageFs } : {}),
    },
    storage: { reserveBytes: get('storage.reserve') },
    pull: { concurrency: get('pull.concurrency'), retries: get('pull.retries'), timeoutMs: get('pull.timeout') },
    pins: { keepReleases: get('pins.keep_releases') },
  };
}

/** Adds --config and one flag per key to a node command. */
export function addNodeConfigOptions(command: Command): Command {
  command.option('--config <file>', `configuration file (default ${DEFAULT_CONFIG_FILE})`);
  for (const spec of CONFIG_KEYS) command.option(`--${spec.flag} <value>`, `[${spec.section}] ${spec.key}: ${spec.describe}`);
  return command;
}

/** The NodeConfig for a command's parsed options (from addNodeConfigOptions). */
export async function nodeConfigFromOptions(options: ConfigFlags & { config?: string }): Promise<NodeConfig> {
  return loadNodeConfig({ ...(options.config !== undefined ? { configFile: options.config } : {}), flags: options });
}
