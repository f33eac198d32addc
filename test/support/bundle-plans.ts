// Hand-built bundle plans and an in-memory ImageSource, for bundle tests that need no registry.
// Images are tiny OCI images whose layers are arbitrary bytes (the bundle never looks inside layers).

import { createHash, randomBytes } from 'node:crypto';
import { pipeline, Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import type { BundlePlan, PlannedBlob, PlannedImage } from '../../src/plan/plan.js';
import type { BlobStreamOptions, FetchedManifest, ImageSource } from '../../src/registry/source.js';
import { DigestMismatchError, sha256Of, VerifyingStream, type Digest } from '../../src/oci/digest.js';
import type { Reference, Repository } from '../../src/oci/reference.js';
import { MediaType } from '../../src/oci/media-types.js';
import { openBundle, type TarEntry } from '../../src/bundle/reader.js';

export interface TestImage {
  readonly image: PlannedImage;
  readonly blobs: PlannedBlob[];
}

/** An OCI image in `repo` with a config and gzip layers made of `layers`' bytes. */
export function testImage(repo: Repository, name: string, layers: readonly Buffer[], options: { tag?: string } = {}): TestImage {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Labels: { name } }, rootfs: { type: 'layers', diff_ids: [] } }));
  const gz = layers.map((l) => gzipSync(l));
  const configBlob = plannedBlob(config, MediaType.ociConfig, 'config', repo, config.length);
  const layerBlobs = gz.map((g, i) => plannedBlob(g, MediaType.ociLayerGzip, 'layer', repo, layers[i]!.length * 3, true));
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: { mediaType: MediaType.ociConfig, digest: configBlob.digest, size: config.length },
    layers: layerBlobs.map((b) => ({ mediaType: b.mediaType, digest: b.digest, size: b.size })),
  }));
  const manifestBlob = plannedBlob(manifest, MediaType.ociManifest, 'manifest', repo, manifest.length);
  const image: PlannedImage = {
    reference: { ...repo, digest: manifestBlob.digest },
    requestedAs: `${repo.domain}/${repo.path}:${options.tag ?? 'latest'}`,
    ...(options.tag !== undefined ? { tag: options.tag } : {}),
    origin: 'extra',
    mediaType: MediaType.ociManifest,
    platforms: [{ os: 'linux', architecture: 'amd64' }],
    manifests: [manifestBlob.digest],
    blobs: [configBlob.digest, ...layerBlobs.map((b) => b.digest)],
  };
  return { image, blobs: [manifestBlob, configBlob, ...layerBlobs] };
}

/** A planned blob of `repo` carrying its bytes (`content`, what blobContents and MemorySource serve). */
export function plannedBlob(bytes: Buffer, mediaType: string, role: PlannedBlob['role'], repo: Repository, uncompressed: number, estimated = false): PlannedBlob & { content: Buffer } {
  return {
    digest: sha256Of(bytes),
    size: bytes.length,
    mediaType,
    role,
    repositories: [`${repo.domain}/${repo.path}`],
    ...(role === 'manifest' ? { bytes } : {}),
    uncompressedSize: uncompressed,
    uncompressedEstimated: estimated,
    content: bytes,
  };
}

/** A plan over `images`, blobs deduplicated and sorted by digest as resolve.ts does. */
export function testPlan(images: readonly TestImage[]): BundlePlan {
  const blobs = new Map<Digest, PlannedBlob>();
  for (const im of images) for (const b of im.blobs) if (!blobs.has(b.digest)) blobs.set(b.digest, b);
  const sorted = [...blobs.values()].sort((a, b) => (a.digest < b.digest ? -1 : 1));
  const uniqueBytes = sorted.reduce((s, b) => s + b.size, 0);
  return {
    releases: [],
    channels: [],
    blocked: [],
    platforms: [{ os: 'linux', architecture: 'amd64' }],
    images: images.map((i) => i.image),
    blobs: sorted,
    totals: {
      images: images.length,
      uniqueBlobs: sorted.length,
      uniqueBytes,
      bytesWithRepeats: images.reduce((s, i) => s + i.blobs.reduce((t, b) => t + b.size, 0), 0),
      uncompressedBytes: sorted.reduce((s, b) => s + b.uncompressedSize, 0),
    },
  };
}

/** The bytes of every blob of a plan, by digest. */
export function blobContents(images: readonly TestImage[]): Map<Digest, Buffer> {
  const out = new Map<Digest, Buffer>();
  for (const im of images) for (const b of im.blobs) out.set(b.digest, (b as PlannedBlob & { content: Buffer }).content);
  return out;
}

/** An ImageSource serving `contents` from memory, counting the bytes it hands out per blob. */
export class MemorySource implements ImageSource {
  /** Its streams check digest and size, as the registry client's do (VerifyingStream below). */
  readonly verifiesBlobs = true;
  readonly served = new Map<Digest, number>();
  /** Blobs that fail after this many bytes (once per listed count), for failure and resume tests. */
  readonly failAfter = new Map<Digest, number>();

  constructor(private readonly contents: Map<Digest, Buffer>) {}

  async getManifest(ref: Reference): Promise<FetchedManifest> {
    const bytes = ref.digest ? this.contents.get(ref.digest) : undefined;
    if (!bytes || !ref.digest) throw new Error(`manifest ${ref.digest ?? ref.tag} not found`);
    return { bytes, mediaType: MediaType.ociManifest, digest: ref.digest };
  }

  blobStream(_repo: Repository, want: { digest: Digest; size: number }, options: BlobStreamOptions = {}): Readable {
    const bytes = this.contents.get(want.digest);
    if (!bytes) return Readable.from((async function* () { throw new Error(`blob ${want.digest} not found`); })());
    const offset = options.offset ?? 0;
    const failAt = this.failAfter.get(want.digest);
    const slice = bytes.subarray(offset, failAt === undefined ? bytes.length : Math.min(bytes.length, Math.max(offset, failAt)));
    this.served.set(want.digest, (this.served.get(want.digest) ?? 0) + slice.length);
    const body = Readable.from((async function* () {
      yield Buffer.from(slice);
      if (failAt !== undefined) throw new Error(`connection reset in ${want.digest}`);
    })(), { objectMode: false });
    // As the registry client: the caller's prefix hash as given, so an offset without one is refused.
    return pipeline(body, new VerifyingStream(want.digest, want.size, `blob ${want.digest}`, options.prefixHash, offset), () => undefined);
  }
}

export { DigestMismatchError };

/** A multi-arch image in `repo`: an OCI index over an amd64 and an arm64 child with different layers. */
export function multiArchImage(repo: Repository): TestImage {
  const amd64 = testImage(repo, 'amd64', [randomBytes(3000)]);
  const arm64 = testImage(repo, 'arm64', [randomBytes(5000), randomBytes(7000)]);
  const child = (t: TestImage, architecture: string) => ({ mediaType: MediaType.ociManifest, digest: t.image.reference.digest, size: t.blobs[0]!.size, platform: { os: 'linux', architecture } });
  const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [child(amd64, 'amd64'), child(arm64, 'arm64')] }));
  const digest = sha256Of(bytes);
  const index: PlannedBlob & { content: Buffer } = {
    digest, size: bytes.length, mediaType: MediaType.ociIndex, role: 'manifest', repositories: [`${repo.domain}/${repo.path}`],
    bytes, uncompressedSize: bytes.length, uncompressedEstimated: false, content: bytes,
  };
  const image: PlannedImage = {
    ...amd64.image,
    reference: { ...repo, digest },
    mediaType: MediaType.ociIndex,
    platforms: [{ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm64' }],
    manifests: [digest, amd64.image.reference.digest, arm64.image.reference.digest],
    blobs: [...amd64.image.blobs, ...arm64.image.blobs],
  };
  return { image, blobs: [index, ...amd64.blobs, ...arm64.blobs] };
}

/** The tar entry `name` of the bundle at `file` (any of its files), from a header scan. */
export async function tarEntry(file: string, name: string): Promise<TarEntry> {
  const bundle = await openBundle(file);
  try {
    for await (const e of bundle.scanEntries()) if (e.name === name) return e;
  } finally {
    await bundle.close();
  }
  throw new Error(`no entry ${name} in ${file}`);
}
