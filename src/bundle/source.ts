// An opened bundle as an ImageSource: manifests and blobs by digest, read as byte ranges of the tar across
// its volumes (never extracted), and its images as copy plans for `bundle push`.

import type { Readable } from 'node:stream';
import type { CopyImage } from '../copy/copy.js';
import { sha256Of, type Digest } from '../oci/digest.js';
import { parseReference, type Reference, type Repository } from '../oci/reference.js';
import type { BlobStreamOptions, FetchedManifest, ImageSource } from '../registry/source.js';
import type { BundleManifest } from './format.js';
import type { BlobLocation, OpenedBundle } from './reader.js';

export class BundleSource implements ImageSource {
  private readonly mediaTypes: Map<Digest, string>;

  constructor(
    private readonly bundle: OpenedBundle,
    private readonly locations: ReadonlyMap<Digest, BlobLocation>,
  ) {
    this.mediaTypes = new Map(bundle.manifest.blobs.map((b) => [b.digest, b.mediaType]));
  }

  private locate(digest: Digest): BlobLocation {
    const at = this.locations.get(digest);
    // The reader checked every listed blob against the tar: a digest not found is a plan that is not this bundle's.
    if (at === undefined) throw new Error(`blob ${digest} is not in bundle ${this.bundle.name}`);
    return at;
  }

  async getManifest(ref: Reference): Promise<FetchedManifest> {
    if (ref.digest === undefined) throw new Error(`bundle ${this.bundle.name}: manifests are read by digest`);
    const at = this.locate(ref.digest);
    const chunks: Buffer[] = [];
    for await (const chunk of this.bundle.createReadStream(at.offset, at.size)) chunks.push(chunk as Buffer);
    const bytes = Buffer.concat(chunks);
    return { bytes, digest: sha256Of(bytes), mediaType: this.mediaTypes.get(ref.digest) ?? 'application/octet-stream' };
  }

  /** The blob's range of the tar from `offset`; the copy checks its digest. */
  blobStream(_repo: Repository, blob: { readonly digest: Digest; readonly size: number }, options: BlobStreamOptions = {}): Readable {
    const at = this.locate(blob.digest);
    const offset = options.offset ?? 0;
    return this.bundle.createReadStream(at.offset + offset, at.size - offset);
  }
}

/**
 * Every image of the bundle as a copy plan into `repositoryFor(source repository)`: its manifests children
 * first (the bundle lists them top first), its blobs, and the tag it was resolved from (extras, the release).
 */
export function bundleImages(manifest: BundleManifest, repositoryFor: (source: Repository) => string): CopyImage[] {
  const blobs = new Map(manifest.blobs.map((b) => [b.digest, b]));
  return manifest.images.map((image) => {
    const source = parseReference(image.name);
    return {
      name: image.tag !== undefined ? `${image.repository}:${image.tag}` : image.name,
      source,
      repository: repositoryFor(source),
      manifests: [...image.manifests].reverse().map((digest) => ({ digest, mediaType: digest === image.digest ? image.mediaType : (blobs.get(digest)?.mediaType ?? image.mediaType) })),
      blobs: image.blobs.map((digest) => ({ digest, size: blobs.get(digest)?.size ?? 0 })),
      tags: image.tag !== undefined ? [image.tag] : [],
    };
  });
}
