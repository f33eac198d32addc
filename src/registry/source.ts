// The read side of a registry as the rest of pin-preload sees it: manifests by tag or digest, blobs as
// verified streams. RegistryClient (client.ts) implements it over HTTP; tests may implement it too.

import type { Hash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Digest } from '../oci/digest.js';
import type { Reference, Repository } from '../oci/reference.js';

export interface FetchedManifest {
  /** The exact bytes as served: digests are over them, and they are stored unchanged. */
  readonly bytes: Buffer;
  /** The Content-Type the registry sent (without parameters), or the document's mediaType field. */
  readonly mediaType: string;
  /** sha256 of `bytes`; when fetched by digest, equal to it (checked). */
  readonly digest: Digest;
}

export interface BlobStreamOptions {
  /** Start at this byte (resume); bytes before it must be fed to `prefixHash` by the caller. */
  readonly offset?: number;
  /** A hash already fed with bytes [0, offset), so the final digest check covers the whole blob. */
  readonly prefixHash?: Hash;
  readonly signal?: AbortSignal;
}

export interface ImageSource {
  /** Where the images are read ("oci:/path"), for messages; without it, the image's source repository. */
  readonly name?: string | undefined;
  /**
   * True when every blobStream already checks the blob's digest and size as it streams (erroring, never
   * ending, on bad content) and takes `prefixHash` for a resumed blob, as RegistryClient's does. The copy
   * then adds no second hash of its own; a source without it (a bundle, a layout dir) is checked by the copy.
   */
  readonly verifiesBlobs?: boolean;
  /** GET a manifest by tag or digest, with Accept for OCI and Docker manifests and indexes. */
  getManifest(ref: Reference, options?: { signal?: AbortSignal }): Promise<FetchedManifest>;
  /**
   * The blob's bytes from `offset` to the end. A connection that breaks mid-body is resumed with a Range
   * request (bounded retries); the stream errors with DigestMismatchError if the whole does not hash to
   * `blob.digest` or its length differs from `blob.size`, and never ends successfully on bad content.
   */
  /**
   * The referrers index of `digest` (OCI distribution 1.1), MANIFEST_UNKNOWN when the registry has no
   * referrers API. Optional: a source without it is read through the referrers fallback tag only.
   */
  getReferrers?(repo: Repository, digest: Digest, options?: { signal?: AbortSignal }): Promise<FetchedManifest>;
  blobStream(repo: Repository, blob: { readonly digest: Digest; readonly size: number }, options?: BlobStreamOptions): Readable;
}
