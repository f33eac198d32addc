// An OCI image layout directory as an ImageSource (manifests and blobs by digest from blobs/sha256/), and
// the images its index.json names as copy plans: how the sample release reaches a registry.

import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { digestHex, sha256Of, type Digest } from '../oci/digest.js';
import { parseManifest } from '../oci/manifest.js';
import { parseReference, type Reference, type Repository } from '../oci/reference.js';
import type { BlobStreamOptions, FetchedManifest, ImageSource } from '../registry/source.js';
import { UserError } from '../util/errors.js';
import { REF_NAME_ANNOTATION } from '../bundle/oci-layout.js';
import type { CopyImage } from './copy.js';

/** Content of the layout by digest; the repository asked for does not matter (one store for all images). */
export class LayoutSource implements ImageSource {
  readonly blobsDir: string;

  constructor(readonly dir: string) {
    this.blobsDir = path.join(dir, 'blobs', 'sha256');
  }

  async getManifest(ref: Reference): Promise<FetchedManifest> {
    if (ref.digest === undefined) throw new UserError('LAYOUT_INVALID', `${this.dir}: manifests are read by digest, not by tag (${ref.tag ?? ''})`);
    const bytes = await fs.readFile(path.join(this.blobsDir, digestHex(ref.digest)));
    const parsed = JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown };
    return { bytes, digest: sha256Of(bytes), mediaType: typeof parsed.mediaType === 'string' ? parsed.mediaType : 'application/octet-stream' };
  }

  /** The file's bytes from the offset; the copy checks the digest. */
  blobStream(_repo: Repository, blob: { readonly digest: Digest; readonly size: number }, options: BlobStreamOptions = {}): Readable {
    return createReadStream(path.join(this.blobsDir, digestHex(blob.digest)), { start: options.offset ?? 0, ...(options.signal ? { signal: options.signal } : {}) });
  }
}

/**
 * Every image index.json names (by its ref.name annotation, a full reference) as a copy plan: to the
 * repository `repositoryFor(reference)` with the reference's tag. Reads the manifests only; blobs stay on disk.
 */
export async function layoutImages(dir: string, repositoryFor: (reference: Reference) => string): Promise<CopyImage[]> {
  const blobsDir = path.join(dir, 'blobs', 'sha256');
  const readManifest = async (digest: Digest, where: string): Promise<Buffer> => {
    try {
      return await fs.readFile(path.join(blobsDir, digestHex(digest)));
    } catch (err) {
      throw new UserError('LAYOUT_INVALID', `${where}: manifest ${digest} is missing from ${blobsDir}`, { cause: err });
    }
  };
  const indexFile = path.join(dir, 'index.json');
  let index;
  try {
    index = parseManifest(await fs.readFile(indexFile), undefined, indexFile);
  } catch (err) {
    throw new UserError('LAYOUT_INVALID', `${dir} is not an OCI image layout: ${(err as Error).message}`, { cause: err });
  }
  if (index.kind !== 'index') throw new UserError('LAYOUT_INVALID', `${indexFile} is not an image index`);
  const images: CopyImage[] = [];
  for (const entry of index.manifests) {
    const refName = entry.annotations?.[REF_NAME_ANNOTATION];
    if (refName === undefined) throw new UserError('LAYOUT_INVALID', `${indexFile}: entry ${entry.digest} has no ${REF_NAME_ANNOTATION} annotation`);
    const reference = parseReference(refName);
    const manifests: Array<{ digest: Digest; mediaType: string }> = [];
    const blobs = new Map<Digest, number>();
    const visit = async (digest: Digest, mediaType: string): Promise<void> => {
      const parsed = parseManifest(await readManifest(digest, refName), mediaType, `${refName} manifest ${digest}`);
      if (parsed.kind === 'index') {
        for (const child of parsed.manifests) await visit(child.digest, child.mediaType);
      } else {
        for (const blob of [parsed.config, ...parsed.layers]) blobs.set(blob.digest, blob.size);
      }
      manifests.push({ digest, mediaType });
    };
    await visit(entry.digest, entry.mediaType);
    images.push({
      name: refName,
      source: reference,
      repository: repositoryFor(reference),
      manifests,
      blobs: [...blobs].map(([digest, size]) => ({ digest, size })),
      tags: reference.tag !== undefined ? [reference.tag] : [],
    });
  }
  return images;
}
