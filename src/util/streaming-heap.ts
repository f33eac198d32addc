// V8's heap sizing for a process that streams gigabytes through small buffers (`bundle create`, `bundle
// push`): the old generation may grow further before a full collection, so buffer churn stops paying for one.

import { setFlagsFromString } from 'node:v8';

/**
 * After each full collection V8 sets the old generation's allocation limit (the next full collection's trigger)
 * at the live heap times a growing factor. In a create, V8's `--trace-incremental-marking` shows every
 * mark-compact started by that limit, "Start (allocation limit)", at an old generation of ~10 MB against a
 * limit of ~26 MB (~16 MB of slack), although almost nothing survived them: 39–58 per 1.16 GB, one every
 * ~20 MB of download, each marked on the main thread and four helper threads (~0.6 s of CPU per GB here).
 * What uses up the slack is not explained: the trace's global figure equals the old generation's, so the
 * sockets' external ArrayBuffer bytes are not counted in it. With a factor of 4 instead of V8's dynamic ~2 the
 * limit rises to 40–50 MB and those collections stop: 3–6 mark-compacts per 1.16 GB (docs/benchmarks.md,
 * "create's CPU, accounted"). Memory stays bounded by what is live (the old generation may reach 4× it between
 * collections; peak RSS +9 MiB at 1.16 GB). Read when V8 next computes the limit, so it takes effect from the
 * first collection after the call. `bundle push` showed the same pattern (48–55 mark-compacts per 1.16 GB push,
 * 16–19 with the setting: push CPU 0.80×, docs/benchmarks.md "Push").
 */
export function growHeapForStreaming(): void {
  setFlagsFromString('--heap-growing-percent=300');
}
