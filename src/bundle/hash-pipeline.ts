// Hashes many byte ranges of a bundle (whole volumes, single blobs) on worker threads, one core each: either
// the main thread reads each byte once into shared memory for all workers, or each worker reads its own ranges.

import { Worker } from 'node:worker_threads';
import fs from 'node:fs';
import { promisify } from 'node:util';
import type { Volume } from './volumes.js';
import { placeIoError, VolumeIoError, type VolumeIo } from './volume-io-error.js';
import { isSystemError } from '../util/errors.js';
import type { ReadTask } from './hash-worker.cjs';

const pread = promisify(fs.read);
/**
 * CommonJS, unlike the rest of the tool: a worker whose script is an ES module starts Node's ES module loader
 * first, which made each worker's start ~3.5 ms of CPU dearer here (a whole process hashing one small range on
 * two workers: 0.134 s of CPU against 0.141 s, docs/benchmarks.md), paid again by every verify, import and seal.
 */
const HASH_WORKER = new URL('./hash-worker.cjs', import.meta.url);

export interface HashRange {
  readonly id: number;
  readonly offset: number;
  readonly size: number;
}

export type HashWorkerMessage =
  | { readonly type: 'chunk'; readonly slot: number; readonly slotOffset: number; readonly offset: number; readonly length: number }
  | { readonly type: 'skip'; readonly offset: number; readonly length: number; readonly reason: string }
  | { readonly type: 'end' };

export type HashWorkerReply =
  | { readonly type: 'free'; readonly slot: number }
  | { readonly type: 'result'; readonly id: number; readonly sha256: string }
  | { readonly type: 'failed'; readonly id: number; readonly reason: string }
  | { readonly type: 'progress'; readonly bytes: number }
  | { readonly type: 'error'; readonly message: string; readonly code?: string; readonly place?: IoFailure }
  | { readonly type: 'done' };

/** Where a worker's read or write failed: the volume (or its copy), the byte in that file, the range being read. */
export interface IoFailure {
  readonly io: VolumeIo;
  readonly path: string;
  readonly offset: number;
  readonly id: number;
}

export type RangeHash = { readonly sha256: string } | { readonly error: string };

export interface HashOptions {
  /** Called with the bytes read so far (for progress lines). */
  readonly onBytes?: (bytes: number) => void;
  readonly chunkSize?: number;
  /**
   * Also gets every byte read (hashRanges only), from the same buffer the workers hash: volume `volume`'s
   * bytes from `localOffset`, in order. Copying a bundle through this is one read for the copy and all hashes.
   * Every byte of every present volume is read when a sink is given, whether a range wants it or not.
   */
  readonly sink?: (volume: number, localOffset: number, bytes: Buffer) => Promise<void>;
  /** Each volume's descriptor, opened once by the caller (null for a missing volume); opened here when absent. */
  readonly fds?: ReadonlyArray<number | null>;
}

/** A volume as laid out (global offset, expected size) and what is really on disk (size, or missing). */
export interface VolumeOnDisk extends Volume {
  readonly offset: number;
  /** Bytes actually in the file; undefined when it is missing. */
  readonly actualSize: number | undefined;
}

/**
 * The sha256 of every range, each group hashed by its own worker thread. Ranges in one group must not
 * overlap. Bytes missing on disk (a missing or short volume) make the ranges over them fail with a reason.
 */
export async function hashRanges(volumes: readonly VolumeOnDisk[], groups: readonly (readonly HashRange[])[], options: HashOptions = {}): Promise<Map<number, RangeHash>> {
  const chunkSize = options.chunkSize ?? 4 * 1024 * 1024;
  const slotCount = 6;
  const shared = new SharedArrayBuffer(chunkSize * slotCount);
  const results = new Map<number, RangeHash>();
  const sorted = groups.map((g) => [...g].sort((a, b) => a.offset - b.offset)).filter((g) => g.length > 0);
  if (sorted.length === 0) return results;
  const workers = sorted.map((ranges) => new Worker(HASH_WORKER, { workerData: { mode: 'shared', shared, ranges } }));
  const pending = new Array<number>(slotCount).fill(0);
  const freeSlots: number[] = Array.from({ length: slotCount }, (_, i) => i);
  let wakeReader: (() => void) | undefined;
  let workerError: Error | undefined;
  let done = 0;
  let allDone!: () => void;
  const finished = new Promise<void>((resolve) => (allDone = resolve));

  for (const worker of workers) {
    worker.on('message', (reply: HashWorkerReply) => {
      if (reply.type === 'free') release(reply.slot);
      else if (reply.type === 'result') results.set(reply.id, { sha256: reply.sha256 });
      else if (reply.type === 'failed') results.set(reply.id, { error: reply.reason });
      else if (reply.type === 'done' && ++done === workers.length) allDone();
    });
    worker.on('error', (err) => {
      workerError = err;
      wakeReader?.();
      allDone();
    });
  }

  let sinkError: unknown;
  const sinking = new Set<Promise<void>>();
  const release = (slot: number) => {
    if (--pending[slot]! === 0) {
      freeSlots.push(slot);
      wakeReader?.();
    }
  };
  const wanted = (offset: number, length: number) =>
    sorted.map((g, i) => (g.some((r) => r.offset < offset + length && r.offset + r.size > offset) ? i : -1)).filter((i) => i >= 0);

  const takeSlot = async (): Promise<number> => {
    while (freeSlots.length === 0) {
      if (workerError) throw workerError;
      if (sinkError) throw sinkError;
      await new Promise<void>((resolve) => (wakeReader = resolve));
      wakeReader = undefined;
    }
    return freeSlots.pop()!;
  };

  let read = 0;
  try {
    for (const [index, volume] of volumes.entries()) {
      const targets = wanted(volume.offset, volume.size);
      if (targets.length === 0 && !options.sink) continue;
      const present = Math.min(volume.actualSize ?? 0, volume.size);
      if (present < volume.size) {
        const reason = volume.actualSize === undefined ? `volume ${volume.path} is missing` : `volume ${volume.path} is truncated at byte ${volume.actualSize} of ${volume.size}`;
        for (const i of targets) workers[i]!.postMessage({ type: 'skip', offset: volume.offset + present, length: volume.size - present, reason } satisfies HashWorkerMessage);
      }
      if (present === 0) continue;
      const given = options.fds?.[index] ?? undefined;
      const fd = given ?? fs.openSync(volume.path, 'r');
      try {
        for (let local = 0; local < present; ) {
          const length = Math.min(chunkSize, present - local);
          const offset = volume.offset + local;
          const chunkTargets = wanted(offset, length);
          if (chunkTargets.length === 0 && !options.sink) {
            local += length;
            continue;
          }
          const slot = await takeSlot();
          const view = Buffer.from(shared, slot * chunkSize, length);
          let got = 0;
          while (got < length) {
            const { bytesRead } = await pread(fd, view, got, length - got, local + got).catch((err: unknown) => {
              throw placeIoError(err, { io: 'read', path: volume.path, offset: local + got });
            });
            if (bytesRead === 0) throw new Error(`volume ${volume.path} shrank while being read`);
            got += bytesRead;
          }
          pending[slot] = chunkTargets.length + (options.sink ? 1 : 0);
          for (const i of chunkTargets) workers[i]!.postMessage({ type: 'chunk', slot, slotOffset: slot * chunkSize, offset, length } satisfies HashWorkerMessage);
          if (options.sink) {
            // The write reads the slot while the workers hash it; the slot is reused only when all are done.
            const write: Promise<void> = options.sink(index, local, view).then(
              () => release(slot),
              (err: unknown) => {
                sinkError ??= err;
                release(slot);
              },
            );
            sinking.add(write);
            void write.finally(() => sinking.delete(write));
          }
          local += length;
          read += length;
          options.onBytes?.(read);
        }
      } finally {
        if (given === undefined) fs.closeSync(fd);
      }
    }
    for (const worker of workers) worker.postMessage({ type: 'end' } satisfies HashWorkerMessage);
    await Promise.all([finished, ...sinking]);
    if (workerError) throw workerError;
    if (sinkError) throw sinkError;
    return results;
  } finally {
    await Promise.allSettled([...sinking]); // no write may outlive the call (its caller closes the files)
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

export interface DirectHashOptions extends Pick<HashOptions, 'onBytes' | 'chunkSize' | 'fds'> {
  /**
   * Descriptors of the volumes' copies: every byte of a range is also written there, at its offset in its
   * volume, from the buffer it was hashed from (bytes outside every range are the caller's to copy).
   */
  readonly copyFds?: ReadonlyArray<number | null>;
  /** The copies' paths, to name one whose write fails. */
  readonly copyPaths?: ReadonlyArray<string | null>;
  /** What a range is ("blob sha256:…"), to name it when a read or write within it fails. */
  readonly rangeName?: (id: number) => string | undefined;
  /** Stops the workers, the call failing with an ABORT_ERR error. */
  readonly signal?: AbortSignal;
}

/**
 * The sha256 of every range, read and hashed by worker threads with their own small positional reads (no
 * hand-off between threads, the buffer stays in the core's cache); with `copyFds`, each worker also writes what
 * it read to the copy. Bytes missing on disk make the ranges over them fail with a reason, as in hashRanges; a
 * read or write error fails the call with its code, as a VolumeIoError naming the file, the byte and (with
 * `rangeName`) the range.
 *
 * The ranges (which must not overlap) are one queue that `workers` threads take from in tar order: a worker that is done with its range takes the next one in the tar, so the reads stay near the
 * front of the tar together (near-sequential on a USB stick or a disk, where bundles are verified from), and the
 * workers end within about one range of each other, whatever the mix of sizes (a static split by bytes leaves one
 * idle while the other finishes, when one started late or got less of the CPU). A range is never split: one
 * larger than all the others together still leaves the other workers idle while it is hashed.
 */
export async function hashRangesQueued(volumes: readonly VolumeOnDisk[], ranges: readonly HashRange[], options: DirectHashOptions & { readonly workers?: number } = {}): Promise<Map<number, RangeHash>> {
  const workers = Math.min(options.workers ?? QUEUE_WORKERS, ranges.length);
  return readAndHashQueue(volumes, [...ranges].sort((a, b) => a.offset - b.offset), workers, options);
}

/** Workers on one queue by default: one a core of the two this runs on. */
const QUEUE_WORKERS = 2;

/** Reading workers started ahead of their work, idle until a call takes them; what drops each if it exits idle. */
const prestarted: Worker[] = [];
const idleListeners = new WeakMap<Worker, () => void>();

/**
 * Starts `count` reading hash workers now, for the next hashRangesQueued call to take: a
 * worker's start (a new V8 isolate and Node environment: 40–80 ms here) then overlaps the caller's own start
 * (loading its modules, reading the seal and the manifest) instead of following it. An idle worker does not keep
 * the process alive; one that exits while idle is dropped.
 */
export function prestartHashWorkers(count = QUEUE_WORKERS): void {
  while (prestarted.length < count) {
    const worker = new Worker(HASH_WORKER);
    worker.unref();
    const drop = () => {
      const at = prestarted.indexOf(worker);
      if (at >= 0) prestarted.splice(at, 1);
    };
    worker.once('exit', drop).on('error', drop);
    idleListeners.set(worker, drop);
    prestarted.push(worker);
  }
}

/** How many prestarted workers wait for a call (a test's way to see that a call took them). */
export function idleHashWorkers(): number {
  return prestarted.length;
}

/** A reading worker: a prestarted one if there is one, else a new one. */
function readingWorker(): Worker {
  const worker = prestarted.shift();
  if (!worker) return new Worker(HASH_WORKER);
  const drop = idleListeners.get(worker)!;
  worker.off('exit', drop).off('error', drop);
  worker.ref();
  return worker;
}

/** Runs `count` reading workers on one queue of ranges, sorted by offset (see hashRangesQueued). */
async function readAndHashQueue(volumes: readonly VolumeOnDisk[], ranges: readonly HashRange[], count: number, options: DirectHashOptions): Promise<Map<number, RangeHash>> {
  const chunkSize = options.chunkSize ?? 256 * 1024;
  const results = new Map<number, RangeHash>();
  let read = 0;
  const shared = {
    ...(options.fds ? { fds: options.fds } : {}),
    ...(options.copyFds ? { copyFds: options.copyFds } : {}),
    ...(options.copyPaths ? { copyPaths: options.copyPaths } : {}),
  };
  const task: ReadTask = { volumes, ranges, taken: new SharedArrayBuffer(4), chunkSize, ...shared };
  const workers = Array.from({ length: count }, () => {
    const worker = readingWorker();
    worker.postMessage(task);
    return worker;
  });
  let abort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    abort = () => reject(copyCancelled());
    if (options.signal?.aborted) abort();
    else options.signal?.addEventListener('abort', abort, { once: true });
  });
  aborted.catch(() => undefined);
  const work = workers.map(
    (worker) =>
      new Promise<void>((resolve, reject) => {
        worker.on('message', (reply: HashWorkerReply) => {
          if (reply.type === 'result') results.set(reply.id, { sha256: reply.sha256 });
          else if (reply.type === 'failed') results.set(reply.id, { error: reply.reason });
          else if (reply.type === 'progress') options.onBytes?.((read += reply.bytes));
          else if (reply.type === 'error') reject(workerError(reply, options.rangeName));
          else if (reply.type === 'done') resolve();
        });
        worker.on('error', reject);
        worker.on('exit', (code) => reject(new Error(`hash worker exited with code ${code}`)));
      }),
  );
  try {
    await Promise.race([Promise.all(work), aborted]);
    return results;
  } finally {
    if (abort) options.signal?.removeEventListener('abort', abort);
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

/** The error a cancelled copy fails with: ABORT_ERR, as Node's own aborted operations. */
export function copyCancelled(): Error {
  return Object.assign(new Error('the copy was cancelled'), { code: 'ABORT_ERR' });
}

/** A worker's error reply as an error of this thread: a failed read or write named by file, byte and range. */
function workerError(reply: Extract<HashWorkerReply, { type: 'error' }>, rangeName: DirectHashOptions['rangeName']): Error {
  const { place } = reply;
  // The worker sends the place of any error with a code; only the system's is the file's, as placeIoError decides.
  if (!place || !isSystemError(reply)) return Object.assign(new Error(reply.message), reply.code !== undefined ? { code: reply.code } : {});
  return new VolumeIoError({ io: place.io, path: place.path, offset: place.offset, what: rangeName?.(place.id) }, reply);
}
