// oc-mirror's ImageSetConfiguration (mirror.openshift.io/v2alpha1 and v1alpha2) read as a selection: the
// platform channels and architectures, additionalImages and blockedImages; operators and helm are refused.

import type { Node as YamlNode, YAMLMap } from 'yaml';
import type { ChannelRequest } from '../release/channel.js';
import { parseVersion } from '../release/update-graph.js';
import { UserError } from '../util/errors.js';
import { yaml } from '../util/yaml.js';
import { requestImage, type RequestedImage } from './selection.js';

export const IMAGE_SET_CONFIG_API_VERSIONS = ['mirror.openshift.io/v2alpha1', 'mirror.openshift.io/v1alpha2'];

/** A blockedImages entry: a regular expression searched (unanchored) in each image's name, as oc-mirror does. */
export interface BlockedImage {
  readonly pattern: RegExp;
  readonly text: string;
  readonly origin: string;
}

export interface ImageSetSelection {
  readonly channels: readonly ChannelRequest[];
  /** mirror.platform.release: one release by tag or digest (oc-mirror v2). */
  readonly releases: readonly RequestedImage[];
  /** mirror.platform.architectures as update-service arch names (amd64, arm64, ppc64le, s390x, multi). */
  readonly architectures: readonly string[];
  readonly images: readonly RequestedImage[];
  readonly blocked: readonly BlockedImage[];
}

/** Whether a YAML text is an ImageSetConfiguration (its kind, anywhere at the top level). */
export function looksLikeImageSetConfig(text: string): boolean {
  return /^kind:\s*["']?ImageSetConfiguration["']?\s*$/m.test(text);
}

export function parseImageSetConfig(text: string, file: string): ImageSetSelection {
  const { isMap, isScalar, isSeq, LineCounter, parseDocument } = yaml();
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  const lineOf = (node: unknown): number => {
    const range = (node as YamlNode | null | undefined)?.range;
    return range ? lines.linePos(range[0]).line : 1;
  };
  const fail = (node: unknown, message: string): UserError => new UserError('IMAGE_SET_CONFIG_INVALID', `${file}:${lineOf(node)}: ${message}`, { subject: { kind: 'path', name: file } });
  const firstError = doc.errors[0];
  if (firstError) throw new UserError('IMAGE_SET_CONFIG_INVALID', `${file}:${firstError.linePos?.[0]?.line ?? 1}: not valid YAML: ${firstError.message.split('\n')[0]}`);
  const root = doc.contents;
  if (!isMap(root)) throw fail(root, 'expected an ImageSetConfiguration object');
  const apiVersion = root.get('apiVersion');
  if (typeof apiVersion !== 'string' || !IMAGE_SET_CONFIG_API_VERSIONS.includes(apiVersion)) {
    throw fail(root.get('apiVersion', true) ?? root, `apiVersion ${JSON.stringify(apiVersion ?? '')} is not one of ${IMAGE_SET_CONFIG_API_VERSIONS.join(', ')}`);
  }
  const mirror = root.get('mirror', true);
  if (mirror === undefined || mirror === null) return { channels: [], releases: [], architectures: [], images: [], blocked: [] };
  if (!isMap(mirror)) throw fail(mirror, 'mirror is not a mapping');

  /** A key that is missing, or present with no value (`key:` or `key: ~`). */
  const absent = (node: unknown): boolean => node === undefined || node === null || (isScalar(node) && node.value === null);

  // Sections whose content is not an image list we can bundle yet: refuse by name rather than skip.
  for (const section of ['operators', 'helm'] as const) {
    const node = mirror.get(section, true);
    if (absent(node)) continue;
    if (isSeq(node) && node.items.length === 0) continue;
    if (isMap(node) && node.items.length === 0) continue;
    const key = mirror.items.find((pair) => isScalar(pair.key) && pair.key.value === section)?.key;
    throw new UserError('IMAGE_SET_SECTION_UNSUPPORTED', `${file}:${lineOf(key ?? node)}: mirror.${section} is not supported yet (only mirror.platform, mirror.additionalImages and mirror.blockedImages are read)`, {
      hint: `remove the ${section} section, or list its images under mirror.additionalImages`,
    });
  }

  const str = (map: YAMLMap, key: string, where: string): string | undefined => {
    const node = map.get(key, true);
    if (absent(node)) return undefined;
    if (!isScalar(node) || (typeof node.value !== 'string' && typeof node.value !== 'number') || String(node.value).trim() === '') throw fail(node ?? map, `${where}.${key} must be a non-empty string`);
    return String(node.value);
  };
  const bool = (map: YAMLMap, key: string, where: string): boolean => {
    const node = map.get(key, true);
    if (node === undefined || node === null) return false;
    if (!isScalar(node) || typeof node.value !== 'boolean') throw fail(node, `${where}.${key} must be true or false`);
    return node.value;
  };
  const seq = (map: YAMLMap, key: string, where: string): YamlNode[] => {
    const node = map.get(key, true);
    if (absent(node)) return [];
    if (!isSeq(node)) throw fail(node, `${where}.${key} is not a list`);
    return node.items as YamlNode[];
  };
  const named = (items: readonly YamlNode[], where: string): Array<{ name: string; node: YamlNode }> =>
    items.map((item, i) => {
      if (!isMap(item)) throw fail(item, `${where}[${i}] is not a mapping with a name`);
      const name = str(item, 'name', `${where}[${i}]`);
      if (name === undefined) throw fail(item, `${where}[${i}] has no name`);
      return { name, node: (item.get('name', true) as YamlNode) ?? item };
    });

  const channels: ChannelRequest[] = [];
  const releases: RequestedImage[] = [];
  const architectures: string[] = [];
  const platform = mirror.get('platform', true);
  if (platform !== undefined && platform !== null) {
    if (!isMap(platform)) throw fail(platform, 'mirror.platform is not a mapping');
    const platformFull = bool(platform, 'full', 'mirror.platform');
    seq(platform, 'channels', 'mirror.platform').forEach((item, i) => {
      const where = `mirror.platform.channels[${i}]`;
      if (!isMap(item)) throw fail(item, `${where} is not a mapping`);
      const name = str(item, 'name', where);
      if (name === undefined) throw fail(item, `${where} has no name`);
      const type = str(item, 'type', where);
      if (type !== undefined && type !== 'ocp') throw fail(item.get('type', true), `${where}.type "${type}" is not supported (only ocp)`);
      const version = (key: string): string | undefined => {
        const v = str(item, key, where);
        if (v !== undefined && parseVersion(v) === undefined) throw fail(item.get(key, true), `${where}.${key} "${v}" is not a version such as 4.16.3`);
        return v;
      };
      const minVersion = version('minVersion');
      const maxVersion = version('maxVersion');
      channels.push({
        name,
        ...(minVersion !== undefined ? { minVersion } : {}),
        ...(maxVersion !== undefined ? { maxVersion } : {}),
        shortestPath: bool(item, 'shortestPath', where),
        full: platformFull || bool(item, 'full', where),
        origin: `${file}:${lineOf(item)}`,
      });
    });
    for (const node of seq(platform, 'architectures', 'mirror.platform')) {
      if (!isScalar(node) || typeof node.value !== 'string' || !/^[a-z0-9_]+$/.test(node.value)) throw fail(node, 'mirror.platform.architectures entries must be names such as amd64, arm64 or multi');
      if (!architectures.includes(node.value)) architectures.push(node.value);
    }
    const release = str(platform, 'release', 'mirror.platform');
    if (release !== undefined) releases.push(requestImage(release, `${file}:${lineOf(platform.get('release', true))}`));
  }

  const images = named(seq(mirror, 'additionalImages', 'mirror'), 'mirror.additionalImages').map(({ name, node }) => requestImage(name, `${file}:${lineOf(node)}`));
  const blocked = named(seq(mirror, 'blockedImages', 'mirror'), 'mirror.blockedImages').map(({ name, node }): BlockedImage => {
    try {
      return { pattern: new RegExp(name), text: name, origin: `${file}:${lineOf(node)}` };
    } catch (err) {
      throw fail(node, `mirror.blockedImages: "${name}" is not a valid regular expression (${(err as Error).message})`);
    }
  });
  return { channels, releases, architectures, images, blocked };
}

/** The blockedImages entry that matches an image, looked for in each of the names it goes by. */
export function blockedBy(blocked: readonly BlockedImage[], names: readonly string[]): BlockedImage | undefined {
  return blocked.find((b) => names.some((n) => b.pattern.test(n)));
}
