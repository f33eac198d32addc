// V8's heap sizing for a process that streams gigabytes through small buffers (`bundle create`): the old
// generation may grow further before a full collection, so the download's buffer churn stops paying for one.

import { setFlagsFromString } from 'node:v8';

/**
 * After each full collection V8 sets the next one's trigger at the live heap times a growing factor; with the
 * ~10 MB that a create keeps live, that left ~9–16 MB of slack, and every 64 KiB socket read is an
 * ArrayBuffer that counts against it until a scavenge sweeps it. The download thus ran a full mark-compact
 * every ~20 MB (39–58 per 1.16 GB, each marked on the main thread and four helper threads: ~0.6 s of CPU per
 * GB here) although almost nothing survived them. A factor of 4 instead of V8's dynamic ~2 gives the slack the
 * churn needs: 3–6 mark-compacts per 1.16 GB (docs/benchmarks.md, "create's CPU, accounted"). Memory stays
 * bounded by what is live (the old generation may reach 4× it between collections; peak RSS +9 MiB at 1.16 GB).
 * Read when V8 next computes the trigger, so it takes effect from the first collection after the call.
 */
export function growHeapForStreaming(): void {
  setFlagsFromString('--heap-growing-percent=300');
}
