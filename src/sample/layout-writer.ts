// Writes an OCI image layout directory (oci-layout, index.json, blobs/sha256/<hex>) from generated parts, with
// the paths and index files of src/oci/image-layout.ts. Blobs are content-addressed, so rewriting one is
// harmless; index.json is written last, atomically.

import { promises as fs } from 'node:fs';
import path from 'node:path';
import { sha256Of, type Digest } from '../oci/digest.js';
import { layoutBlobDir, layoutBlobPath, REF_NAME_ANNOTATION, writeLayoutIndex } from '../oci/image-layout.js';
import { MediaType } from '../oci/media-types.js';
import type { Platform } from '../oci/platform.js';

export { REF_NAME_ANNOTATION };

/** JSON with object keys sorted at every level: one text per value, so digests are reproducible. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return v;
    const sorted: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) sorted[k] = (v as Record<string, unknown>)[k];
    return sorted;
  });
}

export interface BlobDescriptor {
  readonly mediaType: string;
  readonly digest: Digest;
  readonly size: number;
  readonly platform?: Platform;
  readonly annotations?: Record<string, string>;
}

export class LayoutWriter {
  readonly blobsDir: string;
  private readonly entries: BlobDescriptor[] = [];

  constructor(readonly dir: string) {
    this.blobsDir = layoutBlobDir(dir);
  }

  async open(): Promise<void> {
    await fs.mkdir(this.blobsDir, { recursive: true });
  }

  /** Every blob this generation wrote, with its size: what the layout's totals count. */
  readonly written = new Map<Digest, number>();

  /**
   * Stores small JSON (configs, manifests) under its digest, written in place: no temp file and no fsync
   * per blob, because a generation rewrites every blob it needs and only a finished generation writes
   * sample.json, so a torn blob from a crash is either rewritten or never referenced.
   */
  async writeJson(mediaType: string, value: unknown): Promise<BlobDescriptor> {
    const bytes = Buffer.from(canonicalJson(value), 'utf8');
    const digest = sha256Of(bytes);
    await fs.writeFile(layoutBlobPath(this.dir, digest), bytes);
    this.written.set(digest, bytes.length);
    return { mediaType, digest, size: bytes.length };
  }

  /** Records a blob written by a stream (layers), for the totals. */
  recordBlob(digest: Digest, size: number): void {
    this.written.set(digest, size);
  }

  /** Number and total size of the blobs this generation wrote (a reused directory may hold others). */
  totals(): { blobs: number; totalBytes: number } {
    let totalBytes = 0;
    for (const size of this.written.values()) totalBytes += size;
    return { blobs: this.written.size, totalBytes };
  }

  /** Names a top-level image in index.json by its full source reference. */
  addIndexEntry(descriptor: BlobDescriptor, refName: string): void {
    this.entries.push({ mediaType: descriptor.mediaType, digest: descriptor.digest, size: descriptor.size, annotations: { [REF_NAME_ANNOTATION]: refName } });
  }

  /** Removes blobs (and temp files) an earlier generation with other parameters left behind. */
  async pruneUnwritten(): Promise<void> {
    for (const name of await fs.readdir(this.blobsDir)) {
      const stale = /^[a-f0-9]{64}$/.test(name) ? !this.written.has(`sha256:${name}` as Digest) : /^\.layer-[a-f0-9]+\.tmp$/.test(name);
      if (stale) await fs.rm(path.join(this.blobsDir, name), { force: true });
    }
  }

  async finish(): Promise<void> {
    await this.pruneUnwritten();
    await writeLayoutIndex(this.dir, { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: this.entries });
  }
}
