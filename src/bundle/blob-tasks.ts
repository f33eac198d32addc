// The blobs `bundle create` writes: one task per blob entry of the layout (its index is its journal slot), and
// which of them this run still has to write, in the order that keeps every connection busy.

import type { BundlePlan, PlannedBlob } from '../plan/plan.js';
import type { Digest } from '../oci/digest.js';
import type { BundleLayout, LayoutEntry } from './layout.js';

export interface BlobTask {
  /** The blob's place among the layout's blob entries: its journal progress slot. */
  readonly index: number;
  readonly blob: PlannedBlob;
  readonly entry: LayoutEntry;
}

/** A task for every blob entry of the layout, in layout order. */
export function blobTasks(plan: BundlePlan, layout: BundleLayout): BlobTask[] {
  const plannedBlobs = new Map(plan.blobs.map((b) => [b.digest, b]));
  return layout.entries
    .filter((e) => e.kind === 'blob')
    .map((entry, index) => ({ index, entry, blob: plannedBlobs.get(entry.digest!)! }));
}

/**
 * The tasks not yet done, in download order: small manifests and configs first (they complete images early),
 * then layers largest first, so the biggest download never starts last and leaves the other connections idle.
 */
export function blobsToWrite(tasks: readonly BlobTask[], done: ReadonlyMap<Digest, unknown>): BlobTask[] {
  return tasks
    .filter((t) => !done.has(t.blob.digest))
    .sort((a, b) => Number(a.blob.role === 'layer') - Number(b.blob.role === 'layer') || (a.blob.role === 'layer' ? b.blob.size - a.blob.size : a.index - b.index));
}
