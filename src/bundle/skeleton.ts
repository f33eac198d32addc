// Every byte of a bundle that is not blob data or pin-preload.json's data — tar headers, oci-layout,
// index.json, padding, end-of-archive — as a pure function of its layout and manifest: written and verified from here.

import type { BundleManifest } from './format.js';
import type { BundleLayout } from './layout.js';
import { ociIndexBytes, ociLayoutBytes } from './oci-layout.js';
import { END_OF_ARCHIVE_SIZE, encodeHeader, paddedSize } from './tar-header.js';

/** What a fixed region is, for naming it in a mismatch. */
export type SkeletonPart = 'header' | 'oci-layout' | 'index' | 'padding' | 'end-of-archive';

export interface SkeletonRegion {
  /** Offset in the whole tar (volumes concatenated). */
  readonly offset: number;
  readonly bytes: Buffer;
  readonly part: SkeletonPart;
  /** The tar entry the region belongs to ("" for the end-of-archive blocks). */
  readonly entry: string;
}

/** Padding is under one block, so the end-of-archive's zeros cover every padding region too. */
const ZEROS = Buffer.alloc(END_OF_ARCHIVE_SIZE);

/**
 * The skeleton's regions in offset order. Padding and the end blocks are zeros; together with the blob data
 * and pin-preload.json's data they cover the tar exactly once.
 */
export function bundleSkeleton(layout: BundleLayout, manifest: BundleManifest): SkeletonRegion[] {
  const regions: SkeletonRegion[] = [];
  const data = { 'oci-layout': ociLayoutBytes(), index: ociIndexBytes(manifest) } as const;
  for (const entry of layout.entries) {
    regions.push({ offset: entry.headerOffset, bytes: encodeHeader(entry.name, entry.size, entry.type), part: 'header', entry: entry.name });
    if (entry.kind === 'oci-layout' || entry.kind === 'index') {
      const bytes = data[entry.kind];
      if (bytes.length !== entry.size) throw new Error(`${entry.name} is ${bytes.length} bytes, its layout entry ${entry.size}`);
      regions.push({ offset: entry.dataOffset, bytes, part: entry.kind, entry: entry.name });
    }
    const padding = paddedSize(entry.size) - entry.size;
    if (padding > 0) regions.push({ offset: entry.dataOffset + entry.size, bytes: ZEROS.subarray(0, padding), part: 'padding', entry: entry.name });
  }
  regions.push({ offset: layout.totalSize - END_OF_ARCHIVE_SIZE, bytes: ZEROS, part: 'end-of-archive', entry: '' });
  return regions;
}
