// The bundle directory as the node sees it: which bundles are there (one per seal file), what each asks for
// (its images and their layer sizes), and a cheap fingerprint telling whether its files changed since verified.

import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { SEAL_SUFFIX, type BundleImage, type BundleManifest } from '../bundle/format.js';
import { locateBundle, openBundle } from '../bundle/reader.js';
import { sha256Of } from '../oci/digest.js';
import { parseReference, type Repository } from '../oci/reference.js';
import { errnoCode } from '../util/errors.js';
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
  const files = await locateBundle(sealPath);
  const parts = [files.sealBytes ? sha256Of(files.sealBytes) : 'unsealed'];
  for (const volume of files.volumes) {
    const st = await stat(volume.path);
    parts.push(`${path.basename(volume.path)}:${st.size}:${Math.trunc(st.mtimeMs)}`);
  }
  return parts.join(' ');
}

/** Reads one bundle's manifest (the first tar entry, checked against the seal) and fingerprint. */
export async function readNodeBundle(sealPath: string): Promise<NodeBundle> {
  const fingerprint = await bundleFingerprint(sealPath);
  const opened = await openBundle(sealPath);
  try {
    return {
      path: path.join(opened.dir, opened.name),
      sealPath,
      manifest: opened.manifest,
      manifestDigest: sha256Of(opened.manifestBytes),
      fingerprint,
    };
  } finally {
    await opened.close();
  }
}

export interface DesiredImage {
  readonly name: string;
  readonly repository: Repository;
  readonly bundle: string;
  /** Compressed bytes of its config and layers: what a pull transfers. */
  readonly bytes: number;
  readonly layers: ImageLayers['layers'];
}

/**
 * Every image of every bundle, once (the first bundle naming it wins). A bundle made for one platform lists
 * exactly that platform's layers; for a multi-platform bundle every platform's layers count, which can only
 * over-estimate the space needed.
 */
export function desiredImages(bundles: readonly NodeBundle[]): DesiredImage[] {
  const byName = new Map<string, DesiredImage>();
  for (const bundle of bundles) {
    const blobs = new Map(bundle.manifest.blobs.map((b) => [b.digest as string, b]));
    for (const image of bundle.manifest.images) {
      if (byName.has(image.name)) continue;
      byName.set(image.name, toDesired(image, bundle.path, blobs));
    }
  }
  return [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
}

function toDesired(image: BundleImage, bundle: string, blobs: Map<string, BundleManifest['blobs'][number]>): DesiredImage {
  const ref = parseReference(image.name);
  let bytes = 0;
  const layers: Array<ImageLayers['layers'][number]> = [];
  for (const digest of image.blobs) {
    const blob = blobs.get(digest);
    if (!blob) continue; // the reader already refused bundles whose images name blobs they lack
    bytes += blob.size;
    if (blob.role === 'layer') layers.push({ digest, size: blob.size, uncompressedSize: blob.uncompressedSize });
  }
  return { name: image.name, repository: { domain: ref.domain, path: ref.path }, bundle, bytes, layers };
}

/** The key of a set of bundles: a new key means a new generation. */
export function bundleSetKey(bundles: readonly NodeBundle[]): string {
  return bundles.map((b) => b.manifestDigest).sort().join(',');
}
