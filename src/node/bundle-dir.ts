// The bundle directory as the node sees it: which bundles are there (one per seal file), each opened once per
// sync into a handle, what each asks for (its images and their layer sizes), and a cheap fingerprint telling
// whether its files changed since verified.

import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { SEAL_SUFFIX, SIGNATURE_SUFFIX, type BundleBase, type BundleImage, type BundleManifest } from '../bundle/format.js';
import { locateBundle, openLocatedBundle, readSmallRange, type BlobLocation, type BundleFiles, type OpenedBundle } from '../bundle/reader.js';
import { parseManifest } from '../oci/manifest.js';
import { bundleBases, missingFromChain, pinnableImages } from '../bundle/bundle-manifest.js';
import { platformMatches, type Platform } from '../oci/platform.js';
import { sha256Of, type Digest } from '../oci/digest.js';
import { parseReference, type Repository } from '../oci/reference.js';
import { errnoCode, UserError } from '../util/errors.js';
import { removeFileDurably } from '../util/atomic-file.js';
import type { ImageLayers } from './storage-check.js';

export interface NodeBundle {
  /** dir/name, as the mirror's bundle index names it. */
  readonly path: string;
  readonly sealPath: string;
  readonly manifest: BundleManifest;
  readonly manifestDigest: string;
  /** seal digest + every volume's size and mtime. */
  readonly fingerprint: string;
}

/** Seal files of complete bundles in `dir`; import renames the seal in last, so a seal means "all there". */
export async function listSealFiles(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    throw err;
  }
  return names.filter((n) => n.endsWith(SEAL_SUFFIX) && !n.startsWith('.')).sort().map((n) => path.join(dir, n));
}

export async function bundleFingerprint(sealPath: string): Promise<string> {
  return fingerprintOf(await locateBundle(sealPath));
}

/** The fingerprint of a located bundle: its seal as read when located, its volumes as they are now. */
async function fingerprintOf(files: BundleFiles): Promise<string> {
  const parts = [files.sealBytes ? sha256Of(files.sealBytes) : 'unsealed'];
  for (const volume of files.volumes) {
    const st = await stat(volume.path);
    parts.push(`${path.basename(volume.path)}:${st.size}:${Math.trunc(st.mtimeMs)}`);
  }
  return parts.join(' ');
}

/**
 * Removes a bundle from the bundle dir the way the operator guide tells an admin to: the seal first (durably),
 * so no reader ever sees a seal whose volumes are going; then its signature and volumes. A crash in between
 * leaves unsealed volumes, which no sync reads. Returns the files removed.
 */
export async function removeBundleFromDir(sealPath: string): Promise<string[]> {
  const files = await locateBundle(sealPath);
  const removed: string[] = [];
  if (await removeFileDurably(files.sealPath)) removed.push(files.sealPath);
  for (const file of [path.join(files.dir, files.name + SIGNATURE_SUFFIX), ...files.volumes.map((v) => v.path)]) {
    if (await removeFileDurably(file)) removed.push(file);
  }
  return removed;
}

/**
 * A bundle opened for one sync: located once (the seal read once), its manifest read once, and its blob index
 * (the scan of the tar headers) built at most once, on first use. The signature check, the storage estimate
 * and the mirror's registration read from it instead of opening the bundle again; the verifier takes its
 * located files and seal but reads every byte through volume files of its own (its hash workers need their
 * own descriptors). One handle is one bundle's files; bundles that serve together are a list of handles.
 */
export interface OpenNodeBundle extends NodeBundle {
  /** The located files (seal bytes, signature path, volumes) and the manifest; `locateBlobs` is remembered. */
  readonly opened: OpenedBundle;
}

export type NodeBundleOpener = (sealPath: string) => Promise<OpenNodeBundle>;

/** Opens one bundle of the bundle dir; its `opened.close()` closes the volume files. */
export async function openNodeBundle(sealPath: string): Promise<OpenNodeBundle> {
  // The open checks the volumes first (a missing one is BUNDLE_VOLUME_MISSING naming it), so the fingerprint's
  // stat never meets a missing volume as a raw ENOENT.
  const opened = await openLocatedBundle(await locateBundle(sealPath));
  let fingerprint: string;
  try {
    fingerprint = await fingerprintOf(opened);
  } catch (err) {
    await opened.close();
    throw err;
  }
  let index: Promise<Map<Digest, BlobLocation>> | undefined;
  return {
    path: path.join(opened.dir, opened.name),
    sealPath,
    manifest: opened.manifest,
    manifestDigest: sha256Of(opened.manifestBytes),
    fingerprint,
    opened: { ...opened, locateBlobs: () => (index ??= opened.locateBlobs()) },
  };
}

/** Reads one bundle's manifest (the first tar entry, checked against the seal) and fingerprint. */
export async function readNodeBundle(sealPath: string): Promise<NodeBundle> {
  const { opened, ...bundle } = await openNodeBundle(sealPath);
  await opened.close();
  return bundle;
}

/** A bundle of the bundle dir that could not be read, and why. */
export interface UnreadableBundle {
  readonly sealPath: string;
  readonly why: string;
}

/**
 * Reads each bundle (manifest and fingerprint), setting aside those that cannot be read (a missing volume, a
 * damaged manifest) with why: for what needs only the readable ones, such as an import's base check. A sync
 * opens every bundle and fails on a bad one by name. A bug (no UserError, no errno code) is thrown.
 */
export async function readBundles(sealPaths: readonly string[]): Promise<{ bundles: NodeBundle[]; unreadable: UnreadableBundle[] }> {
  const bundles: NodeBundle[] = [];
  const unreadable: UnreadableBundle[] = [];
  for (const sealPath of sealPaths) {
    try {
      bundles.push(await readNodeBundle(sealPath));
    } catch (err) {
      if (!(err instanceof UserError) && errnoCode(err) === undefined) throw err;
      unreadable.push({ sealPath, why: (err as Error).message });
    }
  }
  return { bundles, unreadable };
}

/**
 * The bundles one preload has opened, by seal path, each opened at most once: the second sync a retirement
 * starts reuses the handles of the bundles still there. `close` closes them all.
 */
export class OpenBundles {
  private readonly bySeal = new Map<string, Promise<OpenNodeBundle>>();

  constructor(private readonly opener: NodeBundleOpener = openNodeBundle) {}

  open(sealPath: string): Promise<OpenNodeBundle> {
    let bundle = this.bySeal.get(sealPath);
    if (!bundle) {
      bundle = this.opener(sealPath);
      this.bySeal.set(sealPath, bundle);
    }
    return bundle;
  }

  async close(): Promise<void> {
    const bundles = [...this.bySeal.values()];
    this.bySeal.clear();
    for (const bundle of bundles) await (await bundle.catch(() => undefined))?.opened.close();
  }
}

/**
 * The bases `manifest` (a delta) needs that are not among `present`, following chains (missingFromChain).
 * Empty for a full bundle, or a delta whose every base is there.
 */
export function missingBases(manifest: BundleManifest, present: readonly NodeBundle[]): BundleBase[] {
  return missingFromChain(bundleBases(manifest), present.map((b) => ({ manifestDigest: b.manifestDigest, bases: bundleBases(b.manifest) })));
}

export interface DesiredImage {
  readonly name: string;
  readonly repository: Repository;
  readonly bundle: string;
  readonly sealPath: string;
  /** Every manifest of the image, top first (an index, then its children). */
  readonly manifests: readonly string[];
  /** Compressed bytes of its config and layers: what a pull transfers. */
  readonly bytes: number;
  readonly layers: ImageLayers['layers'];
  /** An extra image the bundle serves under the tag it was resolved from, so the runtime may pull it by that tag. */
  readonly servedByTag: boolean;
}

/**
 * Every image of every bundle, once (the first bundle naming it wins), with the layers of all the platforms
 * the bundle holds; `layersForPlatform` narrows multi-platform images to what the node will pull.
 */
export function desiredImages(bundles: readonly NodeBundle[]): DesiredImage[] {
  const byName = new Map<string, DesiredImage>();
  // Across bundles: a delta's images have layers its base holds.
  const blobs = new Map(bundles.flatMap((bundle) => bundle.manifest.blobs.map((b) => [b.digest as string, b] as const)));
  for (const bundle of bundles) {
    for (const image of pinnableImages(bundle.manifest)) {
      if (byName.has(image.name)) continue;
      byName.set(image.name, toDesired(image, bundle, blobs));
    }
  }
  return [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
}

function toDesired(image: BundleImage, bundle: NodeBundle, blobs: Map<string, BundleManifest['blobs'][number]>): DesiredImage {
  const ref = parseReference(image.name);
  let bytes = 0;
  const layers: Array<ImageLayers['layers'][number]> = [];
  for (const digest of image.blobs) {
    const blob = blobs.get(digest);
    if (!blob) continue; // a delta's layer whose base is missing: preload refuses the bundle before it counts
    bytes += blob.size;
    if (blob.role === 'layer') layers.push({ digest, size: blob.size, uncompressedSize: blob.uncompressedSize });
  }
  return { name: image.name, repository: { domain: ref.domain, path: ref.path }, bundle: bundle.path, sealPath: bundle.sealPath, manifests: image.manifests, bytes, layers, servedByTag: image.origin === 'extra' && image.tag !== undefined };
}

/** The key of a set of bundles: a new key means a new generation. */
export function bundleSetKey(bundles: readonly NodeBundle[]): string {
  return bundles.map((b) => b.manifestDigest).sort().join(',');
}

const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const NODE_ARCHITECTURES: Record<string, string> = { x64: 'amd64', arm64: 'arm64', ppc64: 'ppc64le', s390x: 's390x', arm: 'arm' };

/** The platform the runtime on this node pulls (the runtime runs on the same machine). */
export function nodePlatform(): Platform {
  return { os: 'linux', architecture: NODE_ARCHITECTURES[process.arch] ?? process.arch };
}

/**
 * Narrows images stored as an index with several children to the layers of the child the runtime will pick
 * for `platform`, reading the (small) manifests from the bundle. Anything unexpected keeps the union of every
 * platform's layers: an over-estimate, never an under-estimate.
 */
export async function layersForPlatform(images: readonly DesiredImage[], bundles: readonly OpenNodeBundle[], platform: Platform): Promise<DesiredImage[]> {
  const multi = images.filter((i) => i.manifests.length > 2);
  if (multi.length === 0) return [...images];
  const narrowed = new Map<string, DesiredImage>();
  const sizes = new Map(bundles.flatMap((bundle) => bundle.manifest.blobs.map((b) => [b.digest as string, b] as const)));
  for (const bundle of bundles) {
    const mine = multi.filter((i) => i.sealPath === bundle.sealPath);
    if (mine.length === 0) continue;
    const opened = bundle.opened;
    const located = await opened.locateBlobs();
    const manifestAt = async (digest: string) => {
      const at = located.get(digest as Digest);
      // Manifests are small; anything bigger is not read into memory (the estimate then stays).
      return at && at.size <= MAX_MANIFEST_BYTES ? parseManifest(await readSmallRange(opened, at.offset, at.size), undefined, `${bundle.path}: manifest ${digest}`) : undefined;
    };
    for (const image of mine) {
      try {
        const top = await manifestAt(image.manifests[0]!);
        if (top?.kind !== 'index') continue;
        const child = top.manifests.find((m) => m.platform !== undefined && platformMatches(platform, m.platform) && image.manifests.includes(m.digest));
        const manifest = child ? await manifestAt(child.digest) : undefined;
        if (manifest?.kind !== 'image') continue;
        const layers = manifest.layers.flatMap((l) => {
          const blob = sizes.get(l.digest);
          return blob ? [{ digest: l.digest as string, size: blob.size, uncompressedSize: blob.uncompressedSize }] : [];
        });
        narrowed.set(image.name, { ...image, layers });
      } catch {
        // keep the over-estimate for this image
      }
    }
  }
  return images.map((i) => narrowed.get(i.name) ?? i);
}
