// The plan's side of `bundle create`'s copy: its images as copy images (only the blobs this bundle holds),
// and a source that answers manifests from the bytes the plan already fetched instead of asking again.

import type { Readable } from 'node:stream';
import type { CopyImage } from '../copy/copy.js';
import type { Digest } from '../oci/digest.js';
import type { Reference, Repository } from '../oci/reference.js';
import type { BundlePlan, PlannedBlob } from '../plan/plan.js';
import type { BlobStreamOptions, FetchedManifest, ImageSource } from '../registry/source.js';

/** `source` with the plan's manifest bytes in front: a manifest the plan holds is never fetched again. */
export class PlanSource implements ImageSource {
  readonly verifiesBlobs: boolean;
  private readonly known: ReadonlyMap<Digest, PlannedBlob>;

  constructor(
    plan: BundlePlan,
    private readonly source: ImageSource,
  ) {
    this.verifiesBlobs = source.verifiesBlobs === true;
    this.known = new Map(plan.blobs.filter((b) => b.bytes !== undefined).map((b) => [b.digest, b]));
  }

  getManifest(ref: Reference, options?: { signal?: AbortSignal }): Promise<FetchedManifest> {
    const planned = ref.digest !== undefined ? this.known.get(ref.digest) : undefined;
    // The copy checks the bytes against the digest either way.
    if (planned?.bytes) return Promise.resolve({ bytes: planned.bytes, mediaType: planned.mediaType, digest: planned.digest });
    return this.source.getManifest(ref, options);
  }

  blobStream(repo: Repository, blob: { readonly digest: Digest; readonly size: number }, options?: BlobStreamOptions): Readable {
    return this.source.blobStream(repo, blob, options);
  }
}

/**
 * The plan as copy images: each image with only the manifests and blobs this bundle holds (a delta leaves
 * its base's out), manifests children first, no tags (they live in the bundle manifest). Signature
 * artefacts and release payloads are images like any other. Every planned blob comes from an image's own
 * manifests and blobs (src/plan/resolve.ts), so the images name them all; one they did not would be left
 * unwritten, so that is refused as a bug before anything is fetched.
 */
export function planCopyImages(plan: BundlePlan): CopyImage[] {
  const planned = new Map(plan.blobs.map((b) => [b.digest, b]));
  const named = new Set<Digest>();
  const images: CopyImage[] = plan.images.map((image) => {
    const { domain, path } = image.reference;
    const manifests = [...image.manifests].reverse().filter((d) => planned.has(d));
    const blobs = image.blobs.filter((d) => planned.has(d));
    for (const d of [...manifests, ...blobs]) named.add(d);
    return {
      name: `${domain}/${path}@${image.reference.digest}`,
      source: { domain, path },
      repository: `${domain}/${path}`,
      manifests: manifests.map((digest) => ({ digest, mediaType: planned.get(digest)!.mediaType })),
      blobs: blobs.map((digest) => ({ digest, size: planned.get(digest)!.size })),
      tags: [],
    };
  });
  const orphan = plan.blobs.find((b) => !named.has(b.digest));
  if (orphan) throw new Error(`planned blob ${orphan.digest} belongs to no planned image`);
  return images;
}
