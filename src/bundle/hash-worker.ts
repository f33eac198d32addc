// Worker thread of the hash pipeline: hashes the chunks the main thread reads into shared memory into the
// sha256 of every range assigned to it (volumes, blobs), so hashing runs off the main thread on its own core.

import { createHash, type Hash } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import type { HashRange, HashWorkerMessage, HashWorkerReply } from './hash-pipeline.js';

interface Init {
  readonly shared: SharedArrayBuffer;
  readonly ranges: readonly HashRange[];
}

const { shared, ranges } = workerData as Init;
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
  const bytes = Buffer.from(shared, slotOffset, length);
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
