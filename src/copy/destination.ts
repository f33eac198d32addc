// The write side of the copy pipeline: a place images go to (a registry, an OCI layout dir, a bundle).
// Sources are ImageSource (src/registry/source.ts); src/copy/copy.ts calls both in a fixed order.

import type { Hash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Digest } from '../oci/digest.js';

export interface BlobRef {
  readonly digest: Digest;
  readonly size: number;
}

export interface ManifestBytes {
  readonly digest: Digest;
  readonly mediaType: string;
  /** The exact bytes: the digest is over them. */
  readonly bytes: Buffer;
}

/**
 * The verified bytes of a blob from `offset` to the end, as putBlob asks for them. Without `prefixHash`
 * the copy reads the whole blob from the source, hashes it and drops the first `offset` bytes (all a
 * registry can do: it cannot hand back what it holds of an upload). With `prefixHash`, a sha256 the
 * destination fed with its own bytes [0, offset), the copy asks the source for the rest only (a Range
 * request) and the digest check covers prefix and rest: a prefix that does not match fails the stream.
 */
export type OpenBlob = (offset: number, prefixHash?: Hash) => Readable;

/** How a blob came to be in the destination's repository without its bytes being sent. */
export type BlobReuse = 'present' | 'mounted' | 'absent';

/**
 * Where images are written, as containers/image's ImageDestination. The copy calls, per destination
 * repository (a path such as "openshift/release"): reuseBlob, then putBlob when the blob is absent, for
 * every blob; for each image, once every blob it needs is in its repository, hasManifest/putManifest for
 * its manifests, children before the index that lists them, then putTag; and commit once at the end. Each call is one try: the copy retries a failed step
 * with the copy's retry policy, so a step must be safe to repeat (putBlob resumes where the destination
 * stands: it gets an `open(offset, prefixHash?)` and asks for the bytes it still needs). A stream from
 * `open` that errors (a bad digest included) is never to be kept as the blob: only one that ends is whole.
 * A destination that is one blob store (a bundle) may answer reuseBlob with 'present' whatever the repository.
 */
export interface ImageDestination {
  /** "registry.example.com:5000/prefix", "oci:/path": for messages. */
  readonly name: string;
  /**
   * True when the bytes of a blob whose stream errors are kept only as progress to resume from (with a
   * prefix hash), never as the blob, as the bundle's journal does: the copy then passes every byte on as it
   * comes. Otherwise (a registry, which takes a blob once its last byte arrives) the copy holds back each
   * stream's last chunk until the digest check has passed.
   */
  readonly resumesPartialBlobs?: boolean;
  /**
   * Whether `repository` already holds the blob, or can take it without its bytes: `mountFrom` is another
   * repository of this destination that received it earlier in this copy (a cross-repository mount).
   */
  reuseBlob(repository: string, blob: BlobRef, mountFrom: string | undefined, signal?: AbortSignal): Promise<BlobReuse>;
  /** Writes the blob's bytes, read through `open` (see OpenBlob). Returns the bytes taken from the source. */
  putBlob(repository: string, blob: BlobRef, open: OpenBlob, signal?: AbortSignal): Promise<number>;
  hasManifest(repository: string, digest: Digest, signal?: AbortSignal): Promise<boolean>;
  putManifest(repository: string, manifest: ManifestBytes, signal?: AbortSignal): Promise<void>;
  /** The digest `tag` names in `repository` now, or undefined when it names nothing. */
  tagDigest(repository: string, tag: string, signal?: AbortSignal): Promise<Digest | undefined>;
  putTag(repository: string, tag: string, manifest: ManifestBytes, signal?: AbortSignal): Promise<void>;
  /** Makes everything written visible and durable (a layout's index.json); a registry has nothing to do. */
  commit(signal?: AbortSignal): Promise<void>;
  close(): Promise<void>;
}
