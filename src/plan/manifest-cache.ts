// An ImageSource wrapper that fetches each manifest once per plan: a release and its extras often name the
// same image, and the release payload is fetched once to read it and once more to plan it.

import type { Readable } from 'node:stream';
import type { Digest } from '../oci/digest.js';
import { formatReference, repositoryName, type Reference, type Repository } from '../oci/reference.js';
import { UserError } from '../util/errors.js';
import type { BlobStreamOptions, FetchedManifest, ImageSource } from '../registry/source.js';

export class ManifestCache implements ImageSource {
  /** The wrapped source's: the copy must know who checks blobs, or it asks a verifying source for a range without its prefix hash. */
  readonly verifiesBlobs: boolean;
  private readonly byReference = new Map<string, Promise<FetchedManifest>>();

  constructor(private readonly source: ImageSource) {
    this.verifiesBlobs = source.verifiesBlobs === true;
  }

  getManifest(ref: Reference, options?: { signal?: AbortSignal }): Promise<FetchedManifest> {
    // By digest the content cannot change, so the tag (if any) is irrelevant to the key.
    const key = ref.digest ? `${repositoryName(ref)}@${ref.digest}` : formatReference(ref);
    let pending = this.byReference.get(key);
    if (!pending) {
      pending = this.source.getManifest(ref, options).then((m) => {
        this.byReference.set(`${repositoryName(ref)}@${m.digest}`, Promise.resolve(m));
        return m;
      });
      pending.catch(() => this.byReference.delete(key));
      this.byReference.set(key, pending);
    }
    return pending;
  }

  getReferrers(repo: Repository, digest: Digest, options?: { signal?: AbortSignal }): Promise<FetchedManifest> {
    if (!this.source.getReferrers) return Promise.reject(new UserError('MANIFEST_UNKNOWN', `no referrers API for ${repositoryName(repo)}@${digest}`));
    return this.source.getReferrers(repo, digest, options);
  }

  blobStream(repo: Repository, blob: { readonly digest: Digest; readonly size: number }, options?: BlobStreamOptions): Readable {
    return this.source.blobStream(repo, blob, options);
  }
}
