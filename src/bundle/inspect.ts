// `bundle inspect`: what a bundle holds (release, images, sizes, volumes, signature state), reading only
// the seal, the signature file and the manifest entry at the start of the first volume — never a blob.

import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { BundleBase, BundleManifest } from './format.js';
import { bundleReleases } from './bundle-manifest.js';
import { checkFirstVolumePresent, locateBundle, readBundleManifest } from './reader.js';
import { VolumeSet } from './volumes.js';
import { bundleReadFailure } from './volume-io-error.js';
import { errnoCode } from '../util/errors.js';

export interface InspectedImage {
  readonly name: string;
  readonly tag?: string;
  readonly origin: string;
  readonly component?: string;
  /** For origin "signature": the digest of the image it signs or refers to, and its artifactType if declared. */
  readonly subject?: string;
  readonly artifactType?: string;
  readonly platforms: readonly string[];
  /** Bytes of the image's own manifests and blobs (shared blobs counted for each image). */
  readonly size: number;
  readonly uncompressedSize: number;
  readonly uncompressedEstimated: boolean;
}

export interface BundleInspection {
  readonly bundle: string;
  readonly created: string;
  readonly tool: string;
  readonly release?: { readonly name: string; readonly version: string };
  /** Every release of the bundle (one for bundles written before several could be). */
  readonly releases: ReadonlyArray<{ readonly name: string; readonly version: string; readonly channel?: string; readonly components: number; readonly signatures: number }>;
  readonly platforms: readonly string[];
  readonly images: readonly InspectedImage[];
  readonly blobs: number;
  readonly uniqueBytes: number;
  readonly uncompressedBytes: number;
  readonly uncompressedEstimated: boolean;
  readonly totalSize: number;
  readonly sealed: boolean;
  readonly volumes: ReadonlyArray<{ readonly name: string; readonly size: number; readonly present: boolean; readonly sizeMatches: boolean; readonly sha256?: string }>;
  readonly signature: { readonly present: boolean; readonly keyId?: string };
  /** A delta's bases (bundle-manifest `bases`); absent for a full bundle. Image sizes count only what this bundle holds. */
  readonly bases?: readonly BundleBase[];
}

function imageSummary(manifest: BundleManifest): InspectedImage[] {
  const blobs = new Map(manifest.blobs.map((b) => [b.digest as string, b]));
  return manifest.images.map((image) => {
    const own = [...new Set([...image.manifests, ...image.blobs])].map((d) => blobs.get(d)).filter((b) => b !== undefined);
    return {
      name: image.name,
      ...(image.tag !== undefined ? { tag: image.tag } : {}),
      origin: image.origin,
      ...(image.component !== undefined ? { component: image.component } : {}),
      ...(image.subject !== undefined ? { subject: image.subject } : {}),
      ...(image.artifactType !== undefined ? { artifactType: image.artifactType } : {}),
      platforms: image.platforms,
      size: own.reduce((s, b) => s + b.size, 0),
      uncompressedSize: own.filter((b) => b.role === 'layer').reduce((s, b) => s + b.uncompressedSize, 0),
      uncompressedEstimated: own.some((b) => b.role === 'layer' && b.uncompressedEstimated),
    };
  });
}

async function signatureKeyId(file: string | undefined): Promise<string | undefined> {
  if (!file) return undefined;
  try {
    const doc = JSON.parse(await fs.readFile(file, 'utf8')) as { keyId?: unknown };
    return typeof doc.keyId === 'string' ? doc.keyId : undefined;
  } catch {
    return undefined;
  }
}

export async function inspectBundle(file: string): Promise<BundleInspection> {
  const files = await locateBundle(file);
  await checkFirstVolumePresent(files);
  const volumes = new VolumeSet(files.volumes);
  let manifest: BundleManifest;
  try {
    manifest = (await readBundleManifest(files, volumes)).manifest;
  } catch (err) {
    throw bundleReadFailure(err, path.join(files.dir, files.name));
  } finally {
    await volumes.close();
  }
  const volumeStates = await Promise.all(
    files.volumes.map(async (v, i) => {
      let size: number | undefined;
      try {
        size = (await fs.stat(v.path)).size;
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT') throw err;
      }
      const sha256 = files.seal?.volumes[i]?.sha256;
      return { name: path.basename(v.path), size: v.size, present: size !== undefined, sizeMatches: size === v.size, ...(sha256 ? { sha256 } : {}) };
    }),
  );
  const keyId = await signatureKeyId(files.signaturePath);
  return {
    bundle: path.join(files.dir, files.name),
    created: manifest.created,
    tool: `${manifest.tool?.name ?? '?'} ${manifest.tool?.version ?? '?'}`,
    ...(manifest.release ? { release: { name: manifest.release.name, version: manifest.release.version } } : {}),
    releases: bundleReleases(manifest).map((r) => ({ name: r.name, version: r.version, ...(r.channel !== undefined ? { channel: r.channel } : {}), components: r.components.length, signatures: r.signatures?.length ?? 0 })),
    platforms: manifest.platforms ?? [],
    images: imageSummary(manifest),
    blobs: manifest.blobs.length,
    uniqueBytes: manifest.blobs.reduce((s, b) => s + b.size, 0),
    uncompressedBytes: manifest.blobs.filter((b) => b.role === 'layer').reduce((s, b) => s + b.uncompressedSize, 0),
    uncompressedEstimated: manifest.blobs.some((b) => b.role === 'layer' && b.uncompressedEstimated),
    totalSize: files.volumes.reduce((s, v) => s + v.size, 0),
    sealed: files.seal !== undefined,
    volumes: volumeStates,
    signature: { present: files.signaturePath !== undefined, ...(keyId ? { keyId } : {}) },
    ...(manifest.bases ? { bases: manifest.bases } : {}),
  };
}
