// An OCI image layout directory as an ImageSource (manifests and blobs by digest from blobs/<alg>/), and
// the images its index.json names as copy plans: how the sample release reaches a registry.

import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { sha256Of, type Digest } from '../oci/digest.js';
import { layoutBlobPath, layoutHasBlob, readLayoutIndex, readLayoutManifest } from '../oci/image-layout.js';
import { ManifestError, parseManifest } from '../oci/manifest.js';
import { parseReference, type Reference, type Repository } from '../oci/reference.js';
import type { BlobStreamOptions, FetchedManifest, ImageSource } from '../registry/source.js';
import { UserError } from '../util/errors.js';
import { REF_NAME_ANNOTATION } from '../bundle/oci-layout.js';
import type { CopyImage } from './copy.js';

/** The document's own mediaType field; a file that is not a JSON object has none (the copy's digest check names it). */
function declaredMediaType(bytes: Buffer): string {
  try {
    const parsed = JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown } | null;
    if (typeof parsed?.mediaType === 'string') return parsed.mediaType;
  } catch {
    // not JSON: fall through
  }
  return 'application/octet-stream';
}

/** Content of the layout by digest; the repository asked for does not matter (one store for all images). */
export class LayoutSource implements ImageSource {
  readonly name: string;

  constructor(readonly dir: string) {
    this.name = `oci:${dir}`;
  }

  async getManifest(ref: Reference): Promise<FetchedManifest> {
    if (ref.digest === undefined) throw new UserError('LAYOUT_INVALID', `${this.dir}: manifests are read by digest, not by tag (${ref.tag ?? ''})`);
    const bytes = await readLayoutManifest(this.dir, ref.digest, `${this.name} (${ref.domain}/${ref.path})`);
    return { bytes, digest: sha256Of(bytes), mediaType: declaredMediaType(bytes) };
  }

  /** The file's bytes from the offset; the copy checks the digest. */
  blobStream(_repo: Repository, blob: { readonly digest: Digest; readonly size: number }, options: BlobStreamOptions = {}): Readable {
    return createReadStream(layoutBlobPath(this.dir, blob.digest), { start: options.offset ?? 0, ...(options.signal ? { signal: options.signal } : {}) });
  }
}

/**
 * Every image index.json names (by its ref.name annotation, a full reference) as a copy plan: to the
 * repository `repositoryFor(reference)` with the reference's tag. Reads the manifests only; blobs stay on disk.
 */
export async function layoutImages(dir: string, repositoryFor: (reference: Reference) => string): Promise<CopyImage[]> {
  const layout = await readLayoutIndex(dir);
  const images: CopyImage[] = [];
  for (const entry of layout.index.manifests) {
    const refName = entry.annotations?.[REF_NAME_ANNOTATION];
    if (refName === undefined) throw new UserError('LAYOUT_INVALID', `${layout.file}: entry ${entry.digest} has no ${REF_NAME_ANNOTATION} annotation`, { subject: { kind: 'path', name: layout.file } });
    const reference = parseReference(refName);
    const manifests: Array<{ digest: Digest; mediaType: string }> = [];
    const blobs = new Map<Digest, number>();
    const visit = async (digest: Digest, mediaType: string): Promise<void> => {
      const parsed = parseLayoutManifest(await readLayoutManifest(dir, digest, refName), mediaType, `${refName} manifest ${digest}`);
      if (parsed.kind === 'index') {
        // An index may list platforms the layout does not hold (the image-spec lets blobs be missing), as a
        // bundle made for some platforms carries: the copy takes what is there, and the destination decides.
        for (const child of parsed.manifests) if (await layoutHasBlob(dir, child.digest)) await visit(child.digest, child.mediaType);
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

/** A manifest file of the layout that is not a manifest is the layout's damage, named as such. */
function parseLayoutManifest(bytes: Buffer, mediaType: string, where: string): ReturnType<typeof parseManifest> {
  try {
    return parseManifest(bytes, mediaType, where);
  } catch (err) {
    if (!(err instanceof ManifestError)) throw err;
    throw new UserError('LAYOUT_INVALID', err.message, { subject: { kind: 'image', name: where }, cause: err });
  }
}
