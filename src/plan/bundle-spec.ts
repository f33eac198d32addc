// Bundle specs: a TOML file that says what a bundle holds and how it is written (bundles/README.md lists
// every key). Parsed strictly: an unknown key or a bad value is an error naming the file and the key. A key
// exists for every option that changes what the bundle is made of; options about the run (progress, output
// format, concurrency, credentials, the registries' configuration) have none.

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import TOML from '@iarna/toml';
import { compareVersions } from '../release/update-graph.js';
import { errnoCode, UserError } from '../util/errors.js';
import { parseHttpUrlOption } from '../util/http-url.js';
import { parseSize } from '../util/size.js';
import { isReleaseVersion, parsePlatformChoice, requestImage, type ChannelFlags, type PlatformChoice, type RequestedImage } from './selection.js';

export interface BundleSpec {
  readonly file: string;
  readonly description?: string;
  readonly release?: RequestedImage;
  /** Releases from an update channel, as --channel with --version, or --min-version and --max-version. */
  readonly channel?: ChannelFlags;
  /** The update service's graph endpoint for `channel`, as --graph-url. */
  readonly graphUrl?: string;
  readonly images: readonly RequestedImage[];
  /** Image-list files, made absolute (relative paths in a spec are relative to the spec's directory). */
  readonly imagesFrom: readonly string[];
  readonly platforms?: PlatformChoice;
  /** Bytes per volume. */
  readonly splitSize?: number;
  /** Bundle path (absolute). */
  readonly output?: string;
  /** Signing key path (absolute). */
  readonly signKey?: string;
  /** Also bundle every image's signatures and referrers (as --signatures). */
  readonly signatures?: boolean;
  /** Release signature store URL, as --signature-store. */
  readonly signatureStore?: string;
  /** Keyring the release signatures are verified against (absolute), as --release-keyring. */
  readonly releaseKeyring?: string;
  /** Bundle a release the store has no signature for, as --allow-unsigned-releases. */
  readonly allowUnsignedReleases?: boolean;
  /** PREV of a delta bundle (absolute), as --since. */
  readonly since?: string;
}

export const BUNDLE_SPEC_KEYS = [
  'description',
  'release',
  'channel',
  'version',
  'min-version',
  'max-version',
  'graph-url',
  'images',
  'images-from',
  'platforms',
  'signatures',
  'signature-store',
  'release-keyring',
  'allow-unsigned-releases',
  'since',
  'split-size',
  'output',
  'sign-key',
] as const;

function specError(file: string, key: string | undefined, message: string, line?: number): UserError {
  const where = line !== undefined ? `${file}:${line}` : file;
  return new UserError('BUNDLE_SPEC_INVALID', `${where}: ${key !== undefined ? `key "${key}": ` : ''}${message}`, {
    subject: { kind: 'path', name: file },
  });
}

/** The 1-based line where `key = ` is set, for messages (TOML parsers do not keep positions). */
function lineOfKey(text: string, key: string): number | undefined {
  // Escape every regex metacharacter: an unknown key such as "a(" must still give a clean error.
  const literal = key.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&');
  const i = text.split('\n').findIndex((l) => new RegExp(`^\\s*["']?${literal}["']?\\s*=`).test(l));
  return i === -1 ? undefined : i + 1;
}

/** The 1-based line of the first quoted occurrence of `value` at or after `fromLine`. */
function lineOfValue(text: string, value: string, fromLine = 1): number | undefined {
  const lines = text.split('\n');
  for (let i = fromLine - 1; i < lines.length; i++) {
    if (lines[i]!.includes(`"${value}"`) || lines[i]!.includes(`'${value}'`)) return i + 1;
  }
  return undefined;
}

export async function readBundleSpec(file: string): Promise<BundleSpec> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new UserError('BUNDLE_SPEC_UNREADABLE', `cannot read bundle spec ${file}: ${errnoCode(err) === 'ENOENT' ? 'no such file' : (err as Error).message}`, { subject: { kind: 'path', name: file } });
  }
  return parseBundleSpec(text, file);
}

export function parseBundleSpec(text: string, file: string): BundleSpec {
  let doc: Record<string, unknown>;
  try {
    doc = TOML.parse(text) as Record<string, unknown>;
  } catch (err) {
    const e = err as { line?: number; message: string };
    throw specError(file, undefined, `not valid TOML: ${e.message.split('\n')[0]}`, typeof e.line === 'number' ? e.line + 1 : undefined);
  }
  for (const key of Object.keys(doc)) {
    if (!(BUNDLE_SPEC_KEYS as readonly string[]).includes(key)) {
      throw specError(file, key, `unknown key (known keys: ${BUNDLE_SPEC_KEYS.join(', ')})`, lineOfKey(text, key));
    }
  }
  const dir = path.dirname(path.resolve(file));
  const str = (key: string): string | undefined => {
    const v = doc[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || v.trim() === '') throw specError(file, key, 'must be a non-empty string', lineOfKey(text, key));
    return v;
  };
  const strings = (key: string): string[] => {
    const v = doc[key];
    if (v === undefined) return [];
    if (typeof v === 'string') return [v];
    if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) throw specError(file, key, 'must be a string or a list of strings', lineOfKey(text, key));
    return v as string[];
  };
  const bool = (key: string): boolean | undefined => {
    const v = doc[key];
    if (v !== undefined && typeof v !== 'boolean') throw specError(file, key, 'must be true or false', lineOfKey(text, key));
    return v;
  };
  const at = (key: string, fn: () => unknown): unknown => {
    try {
      return fn();
    } catch (err) {
      if (err instanceof UserError && err.code !== 'BUNDLE_SPEC_INVALID') throw specError(file, key, err.message, lineOfKey(text, key));
      throw err;
    }
  };

  const releaseText = str('release');
  const keyLine = lineOfKey(text, 'images');
  const images = strings('images').map((s) => requestImage(s, `${file}:${lineOfValue(text, s, keyLine) ?? keyLine ?? 1}`));
  const platformsValue = doc.platforms;
  let platforms: PlatformChoice | undefined;
  if (platformsValue !== undefined) platforms = at('platforms', () => parsePlatformChoice(strings('platforms'))) as PlatformChoice;
  const split = doc['split-size'];
  let splitSize: number | undefined;
  if (split !== undefined) {
    if (typeof split === 'number' && Number.isSafeInteger(split) && split > 0) splitSize = split;
    else if (typeof split === 'string') splitSize = at('split-size', () => parseSize(split, 'split-size')) as number;
    else throw specError(file, 'split-size', 'must be a size such as "4GiB" or a positive number of bytes', lineOfKey(text, 'split-size'));
    if (splitSize === 0) throw specError(file, 'split-size', 'must be more than 0', lineOfKey(text, 'split-size'));
  }
  const output = str('output');
  const signKey = str('sign-key');
  const description = str('description');
  const signatures = bool('signatures');
  const httpUrl = (key: string): string | undefined => {
    const v = str(key);
    if (v !== undefined) at(key, () => parseHttpUrlOption(v, 'value'));
    return v;
  };
  const graphUrl = httpUrl('graph-url');
  const signatureStore = httpUrl('signature-store');
  const releaseKeyring = str('release-keyring');
  const allowUnsignedReleases = bool('allow-unsigned-releases');
  // As for the flags: the keyring and the opt-out are about a store's signatures, so they need one here.
  for (const key of ['release-keyring', 'allow-unsigned-releases'] as const) {
    if (doc[key] !== undefined && signatureStore === undefined) throw specError(file, key, 'goes with signature-store', lineOfKey(text, key));
  }
  const since = str('since');
  const channel = channelOf(text, file, str);
  return {
    file,
    ...(description !== undefined ? { description } : {}),
    ...(releaseText !== undefined ? { release: requestImage(releaseText, `${file}:${lineOfKey(text, 'release') ?? 1}`) } : {}),
    ...(channel !== undefined ? { channel } : {}),
    ...(graphUrl !== undefined ? { graphUrl } : {}),
    images,
    imagesFrom: strings('images-from').map((f) => path.resolve(dir, f)),
    ...(platforms !== undefined ? { platforms } : {}),
    ...(splitSize !== undefined ? { splitSize } : {}),
    ...(output !== undefined ? { output: path.resolve(dir, output) } : {}),
    ...(signKey !== undefined ? { signKey: path.resolve(dir, signKey) } : {}),
    ...(signatures !== undefined ? { signatures } : {}),
    ...(signatureStore !== undefined ? { signatureStore } : {}),
    ...(releaseKeyring !== undefined ? { releaseKeyring: path.resolve(dir, releaseKeyring) } : {}),
    ...(allowUnsignedReleases !== undefined ? { allowUnsignedReleases } : {}),
    ...(since !== undefined ? { since: path.resolve(dir, since) } : {}),
  };
}

/** `channel` with `version`, or `min-version` and `max-version` (or neither: the newest), checked as the flags are. */
function channelOf(text: string, file: string, str: (key: string) => string | undefined): ChannelFlags | undefined {
  const name = str('channel');
  const versions = { version: str('version'), minVersion: str('min-version'), maxVersion: str('max-version') };
  const keys = { version: 'version', minVersion: 'min-version', maxVersion: 'max-version' } as const;
  const refuse = (key: string, message: string) => specError(file, key, message, lineOfKey(text, key));
  for (const field of ['version', 'minVersion', 'maxVersion'] as const) {
    const v = versions[field];
    if (v === undefined) continue;
    if (name === undefined) throw refuse(keys[field], 'goes with channel');
    if (!isReleaseVersion(v)) throw refuse(keys[field], `"${v}" is not a release version such as 4.16.3`);
  }
  if (versions.version !== undefined && (versions.minVersion !== undefined || versions.maxVersion !== undefined)) throw refuse('version', 'cannot be combined with min-version or max-version');
  if ((versions.minVersion === undefined) !== (versions.maxVersion === undefined)) throw refuse(versions.minVersion === undefined ? 'max-version' : 'min-version', 'min-version and max-version go together');
  if (versions.minVersion !== undefined && versions.maxVersion !== undefined && compareVersions(versions.minVersion, versions.maxVersion) > 0) {
    throw refuse('min-version', `${versions.minVersion} is newer than max-version ${versions.maxVersion}`);
  }
  if (name === undefined) return undefined;
  return {
    name,
    ...(versions.version !== undefined ? { version: versions.version } : {}),
    ...(versions.minVersion !== undefined ? { minVersion: versions.minVersion } : {}),
    ...(versions.maxVersion !== undefined ? { maxVersion: versions.maxVersion } : {}),
  };
}
