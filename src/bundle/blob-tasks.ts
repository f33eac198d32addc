// The blobs `bundle create` writes: one task per blob entry of the layout (its index is its journal slot, its
// entry its place in the volumes). Which are left to write and in what order is the copy's (src/copy/copy.ts).

import type { BundlePlan, PlannedBlob } from '../plan/plan.js';
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

