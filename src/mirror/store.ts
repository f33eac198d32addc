// The narrow storage interface the mirror's HTTP handlers use: lookups by request name and digest, and
// blob byte streams. Implementations (bundle-store, layout-store) know nothing of HTTP; handlers nothing of files.

import type { Digest } from '../oci/digest.js';
import type { Descriptor } from '../oci/manifest.js';
import type { Repository } from '../oci/reference.js';
import type { NameMiss, RequestedName } from './names.js';

export type { RequestedName } from './names.js';

/** A manifest request's reference, parsed: a tag or a digest, never a loose string. */
export type ManifestReference = { readonly tag: string; readonly digest?: undefined } | { readonly digest: Digest; readonly tag?: undefined };

/** A manifest as stored: served with exactly this media type and these bytes' length and digest. */
export interface StoredManifest {
  readonly repository: Repository;
  readonly digest: Digest;
  readonly mediaType: string;
  readonly size: number;
  /** For a Docker manifest list or OCI index: its linux/amd64 child, if it has one. */
  readonly defaultChild?: Digest;
}

export interface StoredBlob {
  readonly digest: Digest;
  readonly size: number;
}

/** An inclusive byte range inside a blob, already checked against its size. */
export interface ByteRange {
  readonly start: number;
  readonly end: number;
}

/**
 * Where a blob's bytes go, in the shape of a Node Writable or an http.ServerResponse. `done` is called
 * once the chunk was handed on (its memory may then be reused), with an error if it never will be.
 */
export interface ByteSink {
  write(chunk: Uint8Array, done: (err?: Error | null) => void): boolean;
}

/** A blob's bytes (or a range of them), not yet read. */
export interface BlobBody {
  /**
   * Copies the bytes into the sink with a bounded amount in flight. Resolves when every byte was written,
   * or early once `signal` (one per copy) aborts; rejects when the bytes cannot be read — before writing
   * anything when the stored file cannot be opened.
   */
  copyTo(sink: ByteSink, signal: AbortSignal): Promise<void>;
}

/** A lookup that failed: the spec code to answer with and a message naming what was missing. */
export interface StoreMiss {
  readonly miss: 'NAME_UNKNOWN' | 'MANIFEST_UNKNOWN' | 'BLOB_UNKNOWN';
  readonly message: string;
}

export type Lookup<T> = T | StoreMiss | NameMiss;

export function isMiss<T extends object>(result: Lookup<T>): result is StoreMiss | NameMiss {
  return 'miss' in result;
}

export interface MirrorStore {
  /** The manifest a tag or digest names in the repository the request name means. */
  resolveManifest(name: RequestedName, reference: ManifestReference): Lookup<StoredManifest>;
  /** The exact stored bytes of a manifest resolveManifest returned. */
  manifestBytes(manifest: StoredManifest): Promise<Buffer>;
  /** A blob's size, if the name is known and any registered content holds the digest. */
  statBlob(name: RequestedName, digest: Digest): Lookup<StoredBlob>;
  /** The blob's bytes (or a range of them), to copy into a sink. */
  openBlob(blob: StoredBlob, range?: ByteRange): BlobBody;
  /** The repository's tags, sorted lexically. */
  tags(name: RequestedName): Lookup<{ readonly tags: readonly string[] }>;
  /** Every served repository name (host-qualified), sorted lexically. */
  repositories(): readonly string[];
  /** Descriptors of the manifests whose subject is `digest`, optionally only those of one artifact type. */
  referrers(name: RequestedName, digest: Digest, artifactType?: string): Lookup<{ readonly manifests: readonly Descriptor[] }>;
}

/** The referrer descriptor of a manifest, as the spec builds it: artifactType, else the config's media type. */
export interface ReferrerRecord {
  readonly subject: Digest;
  readonly descriptor: Descriptor;
}

/** Sorted, deduplicated strings in code-point order (the "lexical" order the spec means). */
export function lexicalSort(values: Iterable<string>): string[] {
  return [...new Set(values)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}
