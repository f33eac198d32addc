// What the user asked to bundle: releases (by reference or by channel), extra images, blocked images and
// platforms, gathered from flags, bundle specs and image-list files (PinnedImageSet YAML, oc-mirror
// ImageSetConfiguration, bundle spec TOML or one reference per line), checked once here.

import { readFile } from 'node:fs/promises';
import type { Document, Node as YamlNode } from 'yaml';
import { parsePlatform, type Platform } from '../oci/platform.js';
import { formatReference, parseReference, type Reference } from '../oci/reference.js';
import { errnoCode, UserError } from '../util/errors.js';
import type { OptionOrigin } from '../util/option-origin.js';
import { yaml } from '../util/yaml.js';
import type { ChannelRequest } from '../release/channel.js';
import { parseBundleSpec, type BundleSpec } from './bundle-spec.js';
import { looksLikeImageSetConfig, parseImageSetConfig, type BlockedImage, type ImageSetSelection } from './image-set-config.js';

export interface RequestedImage {
  readonly reference: Reference;
  /** The canonical text of what was asked for, e.g. "quay.io/acme/tool:1.2". */
  readonly requestedAs: string;
  /** Where the request came from, for messages: "--image", "images.txt:3", "ocp.toml: images". */
  readonly origin: string;
}

/** Every platform of each index ('all'), or the listed ones. */
export type PlatformChoice = readonly Platform[] | 'all';

export interface Selection {
  /** Releases by reference (--release, spec, mirror.platform.release), in the order given. */
  readonly releases: readonly RequestedImage[];
  /** Releases by channel, resolved through the update graph at planning time. */
  readonly channels: readonly ChannelRequest[];
  /** The update service's graph endpoint for `channels` (default DEFAULT_GRAPH_URL). */
  readonly graphUrl?: string;
  /** Where graphUrl was given (default the flag): errors about the endpoint name it. */
  readonly graphUrlOrigin?: OptionOrigin;
  readonly images: readonly RequestedImage[];
  /** Images left out wherever they come from (ImageSetConfiguration blockedImages). */
  readonly blocked: readonly BlockedImage[];
  readonly platforms: PlatformChoice;
}

/** `--channel NAME` with `--version X` or `--min-version A --max-version B` (or neither: the newest). */
export interface ChannelFlags {
  readonly name: string;
  readonly version?: string;
  readonly minVersion?: string;
  readonly maxVersion?: string;
  /** How errors name the channel: "--channel" (default), or the spec key that gave it. */
  readonly origin?: string;
}

export interface SelectionInput {
  /** A bundle spec the flags add to (images) or override (release, platforms). */
  readonly spec?: BundleSpec;
  readonly release?: string;
  readonly channel?: ChannelFlags;
  readonly graphUrl?: string;
  readonly graphUrlOrigin?: OptionOrigin;
  readonly images?: readonly string[];
  readonly imagesFrom?: readonly string[];
  readonly platforms?: readonly string[];
}

export const PINNED_IMAGE_SET_API_VERSIONS = ['machineconfiguration.openshift.io/v1', 'machineconfiguration.openshift.io/v1alpha1'];

/** Parses one reference, turning a bad one into a UserError that says where it was written. */
export function requestImage(text: string, origin: string): RequestedImage {
  try {
    const reference = parseReference(text);
    return { reference, requestedAs: formatReference(reference), origin };
  } catch (err) {
    if (err instanceof UserError) throw new UserError(err.code, `${origin}: ${err.message}`, { hint: err.hint, subject: err.subject });
    throw err;
  }
}

/** `--platform` values: OS/ARCH[/VARIANT], or "all"; none means linux/amd64. */
export function parsePlatformChoice(values: readonly string[]): PlatformChoice {
  if (values.length === 0) return [{ os: 'linux', architecture: 'amd64' }];
  if (values.some((v) => v.trim() === 'all')) return 'all';
  const out: Platform[] = [];
  for (const v of values) {
    const p = parsePlatform(v);
    if (!out.some((o) => o.os === p.os && o.architecture === p.architecture && o.variant === p.variant)) out.push(p);
  }
  return out;
}

export async function buildSelection(input: SelectionInput): Promise<Selection> {
  const spec = input.spec;
  const release = input.release !== undefined ? requestImage(input.release, '--release') : spec?.release;
  const releases: RequestedImage[] = release ? [release] : [];
  const channels: ChannelRequest[] = input.channel ? [channelFromFlags(input.channel)] : [];
  const images: RequestedImage[] = [...(spec?.images ?? [])];
  const blocked: BlockedImage[] = [];
  const architectures: string[] = [];
  const addFile = async (file: string) => {
    const part = await readSelectionFile(file);
    images.push(...part.images);
    releases.push(...(part.releases ?? []));
    channels.push(...(part.channels ?? []));
    blocked.push(...(part.blocked ?? []));
    architectures.push(...(part.architectures ?? []));
  };
  for (const file of spec?.imagesFrom ?? []) await addFile(file);
  for (const text of input.images ?? []) images.push(requestImage(text, '--image'));
  for (const file of input.imagesFrom ?? []) await addFile(file);
  const platforms =
    input.platforms && input.platforms.length > 0
      ? parsePlatformChoice(input.platforms)
      : (spec?.platforms ?? (architectures.length > 0 ? platformsOfArchitectures(architectures) : parsePlatformChoice([])));
  if (releases.length === 0 && channels.length === 0 && images.length === 0) {
    throw new UserError('SELECTION_EMPTY', 'nothing to bundle: no release, channel or images were given');
  }
  return {
    releases: uniqueImages(releases),
    channels,
    ...(input.graphUrl !== undefined ? { graphUrl: input.graphUrl } : {}),
    ...(input.graphUrl !== undefined && input.graphUrlOrigin !== undefined ? { graphUrlOrigin: input.graphUrlOrigin } : {}),
    images: uniqueImages(images),
    blocked,
    platforms,
  };
}

/** X.Y.Z with an optional pre-release part (4.16.3, 4.17.0-rc.1): what --version and the spec's version keys take. */
export function isReleaseVersion(text: string): boolean {
  return /^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/.test(text);
}

function channelFromFlags(flags: ChannelFlags): ChannelRequest {
  const usage = (message: string) => new UserError('USAGE', message, { hint: 'give --channel NAME --version X.Y.Z, or --channel NAME --min-version A --max-version B' });
  if (flags.version !== undefined && (flags.minVersion !== undefined || flags.maxVersion !== undefined)) throw usage('--version cannot be combined with --min-version or --max-version');
  if ((flags.minVersion === undefined) !== (flags.maxVersion === undefined)) throw usage('--min-version and --max-version go together');
  for (const [flag, v] of [['--version', flags.version], ['--min-version', flags.minVersion], ['--max-version', flags.maxVersion]] as const) {
    if (v !== undefined && !isReleaseVersion(v)) throw usage(`${flag} "${v}" is not a release version such as 4.16.3`);
  }
  const min = flags.version ?? flags.minVersion;
  const max = flags.version ?? flags.maxVersion;
  // A range on the command line is the shortest update path (what an update from A to B needs).
  return { name: flags.name, ...(min !== undefined ? { minVersion: min } : {}), ...(max !== undefined ? { maxVersion: max } : {}), shortestPath: true, full: false, origin: flags.origin ?? '--channel' };
}

/** ImageSetConfiguration architectures (amd64, arm64, ppc64le, s390x; multi = all) as platforms. */
function platformsOfArchitectures(architectures: readonly string[]): PlatformChoice {
  if (architectures.includes('multi')) return 'all';
  return parsePlatformChoice(architectures.map((a) => `linux/${a}`));
}

/** What one --images-from file adds: images, and from an ImageSetConfiguration the rest too. */
type SelectionFilePart = Pick<ImageSetSelection, 'images'> & Partial<ImageSetSelection>;

/** An --images-from file: an ImageSetConfiguration brings channels and blocked images too. */
async function readSelectionFile(file: string): Promise<SelectionFilePart> {
  const text = await readListText(file);
  if (looksLikeImageSetConfig(text)) return parseImageSetConfig(text, file);
  return { images: parseImageList(text, file) };
}

/** The first of each requested image (by its canonical text), in order. */
export function uniqueRequests<T>(items: readonly T[], image: (item: T) => RequestedImage): T[] {
  const seen = new Set<string>();
  return items.filter((item) => !seen.has(image(item).requestedAs) && seen.add(image(item).requestedAs));
}

function uniqueImages(images: readonly RequestedImage[]): RequestedImage[] {
  return uniqueRequests(images, (i) => i);
}

export type ImageListFormat = 'pinned-image-set' | 'bundle-spec' | 'plain';

/**
 * Which kind of image list `text` is. By extension first (.yaml/.yml/.json, .toml); otherwise by content:
 * a `key = value` line or a `[table]` header means TOML, `apiVersion:`/`kind:`/`---`/`{` means YAML (or
 * JSON), anything else is a plain list. References never contain "=", ": " or start with "[" or "{".
 */
export function detectImageListFormat(file: string, text: string): ImageListFormat {
  const lower = file.toLowerCase();
  if (/\.(ya?ml|json)$/.test(lower)) return 'pinned-image-set';
  if (lower.endsWith('.toml')) return 'bundle-spec';
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  if (lines.some((l) => /^[A-Za-z0-9_"'-]+\s*=/.test(l) || /^\[/.test(l))) return 'bundle-spec';
  if (lines.some((l) => l === '---' || l.startsWith('{') || /^(apiVersion|kind|items|spec|metadata)\s*:/.test(l))) return 'pinned-image-set';
  return 'plain';
}

async function readListText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new UserError('IMAGE_LIST_UNREADABLE', `cannot read image list ${file}: ${errnoCode(err) === 'ENOENT' ? 'no such file' : (err as Error).message}`, { subject: { kind: 'path', name: file } });
  }
}

export function parseImageList(text: string, file: string): RequestedImage[] {
  switch (detectImageListFormat(file, text)) {
    case 'pinned-image-set':
      return parsePinnedImageSets(text, file);
    case 'bundle-spec':
      // Only the images of a spec given as a list count; its release and platforms are for --spec.
      return [...parseBundleSpec(text, file).images];
    case 'plain':
      return parsePlainList(text, file);
  }
}

/** One reference per line; `#` starts a comment; blank lines are ignored. */
export function parsePlainList(text: string, file: string): RequestedImage[] {
  const out: RequestedImage[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*$/, '').trim();
    if (line !== '') out.push(requestImage(line, `${file}:${i + 1}`));
  });
  return out;
}

function yamlError(file: string, line: number, message: string): UserError {
  return new UserError('IMAGE_LIST_INVALID', `${file}:${line}: ${message}`, { subject: { kind: 'path', name: file } });
}

/**
 * PinnedImageSet documents (apiVersion machineconfiguration.openshift.io/v1 or v1alpha1): each
 * `spec.pinnedImages[].name`, from one document, several (`---`) or a `kind: List` of them.
 */
export function parsePinnedImageSets(text: string, file: string): RequestedImage[] {
  const { isScalar, LineCounter, parseAllDocuments } = yaml();
  const lines = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lines, prettyErrors: false });
  const lineOf = (node: YamlNode | null | undefined): number => (node?.range ? lines.linePos(node.range[0]).line : 1);
  if (!Array.isArray(docs)) throw yamlError(file, 1, 'not YAML');
  const out: RequestedImage[] = [];
  for (const doc of docs as Document.Parsed[]) {
    const firstError = doc.errors[0];
    if (firstError) throw yamlError(file, firstError.linePos?.[0]?.line ?? 1, `not valid YAML: ${firstError.message.split('\n')[0]}`);
    // An empty document, e.g. after a trailing "---".
    if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) continue;
    collectFromObject(doc.contents, file, lineOf, out);
  }
  return out;
}

function collectFromObject(node: unknown, file: string, lineOf: (n: YamlNode | null | undefined) => number, out: RequestedImage[]): void {
  const { isMap, isScalar, isSeq } = yaml();
  if (!isMap(node)) throw yamlError(file, lineOf(node as YamlNode), 'expected a PinnedImageSet object');
  const kind = node.get('kind');
  if (typeof kind === 'string' && kind.endsWith('List')) {
    const items = node.get('items', true);
    if (!isSeq(items)) throw yamlError(file, lineOf(node), `a ${kind} without an items list`);
    for (const item of items.items) collectFromObject(item, file, lineOf, out);
    return;
  }
  if (kind !== 'PinnedImageSet') {
    throw yamlError(file, lineOf(node.get('kind', true) as YamlNode ?? node), `kind ${JSON.stringify(kind ?? '')} is not PinnedImageSet (or a List of them)`);
  }
  const apiVersion = node.get('apiVersion');
  if (typeof apiVersion !== 'string' || !PINNED_IMAGE_SET_API_VERSIONS.includes(apiVersion)) {
    throw yamlError(file, lineOf((node.get('apiVersion', true) as YamlNode | undefined) ?? node), `apiVersion ${JSON.stringify(apiVersion ?? '')} is not one of ${PINNED_IMAGE_SET_API_VERSIONS.join(', ')}`);
  }
  const pinned = node.getIn(['spec', 'pinnedImages'], true);
  if (pinned === undefined || pinned === null) return;
  if (!isSeq(pinned)) throw yamlError(file, lineOf(pinned as YamlNode), 'spec.pinnedImages is not a list');
  for (const entry of pinned.items) {
    const name = isMap(entry) ? entry.get('name', true) : undefined;
    if (!isScalar(name) || typeof name.value !== 'string') throw yamlError(file, lineOf(entry as YamlNode), 'a pinnedImages entry without a name');
    out.push(requestImage(name.value, `${file}:${lineOf(name)}`));
  }
}
