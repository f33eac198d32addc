// The write side of the copy pipeline: a place images go to (a registry, an OCI layout dir, a bundle).
// Sources are ImageSource (src/registry/source.ts); src/copy/copy.ts calls both in a fixed order.

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

/** How a blob came to be in the destination's repository without its bytes being sent. */
export type BlobReuse = 'present' | 'mounted' | 'absent';

/**
 * Where images are written, as containers/image's ImageDestination. The copy calls, per destination
 * repository (a path such as "openshift/release"): reuseBlob, then putBlob when the blob is absent, for
 * every blob; then hasManifest/putManifest for every manifest, children before the index that lists
 * them; then putTag; and commit once at the end. Each call is one try: the copy retries a failed step
 * with the registry client's retry policy, so a step must be safe to repeat (putBlob resumes where the
 * destination stands: it gets an `open(offset)` and asks for the bytes it still needs).
 */
export interface ImageDestination {
  /** "registry.example.com:5000/prefix", "oci:/path": for messages. */
  readonly name: string;
  /**
   * Whether `repository` already holds the blob, or can take it without its bytes: `mountFrom` is another
   * repository of this destination that received it earlier in this copy (a cross-repository mount).
   */
  reuseBlob(repository: string, blob: BlobRef, mountFrom: string | undefined, signal?: AbortSignal): Promise<BlobReuse>;
  /** Writes the blob's bytes; `open(offset)` gives the verified bytes from `offset` to the end. Returns the bytes sent. */
  putBlob(repository: string, blob: BlobRef, open: (offset: number) => Readable, signal?: AbortSignal): Promise<number>;
  hasManifest(repository: string, digest: Digest, signal?: AbortSignal): Promise<boolean>;
  putManifest(repository: string, manifest: ManifestBytes, signal?: AbortSignal): Promise<void>;
  /** The digest `tag` names in `repository` now, or undefined when it names nothing. */
  tagDigest(repository: string, tag: string, signal?: AbortSignal): Promise<Digest | undefined>;
  putTag(repository: string, tag: string, manifest: ManifestBytes, signal?: AbortSignal): Promise<void>;
  /** Makes everything written visible and durable (a layout's index.json); a registry has nothing to do. */
  commit(signal?: AbortSignal): Promise<void>;
  close(): Promise<void>;
}
