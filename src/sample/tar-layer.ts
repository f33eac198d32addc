// Writes one image layer blob: entries → ustar tar → gzip → temp file, hashing the tar (diff_id) and
// the gzip (digest) in the same pass, then renames it into the layout. No layer is ever held in memory.

import { createHash, randomBytes, type Hash } from 'node:crypto';
import { createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import type { Digest } from '../oci/digest.js';

/** One tar entry. File content comes from a generator so that large files are streamed. */
export type TarEntry =
  | { readonly kind: 'dir'; readonly name: string }
  | { readonly kind: 'file'; readonly name: string; readonly size: number; readonly content: () => Iterable<Buffer> };

export interface WrittenLayer {
  readonly digest: Digest;
  /** sha256 of the uncompressed tar: what the image config lists in rootfs.diff_ids. */
  readonly diffId: Digest;
  readonly size: number;
}

const BLOCK = 512;
/** zlib emits 16 KiB chunks by default: tens of thousands of writes per GB. Bigger chunks, same bytes. */
const GZIP_CHUNK = 512 * 1024;
/** Fixed mtime (2024-01-01T00:00:00Z) so the same entries always make the same bytes. */
export const FIXED_MTIME = 1704067200;

function writeOctal(header: Buffer, offset: number, width: number, value: number): void {
  header.write(value.toString(8).padStart(width - 1, '0') + '\0', offset, width, 'ascii');
}

/** Sizes of 8 GiB and more do not fit 11 octal digits; GNU base-256 (high bit set) holds any size. */
function writeSize(header: Buffer, size: number): void {
  if (size < 8 ** 11) {
    writeOctal(header, 124, 12, size);
    return;
  }
  header[124] = 0x80;
  let rest = BigInt(size);
  for (let i = 135; i > 124; i--) {
    header[i] = Number(rest & 0xffn);
    rest >>= 8n;
  }
}

/** A POSIX ustar header, root-owned, fixed mtime. Names must fit 100 bytes (ours are short). */
export function tarHeader(entry: TarEntry): Buffer {
  const name = entry.kind === 'dir' && !entry.name.endsWith('/') ? `${entry.name}/` : entry.name;
  if (Buffer.byteLength(name) > 100) throw new Error(`tar entry name longer than 100 bytes: ${name}`);
  const header = Buffer.alloc(BLOCK);
  header.write(name, 0, 100, 'utf8');
  writeOctal(header, 100, 8, entry.kind === 'dir' ? 0o755 : 0o644);
  writeOctal(header, 108, 8, 0);
  writeOctal(header, 116, 8, 0);
  writeSize(header, entry.kind === 'dir' ? 0 : entry.size);
  writeOctal(header, 136, 12, FIXED_MTIME);
  header.write(entry.kind === 'dir' ? '5' : '0', 156, 1, 'ascii');
  header.write('ustar\0', 257, 6, 'ascii');
  header.write('00', 263, 2, 'ascii');
  header.write('root', 265, 32, 'ascii');
  header.write('root', 297, 32, 'ascii');
  header.fill(0x20, 148, 156); // the checksum is computed with its own field as spaces
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'ascii');
  return header;
}

/** The tar stream's bytes, entry by entry, ending with the two zero blocks. */
function* tarBytes(entries: readonly TarEntry[]): Generator<Buffer> {
  for (const entry of entries) {
    yield tarHeader(entry);
    if (entry.kind === 'dir') continue;
    let written = 0;
    for (const chunk of entry.content()) {
      written += chunk.length;
      yield chunk;
    }
    if (written !== entry.size) throw new Error(`tar entry ${entry.name}: content has ${written} bytes, header says ${entry.size}`);
    const pad = (BLOCK - (entry.size % BLOCK)) % BLOCK;
    if (pad > 0) yield Buffer.alloc(pad);
  }
  yield Buffer.alloc(2 * BLOCK);
}

/** Counts and hashes what passes through. */
class Tap extends Transform {
  readonly hash: Hash = createHash('sha256');
  bytes = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    done(null, chunk);
  }
}

/** Writes a gzip'd tar of `entries` into `blobsDir` (…/blobs/sha256) under its digest. */
export async function writeLayerBlob(blobsDir: string, entries: readonly TarEntry[], compressionLevel: number): Promise<WrittenLayer> {
  const tmp = path.join(blobsDir, `.layer-${randomBytes(6).toString('hex')}.tmp`);
  const tar = new Tap();
  const gz = new Tap();
  try {
    await pipeline(Readable.from(tarBytes(entries), { objectMode: false }), tar, createGzip({ level: compressionLevel, chunkSize: GZIP_CHUNK }), gz, createWriteStream(tmp));
    const hex = gz.hash.digest('hex');
    await fs.rename(tmp, path.join(blobsDir, hex));
    return { digest: `sha256:${hex}` as Digest, diffId: `sha256:${tar.hash.digest('hex')}` as Digest, size: gz.bytes };
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
}
