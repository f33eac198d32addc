// A blob's stream cut into write batches copied into one reused buffer: each batch is one pwrite, and the
// network chunks die as soon as they are copied, as in a client that writes nothing.

import type { Readable } from 'node:stream';
import { BufferPool } from '../util/buffer-pool.js';

/** A batch smaller than the buffer is written anyway once the stream has been silent this long. */
export const BATCH_IDLE_MS = 20;

/**
 * The stream was destroyed without an error before its end (no 'end' event): the blob is short, and nothing
 * more will come, so waiting for it would wait forever. Node's own code for this, as stream.finished gives it.
 */
export class StreamClosedEarlyError extends Error {
  readonly code = 'ERR_STREAM_PREMATURE_CLOSE';
  constructor() {
    super('the stream closed before its end');
    this.name = 'StreamClosedEarlyError';
  }
}

/** One batch: a view of the lent buffer, valid until the consumer asks for the next batch. */
export interface WriteBatch {
  readonly bytes: Buffer;
  /** Cut short (the stream ended, failed or stalled): its journal slot is written at once. */
  readonly short: boolean;
}

/**
 * Yields the stream's bytes in batches that fill `buffer`, or fewer when the stream ends, fails or stalls for
 * `idleMs` (what arrived is put on disk and in the journal, not held while waiting). The stream flows while
 * the buffer has room and is paused while a batch is written (the buffer is left alone until the next call).
 *
 * Why a copy: each network chunk (~64 KiB) is a fresh ArrayBuffer. Held until its batch was written (up to
 * 4 MiB per blob before), chunks outlived scavenges and waited in the old generation for a full collection,
 * which `bundle create` now runs seldom (src/util/streaming-heap.ts): peak RSS at 4.46 GB rose from 142–149 MiB
 * to 160–193 MiB. Copied and dropped at once they die young; peak RSS 160–168 MiB, for a memcpy of each byte
 * (no change in CPU this machine could measure: docs/benchmarks.md, "create's CPU, accounted").
 */
export async function* writeBatches(stream: Readable, buffer: Buffer, idleMs = BATCH_IDLE_MS): AsyncGenerator<WriteBatch> {
  let filled = 0;
  /** Chunks (or a chunk's tail) that did not fit: placed first once the batch is written. */
  const overflow: Buffer[] = [];
  let ended = false;
  let error: Error | undefined;
  let stalled = false;
  let wake: (() => void) | undefined;
  const signal = (): void => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  let timer: NodeJS.Timeout | undefined;
  /** Copies what fits of `chunk` into the buffer; returns the tail that did not fit. */
  const place = (chunk: Buffer): Buffer | undefined => {
    const fit = Math.min(chunk.length, buffer.length - filled);
    chunk.copy(buffer, filled, 0, fit);
    filled += fit;
    return fit < chunk.length ? chunk.subarray(fit) : undefined;
  };
  /** Bytes held in a batch that is not full are written after `idleMs` of silence, counted from the last chunk. */
  const armIdleTimer = (): void => {
    if (timer !== undefined) {
      timer.refresh();
      return;
    }
    timer = setTimeout(() => {
      stalled = true;
      signal();
    }, idleMs);
  };
  const onData = (chunk: Buffer): void => {
    const tail = overflow.length > 0 ? chunk : place(chunk);
    if (tail) overflow.push(tail);
    if (filled === buffer.length) {
      stream.pause();
      signal();
    } else armIdleTimer();
  };
  const onEnd = (): void => {
    ended = true;
    signal();
  };
  const onError = (err: Error): void => {
    error = err;
    signal();
  };
  // 'close' after 'end' or 'error' changes nothing; alone, it means the stream was destroyed without an error.
  const onClose = (): void => {
    if (!ended && error === undefined) onError(new StreamClosedEarlyError());
  };
  stream.on('data', onData).on('end', onEnd).on('error', onError).on('close', onClose);
  try {
    for (;;) {
      // What arrived before an error is written first (a re-run continues after it), then the error thrown.
      if (error && filled === 0) throw error;
      const full = filled === buffer.length;
      if (full || (filled > 0 && (ended || error !== undefined || stalled))) {
        clearTimeout(timer);
        timer = undefined;
        stalled = false;
        stream.pause(); // the buffer is being written: nothing may land in it until the consumer asks again
        yield { bytes: buffer.subarray(0, filled), short: !full };
        filled = 0;
        while (overflow.length > 0 && filled < buffer.length) {
          const tail = place(overflow.shift()!);
          if (tail) overflow.unshift(tail);
        }
        if (filled < buffer.length && !ended && error === undefined) {
          // A chunk's tail carried over from the full batch waits like any chunk: the stream may now stall.
          if (filled > 0) armIdleTimer();
          stream.resume();
        }
        continue;
      }
      if (ended) return;
      await new Promise<void>((resolve) => (wake = resolve));
    }
  } finally {
    clearTimeout(timer);
    stream.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose);
    if (!ended) stream.destroy();
  }
}

/**
 * Batch buffers of `bytes` each for at most `streams` blobs at once: a bounded set reused for every blob, so
 * a run allocates them once instead of once per blob.
 */
export function batchBufferPool(bytes: number, streams: number): BufferPool {
  return new BufferPool(bytes, Number.MAX_SAFE_INTEGER, streams);
}
