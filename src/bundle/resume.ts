// Where a `bundle create` run starts from what an earlier run left in the work dir: its journal read into a
// start (fresh, start over, or resume), the creation time to keep, and how much of each blob is already written.

import type { Digest } from '../oci/digest.js';
import type { UncompressedSize } from './bundle-manifest.js';
import type { JournalHeader, JournalState } from './journal.js';
import type { BlobTask } from './blob-tasks.js';

/** What this run does with the work dir: the journal's state after the checks that can overrule it. */
export type WorkStart =
  | { readonly kind: 'fresh' }
  | { readonly kind: 'start-over'; readonly reason: string }
  | {
      readonly kind: 'resume';
      readonly header: JournalHeader;
      readonly done: ReadonlyMap<Digest, UncompressedSize>;
      readonly progress: readonly number[];
    };

/**
 * The start a journal state leads to. `damage` is why the volume files of a resumable run cannot be trusted
 * (only looked for when the journal is resumable). Both a fresh start and a start over begin from an empty
 * work dir: without a journal of this plan nothing in it is known to be ours.
 */
export function workStart(state: JournalState, damage: string | undefined): WorkStart {
  if (state.kind === 'absent') return { kind: 'fresh' };
  if (state.kind === 'different-plan') return { kind: 'start-over', reason: 'it holds an unfinished bundle of a different plan (other images or split size)' };
  if (damage) return { kind: 'start-over', reason: damage };
  return { kind: 'resume', header: state.header, done: state.done, progress: state.progress };
}

/**
 * The bundle's `created`: a resumed run keeps the first run's, so that it makes the bundle the first run would
 * have made, unless the time is fixed (--created, SOURCE_DATE_EPOCH), which always wins.
 */
export function createdFor(start: WorkStart, time: { readonly created: string; readonly fromEnv: boolean }): string {
  return start.kind === 'resume' && !time.fromEnv ? start.header.created : time.created;
}

/** What is already on disk from an earlier run, and so what remains to be written. */
export interface ResumePoint {
  /** Bytes of each task's blob already written, by task index (its size when done). */
  readonly resumeFrom: readonly number[];
  /** The sum of resumeFrom: what the disk-space check and the resume event count as written. */
  readonly written: number;
  /** The planned blobs the journal records as done, verified and durable. */
  readonly done: ReadonlyMap<Digest, UncompressedSize>;
  /** Bytes of the done blobs only: partly written blobs are counted when their task starts. */
  readonly bytesDone: number;
}

/** The resume arithmetic: a done blob is whole; a partial one continues at its recorded slot, never past its end. */
export function resumePoint(tasks: readonly BlobTask[], start: WorkStart): ResumePoint {
  if (start.kind !== 'resume') return { resumeFrom: tasks.map(() => 0), written: 0, done: new Map(), bytesDone: 0 };
  const resumeFrom = tasks.map((t) => (start.done.has(t.blob.digest) ? t.blob.size : Math.min(start.progress[t.index] ?? 0, t.blob.size)));
  const planned = new Set(tasks.map((t) => t.blob.digest));
  const done = new Map<Digest, UncompressedSize>();
  for (const [digest, size] of start.done) if (planned.has(digest)) done.set(digest, size);
  return {
    resumeFrom,
    written: resumeFrom.reduce((sum, n) => sum + n, 0),
    done,
    bytesDone: tasks.filter((t) => done.has(t.blob.digest)).reduce((s, t) => s + t.blob.size, 0),
  };
}
