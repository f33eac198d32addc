// Where every byte of a bundle goes, computed from the plan alone before anything is downloaded: each tar
// entry's header and data offset, the total size and the volume boundaries (format.ts fixes the order).

import { blobEntryName, MANIFEST_ENTRY, type BundleManifest } from './format.js';
import { buildBundleManifest, reservedManifestSize } from './bundle-manifest.js';
import { INDEX_ENTRY, OCI_LAYOUT_ENTRY, ociIndexBytes, ociLayoutBytes } from './oci-layout.js';
import { BLOCK, END_OF_ARCHIVE_SIZE, paddedSize } from './tar-header.js';
import { volumeFileNames, volumeRanges } from './volumes.js';
import type { BundlePlan } from '../plan/plan.js';
import type { Digest } from '../oci/digest.js';

export type EntryKind = 'manifest' | 'oci-layout' | 'index' | 'directory' | 'blob';

export interface LayoutFile {
  readonly name: string;
  readonly type: 'file' | 'directory';
  readonly size: number;
  readonly kind: EntryKind;
  readonly digest?: Digest;
}

export interface LayoutEntry extends LayoutFile {
  readonly headerOffset: number;
  readonly dataOffset: number;
}

export interface LayoutVolume {
  /** File name (no directory). */
  readonly name: string;
  readonly offset: number;
  readonly size: number;
}

export interface BundleLayout {
  readonly entries: readonly LayoutEntry[];
  readonly totalSize: number;
  readonly volumes: readonly LayoutVolume[];
  readonly splitSize?: number;
}

/** Places `files` one after another (header, data, padding), then the end-of-archive blocks, then cuts volumes. */
export function placeEntries(files: readonly LayoutFile[], options: { name: string; splitSize?: number }): BundleLayout {
  const entries: LayoutEntry[] = [];
  let offset = 0;
  for (const file of files) {
    entries.push({ ...file, headerOffset: offset, dataOffset: offset + BLOCK });
    offset += BLOCK + paddedSize(file.size);
  }
  const totalSize = offset + END_OF_ARCHIVE_SIZE;
  const ranges = volumeRanges(totalSize, options.splitSize);
  const names = volumeFileNames(options.name, ranges.length, options.splitSize !== undefined);
  return {
    entries,
    totalSize,
    volumes: ranges.map((r, i) => ({ name: names[i]!, offset: r.offset, size: r.size })),
    ...(options.splitSize !== undefined ? { splitSize: options.splitSize } : {}),
  };
}

const ROLE_ORDER = { manifest: 0, config: 1, layer: 2 } as const;

/** The tar entries of a bundle in format order: manifest, oci-layout, index.json, blobs/, blobs/sha256/, blobs. */
export function bundleFiles(manifest: BundleManifest, manifestSize: number): LayoutFile[] {
  const blobs = [...manifest.blobs].sort((a, b) => ROLE_ORDER[a.role] - ROLE_ORDER[b.role] || (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0));
  return [
    { name: MANIFEST_ENTRY, type: 'file', size: manifestSize, kind: 'manifest' },
    { name: OCI_LAYOUT_ENTRY, type: 'file', size: ociLayoutBytes().length, kind: 'oci-layout' },
    { name: INDEX_ENTRY, type: 'file', size: ociIndexBytes(manifest).length, kind: 'index' },
    { name: 'blobs/', type: 'directory', size: 0, kind: 'directory' },
    { name: 'blobs/sha256/', type: 'directory', size: 0, kind: 'directory' },
    ...blobs.map((b): LayoutFile => ({ name: blobEntryName(b.digest), type: 'file', size: b.size, kind: 'blob', digest: b.digest })),
  ];
}

export interface PlannedBundle {
  /** The manifest as planned (uncompressed sizes may be refined before it is written). */
  readonly manifest: BundleManifest;
  readonly manifestReservedSize: number;
  readonly layout: BundleLayout;
}

/** The whole bundle layout for a plan: a pure function of (plan, created, split size, name). */
export function planLayout(plan: BundlePlan, options: { name: string; created: string; splitSize?: number }): PlannedBundle {
  // The manifest leaves splitSize out so that the tar's bytes do not depend on how it is cut into volumes.
  const manifest = buildBundleManifest(plan, { created: options.created });
  const manifestReservedSize = reservedManifestSize(manifest);
  const layout = placeEntries(bundleFiles(manifest, manifestReservedSize), {
    name: options.name,
    ...(options.splitSize !== undefined ? { splitSize: options.splitSize } : {}),
  });
  return { manifest, manifestReservedSize, layout };
}
