// Reads a byte range of a file as a stream with large chunks and nothing per chunk: the blob path of
// the mirror is fs.createReadStream with start/end, so the kernel does the work and backpressure holds.

import fs from 'node:fs';
import { PassThrough, type Readable } from 'node:stream';

/**
 * 128 KiB reads: throughput measured on par with 512 KiB and 1-2 MiB (the socket takes at most a few hundred
 * KiB per write anyway), while each connection's buffers, and the garbage they leave, are a quarter the size.
 */
export const BLOB_READ_CHUNK = 128 * 1024;

/** One contiguous file segment of a blob. */
export interface FileSegment {
  readonly path: string;
  /** Byte offset in the file. */
  readonly offset: number;
  readonly length: number;
}

function segmentStream(segment: FileSegment): Readable {
  return fs.createReadStream(segment.path, {
    start: segment.offset,
    end: segment.offset + segment.length - 1,
    highWaterMark: BLOB_READ_CHUNK,
  });
}

/**
 * The concatenation of the segments (a blob inside one volume is one segment; one that crosses a
 * volume boundary, two). Destroying the returned stream destroys the file stream being read.
 */
export function fileSegmentsStream(segments: readonly FileSegment[]): Readable {
  const nonEmpty = segments.filter((s) => s.length > 0);
  if (nonEmpty.length === 1) return segmentStream(nonEmpty[0]!);
  const out = new PassThrough({ highWaterMark: BLOB_READ_CHUNK });
  let current: Readable | undefined;
  let index = 0;
  const next = (): void => {
    const segment = nonEmpty[index++];
    if (!segment) {
      out.end();
      return;
    }
    current = segmentStream(segment);
    current.once('error', (err) => out.destroy(err));
    current.once('end', next);
    current.pipe(out, { end: false });
  };
  out.once('close', () => current?.destroy());
  next();
  return out;
}
