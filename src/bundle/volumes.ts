// A bundle's volumes seen as one byte range: maps a global tar offset to (volume file, local offset) for
// positional reads and writes, and streams any range across volume boundaries without buffering it whole.

import fs from 'node:fs';
import { promisify } from 'node:util';
import { Readable } from 'node:stream';
import { errnoCode, UserError } from '../util/errors.js';
import { placeIoError } from './volume-io-error.js';

const pread = promisify(fs.read);
const pwrite = promisify(fs.write);
const openFd = promisify(fs.open);
const closeFd = promisify(fs.close);
const fsyncFd = promisify(fs.fsync);
const fdatasyncFd = promisify(fs.fdatasync);

export interface Volume {
  readonly path: string;
  readonly size: number;
}

/** One contiguous piece of a global range inside one volume. */
export interface VolumePiece {
  readonly volume: number;
  readonly localOffset: number;
  readonly globalOffset: number;
  readonly length: number;
}

/** The [offset, size) of each volume when `totalSize` bytes are cut every `splitSize` bytes. */
export function volumeRanges(totalSize: number, splitSize: number | undefined): Array<{ offset: number; size: number }> {
  if (splitSize === undefined) return [{ offset: 0, size: totalSize }];
  if (!Number.isSafeInteger(splitSize) || splitSize <= 0) throw new RangeError(`bad split size ${splitSize}`);
  const ranges: Array<{ offset: number; size: number }> = [];
  for (let offset = 0; offset < totalSize; offset += splitSize) ranges.push({ offset, size: Math.min(splitSize, totalSize - offset) });
  return ranges;
}

/** Volume file names: unsplit → exactly NAME; split → NAME.001, NAME.002, … */
export function volumeFileNames(name: string, count: number, split: boolean): string[] {
  if (!split) return [name];
  return Array.from({ length: count }, (_, i) => `${name}.${String(i + 1).padStart(3, '0')}`);
}

const STREAM_CHUNK = 256 * 1024;

/** Writes all of `bytes` at `position` of `fd`, going on after a short write (signals, a quota at its margin). */
export async function pwriteAll(fd: number, bytes: Buffer, position: number): Promise<void> {
  for (let done = 0; done < bytes.length; ) done += (await pwrite(fd, bytes, done, bytes.length - done, position + done)).bytesWritten;
}

export class VolumeSet {
  readonly totalSize: number;
  private readonly starts: number[] = [];
  private readonly fds: Array<Promise<number> | undefined>;
  private closed = false;

  constructor(readonly volumes: readonly Volume[], private readonly writable = false) {
    let offset = 0;
    for (const v of volumes) {
      this.starts.push(offset);
      offset += v.size;
    }
    this.totalSize = offset;
    this.fds = volumes.map(() => undefined);
  }

  /** Splits [offset, offset+length) into per-volume pieces. */
  pieces(offset: number, length: number): VolumePiece[] {
    if (offset < 0 || length < 0 || offset + length > this.totalSize) {
      throw new RangeError(`range ${offset}+${length} outside the bundle (${this.totalSize} bytes)`);
    }
    const out: VolumePiece[] = [];
    let index = this.volumeAt(offset);
    let global = offset;
    let left = length;
    while (left > 0) {
      const local = global - this.starts[index]!;
      const n = Math.min(left, this.volumes[index]!.size - local);
      if (n > 0) out.push({ volume: index, localOffset: local, globalOffset: global, length: n });
      global += n;
      left -= n;
      index++;
    }
    return out;
  }

  /** Index of the volume holding byte `offset` (binary search over the volume starts). */
  volumeAt(offset: number): number {
    let lo = 0;
    let hi = this.volumes.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** The bundle (tar) offset of byte `localOffset` of volume `index`: a place in one volume as a place in the tar. */
  bundleOffset(index: number, localOffset: number): number {
    return this.starts[index]! + localOffset;
  }

  /** The descriptor of volume `index`, opened on first use and kept until close (worker threads may share it). */
  fd(index: number): Promise<number> {
    if (this.closed) throw new Error('VolumeSet is closed');
    let fd = this.fds[index];
    if (!fd) {
      const volumePath = this.volumes[index]!.path;
      // A reader that reads only part of a bundle (its manifest entry) has not checked the other volumes.
      fd = openFd(volumePath, this.writable ? 'r+' : 'r').catch((err: unknown) => {
        if (this.writable) throw err;
        if (errnoCode(err) === 'ENOENT') throw new UserError('BUNDLE_VOLUME_MISSING', `bundle volume ${volumePath} is missing`, { subject: { kind: 'path', name: volumePath } });
        throw placeIoError(err, { io: 'read', path: volumePath }); // EIO, EACCES: the media's, as a failed read (of no byte yet)
      });
      fd.catch(() => undefined);
      this.fds[index] = fd;
    }
    return fd;
  }

  /** Reads exactly `length` bytes at global `offset` into `buffer` (at `bufferOffset`); a short volume is an error. */
  async read(buffer: Buffer, offset: number, length = buffer.length, bufferOffset = 0): Promise<void> {
    let at = bufferOffset;
    for (const piece of this.pieces(offset, length)) {
      const fd = await this.fd(piece.volume);
      const v = this.volumes[piece.volume]!;
      let done = 0;
      while (done < piece.length) {
        const { bytesRead } = await pread(fd, buffer, at + done, piece.length - done, piece.localOffset + done).catch((err: unknown) => {
          throw placeIoError(err, { io: 'read', path: v.path, offset: piece.localOffset + done });
        });
        if (bytesRead === 0) {
          throw new UserError('BUNDLE_TRUNCATED', `volume ${v.path} ends at byte ${piece.localOffset + done}, expected ${v.size} bytes`, {
            subject: { kind: 'path', name: v.path },
          });
        }
        done += bytesRead;
      }
      at += piece.length;
    }
  }

  /** Writes `buffer` at global `offset`, possibly across a volume boundary. */
  async write(buffer: Buffer, offset: number): Promise<void> {
    let at = 0;
    for (const piece of this.pieces(offset, buffer.length)) {
      const fd = await this.fd(piece.volume);
      await pwriteAll(fd, buffer.subarray(at, at + piece.length), piece.localOffset);
      at += piece.length;
    }
  }

  /** fsyncs every volume that has been opened (or all when `all`). */
  async sync(all = false): Promise<void> {
    for (let i = 0; i < this.volumes.length; i++) {
      if (this.fds[i] || all) await fsyncFd(await this.fd(i));
    }
  }

  /** fdatasync one volume (a blob's bytes are durable before the journal says it is done). */
  async syncVolume(index: number): Promise<void> {
    await fdatasyncFd(await this.fd(index));
  }

  async close(): Promise<void> {
    this.closed = true;
    const fds = this.fds.splice(0);
    for (const fd of fds) {
      if (!fd) continue;
      try {
        await closeFd(await fd);
      } catch {
        // an fd that failed to open has nothing to close
      }
    }
  }

  /** A stream of [offset, offset+length) across volumes, read in 256 KiB positional reads. */
  createReadStream(offset: number, length: number): Readable {
    this.pieces(offset, length); // validate the range now, not on first read
    const volumes = this;
    let position = offset;
    const end = offset + length;
    return new Readable({
      highWaterMark: STREAM_CHUNK,
      read(this: Readable, size: number) {
        if (position >= end) {
          this.push(null);
          return;
        }
        const n = Math.min(Math.max(size, STREAM_CHUNK), end - position);
        const chunk = Buffer.allocUnsafe(n);
        const at = position;
        position += n;
        volumes.read(chunk, at, n).then(
          () => {
            this.push(chunk);
            if (position >= end) this.push(null);
          },
          (err: unknown) => this.destroy(err instanceof Error ? err : new Error(String(err))),
        );
      },
    });
  }
}
