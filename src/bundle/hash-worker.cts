// Worker thread of the hash pipeline: the sha256 of every range assigned to it (volumes, blobs), off the main
// thread on its own core — from chunks the main thread reads into shared memory, or read by itself from a
// queue of ranges it shares with the other workers. A CommonJS file (.cts): see HASH_WORKER in hash-pipeline.ts.

import fs from 'node:fs';
import { createHash, type Hash } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import type { HashRange, HashWorkerMessage, HashWorkerReply, IoFailure, VolumeOnDisk } from './hash-pipeline.js';

/** What a reading worker is given: its volumes, and the ranges it takes one at a time from a queue. */
export interface ReadTask {
  readonly volumes: readonly VolumeOnDisk[];
  /** In the order they are to be taken. */
  readonly ranges: readonly HashRange[];
  /**
   * One Int32 counting the ranges taken: shared by every worker of one queue, so a worker that is done takes
   * the next range while another is still busy with a large one.
   */
  readonly taken: SharedArrayBuffer;
  readonly chunkSize: number;
  /** Descriptors of the volumes, opened by the main thread (null: open it here). */
  readonly fds?: ReadonlyArray<number | null>;
  /** Descriptors of the volumes' copies: each chunk read is written there, at its offset, from the buffer it is hashed from. */
  readonly copyFds?: ReadonlyArray<number | null>;
  /** The copies' paths, to name one whose write fails. */
  readonly copyPaths?: ReadonlyArray<string | null>;
}

/**
 * A shared-read worker is given its ranges and the shared memory as workerData; a reading worker is created
 * without workerData (so that one can be started ahead of its work) and gets its task as its first message.
 */
type Init = { readonly mode: 'shared'; readonly shared: SharedArrayBuffer; readonly ranges: readonly HashRange[] } | undefined;

const init = workerData as Init;
const ranges = init?.ranges ?? [];
const port = parentPort!;
let next = 0; // first range not finished yet (ranges are sorted by offset and do not overlap)
const open = new Map<number, { hash: Hash; seen: number }>();
const failed = new Set<number>();

function reply(message: HashWorkerReply): void {
  port.postMessage(message);
}

function finish(range: HashRange): void {
  const state = open.get(range.id);
  open.delete(range.id);
  if (failed.has(range.id)) return;
  reply({ type: 'result', id: range.id, sha256: state ? state.hash.digest('hex') : createHash('sha256').digest('hex') });
}

/** Ranges that end at or before `offset` are complete (chunks arrive in increasing offset order). */
function finishBefore(offset: number): void {
  while (next < ranges.length && ranges[next]!.offset + ranges[next]!.size <= offset) finish(ranges[next++]!);
}

function onChunk(slotOffset: number, offset: number, length: number): void {
  const bytes = Buffer.from(init!.shared, slotOffset, length);
  finishBefore(offset);
  for (let i = next; i < ranges.length && ranges[i]!.offset < offset + length; i++) {
    const range = ranges[i]!;
    const start = Math.max(range.offset, offset);
    const end = Math.min(range.offset + range.size, offset + length);
    if (end <= start || failed.has(range.id)) continue;
    let state = open.get(range.id);
    if (!state) open.set(range.id, (state = { hash: createHash('sha256'), seen: 0 }));
    state.hash.update(bytes.subarray(start - offset, end - offset));
    state.seen += end - start;
  }
  finishBefore(offset + length);
}

function onSkip(offset: number, length: number, reason: string): void {
  for (let i = next; i < ranges.length && ranges[i]!.offset < offset + length; i++) {
    const range = ranges[i]!;
    if (range.offset + range.size <= offset || failed.has(range.id)) continue;
    failed.add(range.id);
    reply({ type: 'failed', id: range.id, reason });
  }
}

/** Why [offset, offset+length) of the tar cannot be read in full, or undefined when it can. */
function unreadable(volumes: readonly VolumeOnDisk[], offset: number, length: number): string | undefined {
  for (const v of volumes) {
    if (v.offset >= offset + length || v.offset + v.size <= offset) continue;
    if (v.actualSize === undefined) return `volume ${v.path} is missing`;
    const needed = Math.min(v.size, offset + length - v.offset);
    if (v.actualSize < needed) return `volume ${v.path} is truncated at byte ${v.actualSize} of ${v.size}`;
  }
  return undefined;
}

/** A failed read or write, with the file, the byte in it and the range being read, for the error reply. */
class PlacedError extends Error {
  constructor(
    override readonly cause: NodeJS.ErrnoException,
    readonly place: IoFailure,
  ) {
    super(cause.message);
  }
}

/** Runs one read or write at `place`, its system error carrying the place. */
function placed<T>(place: IoFailure, io: () => T): T {
  try {
    return io();
  } catch (err) {
    throw (err as NodeJS.ErrnoException).code !== undefined ? new PlacedError(err as NodeJS.ErrnoException, place) : err;
  }
}

function writeAll(fd: number, bytes: Buffer, position: number, place: Omit<IoFailure, 'offset'>): void {
  for (let done = 0; done < bytes.length; ) done += placed({ ...place, offset: position + done }, () => fs.writeSync(fd, bytes, done, bytes.length - done, position + done));
}

/**
 * Reads and hashes every range it takes from the queue, in small positional reads into one buffer that stays
 * in this core's cache: no hand-off between threads, so a byte costs what `openssl dgst` pays for it.
 */
function readAndHash({ volumes, ranges: queue, taken, chunkSize, fds: given, copyFds, copyPaths }: ReadTask): void {
  const buffer = Buffer.allocUnsafe(chunkSize);
  const fds = new Map<number, number>(); // the ones this worker opened (and closes)
  const PROGRESS_EVERY = 32 * 1024 * 1024;
  const counter = new Int32Array(taken);
  let read = 0;
  let reported = 0;
  try {
    for (let take = Atomics.add(counter, 0, 1); take < queue.length; take = Atomics.add(counter, 0, 1)) {
      const range = queue[take]!;
      const why = unreadable(volumes, range.offset, range.size);
      if (why) {
        reply({ type: 'failed', id: range.id, reason: why });
        continue;
      }
      const hash = createHash('sha256');
      let failure: string | undefined;
      for (let i = 0; i < volumes.length && !failure; i++) {
        const v = volumes[i]!;
        const start = Math.max(range.offset, v.offset);
        const end = Math.min(range.offset + range.size, v.offset + v.size);
        if (end <= start) continue;
        const reading = { io: 'read', path: v.path, id: range.id } as const;
        let fd = given?.[i] ?? fds.get(i);
        if (fd === undefined) fds.set(i, (fd = placed({ ...reading, offset: start - v.offset }, () => fs.openSync(v.path, 'r'))));
        const copy = copyFds?.[i] ?? undefined;
        const writing = { io: 'write', path: copyPaths?.[i] ?? `copy of ${v.path}`, id: range.id } as const;
        for (let position = start; position < end; ) {
          const local = position - v.offset;
          const n = placed({ ...reading, offset: local }, () => fs.readSync(fd, buffer, 0, Math.min(chunkSize, end - position), local));
          if (n === 0) {
            failure = `volume ${v.path} shrank while being read`;
            break;
          }
          hash.update(buffer.subarray(0, n));
          if (copy !== undefined) writeAll(copy, buffer.subarray(0, n), local, writing);
          position += n;
          read += n;
          if (read - reported >= PROGRESS_EVERY) {
            reply({ type: 'progress', bytes: read - reported });
            reported = read;
          }
        }
      }
      reply(failure ? { type: 'failed', id: range.id, reason: failure } : { type: 'result', id: range.id, sha256: hash.digest('hex') });
    }
  } finally {
    for (const fd of fds.values()) fs.closeSync(fd);
  }
  if (read > reported) reply({ type: 'progress', bytes: read - reported });
  reply({ type: 'done' });
}

/** Runs a read task, a failed read or write reported as an error reply. */
function runReadTask(task: ReadTask): void {
  try {
    readAndHash(task);
  } catch (err) {
    // A read or write error (EIO, ENOSPC) keeps its code across the thread boundary, and where it happened
    // (file, byte, range), for the caller to name the volume and the blob.
    const { message, code } = err instanceof PlacedError ? err.cause : (err as NodeJS.ErrnoException);
    reply({ type: 'error', message, ...(code !== undefined ? { code } : {}), ...(err instanceof PlacedError ? { place: err.place } : {}) });
  }
}

if (init === undefined) {
  port.once('message', (task: ReadTask) => runReadTask(task));
} else {
  port.on('message', (message: HashWorkerMessage) => {
    if (message.type === 'chunk') {
      onChunk(message.slotOffset, message.offset, message.length);
      reply({ type: 'free', slot: message.slot });
    } else if (message.type === 'skip') {
      onSkip(message.offset, message.length, message.reason);
    } else {
      finishBefore(Number.MAX_SAFE_INTEGER);
      reply({ type: 'done' });
    }
  });
}
