// Progress of a running `bundle create`: bytes, blobs and whole images written, reported at most every
// REPORT_INTERVAL_MS (the CLI redraws a line per report; per network chunk would flood it).

import type { BundlePlan } from '../plan/plan.js';
import type { Digest } from '../oci/digest.js';

export interface CreateProgress {
  readonly bytesDone: number;
  readonly bytesTotal: number;
  readonly blobsDone: number;
  readonly blobsTotal: number;
  readonly imagesDone: number;
  readonly imagesTotal: number;
  readonly phase: 'download' | 'seal';
}

/** What has been written so far: the writer's own counters, read at each report. */
export interface WrittenSoFar {
  readonly bytesDone: number;
  readonly done: ReadonlyMap<Digest, unknown>;
}

const REPORT_INTERVAL_MS = 200;

export class CreateProgressMeter {
  private lastReport = 0;
  private readonly imageBlobs: ReadonlyArray<readonly Digest[]>;
  private readonly bytesTotal: number;

  constructor(
    private readonly plan: BundlePlan,
    private readonly blobsTotal: number,
    private readonly onProgress: ((progress: CreateProgress) => void) | undefined,
    private readonly now: () => number = Date.now,
  ) {
    // A delta's images also name layers its base holds: only the blobs written here count toward "done".
    const planned = new Set<Digest>(plan.blobs.map((b) => b.digest));
    this.imageBlobs = plan.images.map((im) => [...im.manifests, ...im.blobs].filter((d) => planned.has(d)));
    this.bytesTotal = plan.blobs.reduce((s, b) => s + b.size, 0);
  }

  /** Reports `written` unless the last report was under REPORT_INTERVAL_MS ago; `force` reports anyway. */
  report(phase: CreateProgress['phase'], written: WrittenSoFar, force = false): void {
    const now = this.now();
    if (!this.onProgress || (!force && now - this.lastReport < REPORT_INTERVAL_MS)) return;
    this.lastReport = now;
    this.onProgress({
      bytesDone: written.bytesDone,
      bytesTotal: this.bytesTotal,
      blobsDone: written.done.size,
      blobsTotal: this.blobsTotal,
      imagesDone: this.imageBlobs.filter((blobs) => blobs.every((d) => written.done.has(d))).length,
      imagesTotal: this.plan.images.length,
      phase,
    });
  }
}
