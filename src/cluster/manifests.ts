// The cluster objects for a bundle (`bundle manifests`, docs/cluster-manifests.md): PinnedImageSets per pool,
// and with a mirror host the ImageDigestMirrorSet / ImageTagMirrorSet, written as one YAML file per object.

import { mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'yaml';
import type { BundleManifest } from '../bundle/format.js';
import { parseReference, type Repository } from '../oci/reference.js';
import { removeFileDurably, writeFileAtomic } from '../util/atomic-file.js';
import { UserError } from '../util/errors.js';
import { imageDigestMirrorSet, imageTagMirrorSet, isMirrorLocation, mirrorRules, type MirrorSetObject } from './mirror-sets.js';
import { pinnedImageSetsForPool, pinnedNameProblem, MAX_PINNED_IMAGES, type PinnedImageSetObject } from './pinned-image-set.js';
import { signatureConfigMap, type SignatureConfigMapObject } from './signature-config-map.js';
import { bundleReleases, pinnableImages } from '../bundle/bundle-manifest.js';

export const DEFAULT_POOLS = ['master', 'worker'] as const;

export interface ManifestOptions {
  /** Object name prefix, a DNS-1123 label such as "pin-preload-ocp-4-16-3" (see objectBaseName). */
  readonly name: string;
  readonly pools: readonly string[];
  /** HOST[:PORT] of a mirror serving the bundle; without it no mirror sets are made. */
  readonly mirrorHost?: string;
  /** Images per PinnedImageSet (the CRD's 500; smaller only in tests). */
  readonly perSet?: number;
}

export interface UnexpressibleImage {
  readonly image: string;
  readonly object: 'PinnedImageSet' | 'ImageDigestMirrorSet' | 'ImageTagMirrorSet';
  readonly problem: string;
}

export type ClusterObject = PinnedImageSetObject | MirrorSetObject | SignatureConfigMapObject;

export interface ClusterManifests {
  readonly objects: readonly ClusterObject[];
  /** Images that no object can name, each with why: reported to the user, never silently dropped. */
  readonly unexpressible: readonly UnexpressibleImage[];
  /** Images of the bundle that the PinnedImageSets pin (once, whatever the number of pools). */
  readonly pinnedImages: number;
}

/** A DNS-1123 label from free text (a bundle's file name, a version): lowercase, [a-z0-9-], ≤ 40 chars. */
export function objectBaseName(text: string): string {
  const cleaned = text.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/-+/g, '-').replace(/^-|-$/g, '').slice(0, 40).replace(/-$/, '');
  return `pin-preload-${cleaned || 'bundle'}`;
}

/** Pool names become label values and object name parts: a DNS-1123 label of at most 63 characters. */
export function checkPoolName(pool: string): string {
  if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(pool)) {
    throw new UserError('USAGE', `--pool "${pool}" is not a machine config pool name (lowercase letters, digits and "-", at most 63)`, { subject: { kind: 'option', name: '--pool' } });
  }
  return pool;
}

export function buildClusterManifests(manifest: BundleManifest, options: ManifestOptions): ClusterManifests {
  const unexpressible: UnexpressibleImage[] = [];
  const pinnable: string[] = [];
  for (const image of pinnableImages(manifest)) {
    const problem = pinnedNameProblem(image.name);
    if (problem) unexpressible.push({ image: image.name, object: 'PinnedImageSet', problem: `${image.name} ${problem}` });
    else pinnable.push(image.name);
  }
  const objects: ClusterObject[] = [];
  for (const pool of [...new Set(options.pools)]) objects.push(...pinnedImageSetsForPool(options.name, pool, pinnable, options.perSet ?? MAX_PINNED_IMAGES));

  if (options.mirrorHost !== undefined) {
    const repositories = new Map<string, Repository>();
    const tagged = new Map<string, Repository>();
    for (const image of pinnableImages(manifest)) {
      const ref = parseReference(image.name);
      const repo = { domain: ref.domain, path: ref.path };
      repositories.set(image.repository, repo);
      if (image.tag !== undefined) tagged.set(image.repository, repo);
    }
    const usable = (rules: ReturnType<typeof mirrorRules>, object: UnexpressibleImage['object']) =>
      rules.filter((r) => {
        const ok = isMirrorLocation(r.source) && r.mirrors.every(isMirrorLocation);
        if (!ok) unexpressible.push({ image: r.source, object, problem: `repository ${r.source} (→ ${r.mirrors.join(', ')}) does not match the ${object} source/mirror pattern` });
        return ok;
      });
    const digestRules = usable(mirrorRules([...repositories.values()], options.mirrorHost), 'ImageDigestMirrorSet');
    if (digestRules.length > 0) objects.push(imageDigestMirrorSet(options.name, digestRules));
    const tagRules = usable(mirrorRules([...tagged.values()], options.mirrorHost), 'ImageTagMirrorSet');
    if (tagRules.length > 0) objects.push(imageTagMirrorSet(options.name, tagRules));
  }
  for (const release of bundleReleases(manifest)) {
    const configMap = signatureConfigMap(release);
    if (configMap) objects.push(configMap);
  }
  return { objects, unexpressible, pinnedImages: pinnable.length };
}

/** `<object name>.<kind>.yaml`: stable names, one object each (`oc apply -f DIR` applies them all). */
export function manifestFileName(object: ClusterObject): string {
  return `${object.metadata.name}.${object.kind.toLowerCase()}.yaml`;
}

/** `--name`: it prefixes every object name, so it must be a DNS-1123 label short enough for pool and index. */
export function checkObjectName(name: string): string {
  if (!/^[a-z0-9]([-a-z0-9]{0,98}[a-z0-9])?$/.test(name)) {
    throw new UserError('USAGE', `--name "${name}" is not usable as an object name (lowercase letters, digits and "-", at most 100)`, { subject: { kind: 'option', name: '--name' } });
  }
  return name;
}

export interface WrittenManifests {
  readonly files: readonly string[];
  /** Files of an earlier run for the same name that this run no longer produces (e.g. fewer sets). */
  readonly removed: readonly string[];
}

/**
 * One YAML document per file, written atomically. Files an earlier run wrote for the same name and pools
 * that this run does not (a set fewer after a smaller bundle, mirror sets without --mirror-host) are
 * removed, so `oc apply -f DIR` never applies a stale object; nothing else in DIR is touched.
 */
export async function writeClusterManifests(dir: string, manifests: ClusterManifests, options: Pick<ManifestOptions, 'name' | 'pools'>): Promise<WrittenManifests> {
  const files: string[] = [];
  for (const object of manifests.objects) {
    const file = path.join(dir, manifestFileName(object));
    await writeFileAtomic(file, stringify(object, { lineWidth: 0 }));
    files.push(file);
  }
  const written = new Set(files.map((f) => path.basename(f)));
  const pools = options.pools.join('|');
  const ours = new RegExp(`^${options.name}(-(${pools})(-[0-9]+)?\\.pinnedimageset|\\.imagedigestmirrorset|\\.imagetagmirrorset)\\.yaml$`);
  const removed: string[] = [];
  for (const entry of await readdir(dir)) {
    if (ours.test(entry) && !written.has(entry)) {
      await removeFileDurably(path.join(dir, entry));
      removed.push(path.join(dir, entry));
    }
  }
  return { files, removed };
}

export interface BundleManifestsResult extends WrittenManifests {
  readonly bundle: string;
  readonly dir: string;
  readonly name: string;
  readonly pools: readonly string[];
  readonly mirrorHost: string | null;
  readonly objects: ReadonlyArray<{ readonly kind: string; readonly name: string; readonly file: string; readonly entries: number }>;
  readonly pinnedImages: number;
  readonly unexpressible: readonly UnexpressibleImage[];
}

/** Reads a bundle's manifest (seal-checked; no blob is read) and writes its cluster objects into `dir`. */
export async function writeBundleClusterManifests(bundleFile: string, dir: string, options: { name?: string; pools?: readonly string[]; mirrorHost?: string }): Promise<BundleManifestsResult> {
  const { openBundle } = await import('../bundle/reader.js');
  const bundle = await openBundle(bundleFile);
  await bundle.close();
  const name = options.name ?? objectBaseName(bundle.name.replace(/\.tar$/, ''));
  const pools = options.pools && options.pools.length > 0 ? [...new Set(options.pools)] : [...DEFAULT_POOLS];
  const manifests = buildClusterManifests(bundle.manifest, { name, pools, ...(options.mirrorHost !== undefined ? { mirrorHost: options.mirrorHost } : {}) });
  await mkdir(dir, { recursive: true });
  const written = await writeClusterManifests(dir, manifests, { name, pools });
  return {
    bundle: path.join(bundle.dir, bundle.name),
    dir,
    name,
    pools,
    mirrorHost: options.mirrorHost ?? null,
    objects: manifests.objects.map((o, i) => ({ kind: o.kind, name: o.metadata.name, file: written.files[i]!, entries: entriesOf(o) })),
    pinnedImages: manifests.pinnedImages,
    unexpressible: manifests.unexpressible,
    ...written,
  };
}

function entriesOf(object: ClusterObject): number {
  if (object.kind === 'PinnedImageSet') return object.spec.pinnedImages.length;
  if (object.kind === 'ConfigMap') return Object.keys(object.binaryData).length;
  return Object.values(object.spec)[0]?.length ?? 0;
}
