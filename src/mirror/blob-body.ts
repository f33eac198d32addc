// Copies a blob's bytes out of file segments (its byte range inside bundle volumes, or a layout's blob file)
// into a sink: large reads into pooled buffers, two chunks in flight (three while at most four copies run), a buffer reused only once the sink took it.

import fs from 'node:fs';
import { BufferPool } from '../util/buffer-pool.js';
import { openOnce, type OpenFiles } from './open-files.js';
import type { BlobBody, ByteSink } from './store.js';

/**
 * 1 MiB reads. Measured against 128 KiB (docs/benchmarks.md): 30–40 % less server CPU per GB served, as
 * each chunk costs a thread-pool round trip for the read and a socket write; pooling makes the size free
 * of garbage, which fresh buffers of this size per read were not.
 */
export const BLOB_READ_CHUNK = 1024 * 1024;
/**
 * Chunks in flight per download: one goes out on the socket while the next is read. With few downloads
 * active a third hides the thread pool's round trip better (one client alone: 0.77× → 0.86× nginx's
 * MB/s, docs/benchmarks.md "Where the time goes at c = 1"); with many, two keep memory per download low.
 */
const CHUNKS_IN_FLIGHT = 2;
const CHUNKS_IN_FLIGHT_FEW = 3;
/** At most this many copies active: CHUNKS_IN_FLIGHT_FEW each. */
const FEW_COPIES = 4;
let activeCopies = 0;

/** Pooled buffers lent at most (64 MiB: 32 downloads at full speed) and kept for reuse (32 MiB). */
const POOL_MAX_LENT = 64;
const POOL_MAX_IDLE = 32;
/** Downloads past the pool's bound read smaller chunks of their own, so memory grows slowly with them. */
const OVERFLOW_CHUNK = 128 * 1024;

const pool = new BufferPool(BLOB_READ_CHUNK, POOL_MAX_LENT, POOL_MAX_IDLE);

/** Pooled buffers out now (in reads or writes in flight): back to where it was once every copy settled. */
export function pooledBuffersLent(): number {
  return pool.lentCount;
}

/** One contiguous file segment of a blob. */
export interface FileSegment {
  readonly path: string;
  /** Byte offset in the file. */
  readonly offset: number;
  readonly length: number;
}

/**
 * The concatenation of the segments (a blob inside one volume is one segment; one that crosses a volume
 * boundary, two). With `files`, the segments' files are read through fds kept open across downloads;
 * without, each file is opened for this copy and closed after it.
 */
export function fileSegmentsBody(segments: readonly FileSegment[], files?: OpenFiles): BlobBody {
  const nonEmpty = segments.filter((s) => s.length > 0);
  return {
    copyTo: async (sink, signal) => {
      activeCopies++;
      try {
        await copySegments(nonEmpty, sink, signal, files);
      } finally {
        activeCopies--;
      }
    },
  };
}

const readAt = (fd: number, buffer: Buffer, length: number, position: number): Promise<number> =>
  new Promise((resolve, reject) => fs.read(fd, buffer, 0, length, position, (err, bytesRead) => (err ? reject(err) : resolve(bytesRead))));

interface Chunk {
  readonly buffer: Buffer;
  readonly pooled: boolean;
}

function lendChunk(): Chunk {
  const buffer = pool.tryAcquire();
  return buffer ? { buffer, pooled: true } : { buffer: Buffer.allocUnsafe(OVERFLOW_CHUNK), pooled: false };
}

function returnChunk(chunk: Chunk): void {
  if (chunk.pooled) pool.release(chunk.buffer);
}

/**
 * The chunks written to the sink whose write has not completed. A sink may never complete a write once
 * its connection is gone (http.ServerResponse does not call back then), so on abort they are abandoned:
 * counted as returned to the pool but not reused, as the socket may still hold them.
 */
class ChunksInFlight {
  private readonly chunks = new Set<Chunk>();
  private wake: (() => void) | undefined;
  failure: Error | undefined;

  constructor(private readonly signal: AbortSignal) {
    signal.addEventListener('abort', this.onAbort, { once: true });
  }

  private readonly onAbort = (): void => this.abandonAll();

  /** The connection is gone (abort) or broken (a failed write): no write in flight is reused or waited for. */
  private abandonAll(): void {
    for (const chunk of this.chunks) if (chunk.pooled) pool.forget();
    this.chunks.clear();
    this.wake?.();
  }

  write(sink: ByteSink, chunk: Chunk, length: number): void {
    this.chunks.add(chunk);
    sink.write(chunk.buffer.subarray(0, length), (err) => {
      if (!this.chunks.delete(chunk)) return; // abandoned (abort or an earlier failed write)
      if (err) {
        if (chunk.pooled) pool.forget();
        this.failure ??= err;
        this.abandonAll();
      } else {
        returnChunk(chunk);
      }
      this.wake?.();
    });
  }

  /** Resolves once fewer than `limit` chunks are in flight, or the copy must stop (abort, failed write). */
  async below(limit: number): Promise<void> {
    while (this.chunks.size >= limit && !this.signal.aborted && !this.failure) {
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
    this.wake = undefined;
  }
}

/**
 * Resolves once every byte was written to the sink (the last chunks may still be on their way out), or
 * early when `signal` aborts. Rejects when a file cannot be opened or read (the first file is opened
 * before any byte is written, so a vanished bundle can still be answered properly) or a write fails.
 */
async function copySegments(segments: readonly FileSegment[], sink: ByteSink, signal: AbortSignal, files: OpenFiles | undefined): Promise<void> {
  // The abort listener stays for the copy's signal's life (one request's): chunks still in flight after
  // the last read must be abandoned if the connection drops before they are sent.
  const inFlight = new ChunksInFlight(signal);
  for (const segment of segments) {
    if (signal.aborted) return;
    const file = files ? await files.acquire(segment.path) : await openOnce(segment.path);
    try {
      let position = segment.offset;
      const end = segment.offset + segment.length;
      while (position < end) {
        await inFlight.below(activeCopies <= FEW_COPIES ? CHUNKS_IN_FLIGHT_FEW : CHUNKS_IN_FLIGHT);
        if (inFlight.failure) throw inFlight.failure;
        if (signal.aborted) return;
        const chunk = lendChunk();
        let bytesRead: number;
        try {
          bytesRead = await readAt(file.fd, chunk.buffer, Math.min(chunk.buffer.length, end - position), position);
        } catch (err) {
          returnChunk(chunk);
          throw err;
        }
        if (inFlight.failure) {
          // A write failed while this chunk was read: it is not sent.
          returnChunk(chunk);
          throw inFlight.failure;
        }
        if (bytesRead === 0 || signal.aborted) {
          returnChunk(chunk);
          if (signal.aborted) return;
          throw new Error(`${segment.path} ends at byte ${position}, before the blob does: the file was truncated`);
        }
        inFlight.write(sink, chunk, bytesRead);
        position += bytesRead;
      }
    } finally {
      file.release();
    }
  }
}
