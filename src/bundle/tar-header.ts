// ustar headers for the bundle tar, written and read by hand so every byte offset is known up front.
// Fixed metadata (mode 0644/0755, uid/gid 0, mtime 0, no user names) makes the bytes a function of content.

export const BLOCK = 512;
/** The tar ends with two zero blocks. */
export const END_OF_ARCHIVE_SIZE = 2 * BLOCK;

export type TarEntryType = 'file' | 'directory' | 'other';

export interface TarHeader {
  readonly name: string;
  readonly size: number;
  readonly type: TarEntryType;
  readonly mode: number;
}

export class TarHeaderError extends Error {
  readonly code = 'TAR_HEADER_INVALID';
  constructor(why: string) {
    super(`invalid tar header: ${why}`);
    this.name = 'TarHeaderError';
  }
}

// Field offsets and widths of the POSIX ustar header.
const NAME = [0, 100] as const;
const MODE = [100, 8] as const;
const UID = [108, 8] as const;
const GID = [116, 8] as const;
const SIZE = [124, 12] as const;
const MTIME = [136, 12] as const;
const CHECKSUM = [148, 8] as const;
const TYPEFLAG = 156;
const MAGIC = 257;
const DEVMAJOR = [329, 8] as const;
const DEVMINOR = [337, 8] as const;
const PREFIX = [345, 155] as const;

/** Largest size the 12-byte octal field holds (8 GiB - 1); larger blobs use the base-256 form Go and GNU tar read. */
const MAX_OCTAL_SIZE = 8 ** 11 - 1;

/** Bytes an entry occupies: header plus data rounded up to whole blocks. */
export function entrySpan(size: number): number {
  return BLOCK + paddedSize(size);
}

export function paddedSize(size: number): number {
  return Math.ceil(size / BLOCK) * BLOCK;
}

function writeOctal(block: Buffer, [offset, width]: readonly [number, number], value: number): void {
  // width-1 zero-padded octal digits and a NUL, as GNU tar and Go's archive/tar write them.
  block.write(value.toString(8).padStart(width - 1, '0') + '\0', offset, width, 'ascii');
}

function writeBase256(block: Buffer, [offset, width]: readonly [number, number], value: number): void {
  let rest = BigInt(value);
  for (let i = offset + width - 1; i > offset; i--) {
    block[i] = Number(rest & 0xffn);
    rest >>= 8n;
  }
  block[offset] = 0x80;
}

function readNumber(block: Buffer, [offset, width]: readonly [number, number], field: string): number {
  if ((block[offset]! & 0x80) !== 0) {
    let value = 0n;
    value = BigInt(block[offset]! & 0x7f);
    for (let i = offset + 1; i < offset + width; i++) value = (value << 8n) | BigInt(block[i]!);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new TarHeaderError(`${field} too large`);
    return Number(value);
  }
  const text = block.toString('ascii', offset, offset + width).replace(/[\0 ]+$/, '').replace(/^ +/, '');
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new TarHeaderError(`${field} is not octal: ${JSON.stringify(text)}`);
  return parseInt(text, 8);
}

function readString(block: Buffer, [offset, width]: readonly [number, number]): string {
  const end = block.indexOf(0, offset);
  return block.toString('utf8', offset, end === -1 || end > offset + width ? offset + width : end);
}

/** The header checksum: the byte sum of the block with the checksum field counted as eight spaces. */
export function headerChecksum(block: Buffer): number {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= CHECKSUM[0] && i < CHECKSUM[0] + CHECKSUM[1] ? 0x20 : block[i]!;
  return sum;
}

/** One 512-byte ustar header for a file (mode 0644) or a directory (mode 0755, name ending in "/"). */
export function encodeHeader(name: string, size: number, type: 'file' | 'directory'): Buffer {
  const nameBytes = Buffer.byteLength(name, 'utf8');
  if (nameBytes > NAME[1]) throw new TarHeaderError(`name longer than ${NAME[1]} bytes: ${name}`);
  if (!Number.isSafeInteger(size) || size < 0) throw new TarHeaderError(`bad size ${size} for ${name}`);
  if (type === 'directory' && (size !== 0 || !name.endsWith('/'))) throw new TarHeaderError(`bad directory entry ${name}`);
  const block = Buffer.alloc(BLOCK);
  block.write(name, NAME[0], NAME[1], 'utf8');
  writeOctal(block, MODE, type === 'directory' ? 0o755 : 0o644);
  writeOctal(block, UID, 0);
  writeOctal(block, GID, 0);
  if (size <= MAX_OCTAL_SIZE) writeOctal(block, SIZE, size);
  else writeBase256(block, SIZE, size);
  writeOctal(block, MTIME, 0);
  block[TYPEFLAG] = type === 'directory' ? 0x35 /* '5' */ : 0x30; /* '0' */
  block.write('ustar\u000000', MAGIC, 8, 'ascii');
  writeOctal(block, DEVMAJOR, 0);
  writeOctal(block, DEVMINOR, 0);
  // Checksum: six octal digits, NUL, space (the historical layout every tar reads).
  block.write(headerChecksum(block).toString(8).padStart(6, '0') + '\0 ', CHECKSUM[0], CHECKSUM[1], 'ascii');
  return block;
}

export function isZeroBlock(block: Buffer): boolean {
  for (let i = 0; i < BLOCK; i++) if (block[i] !== 0) return false;
  return true;
}

/** Parses a ustar (or old GNU) header; throws TarHeaderError on a bad checksum or field. */
export function decodeHeader(block: Buffer): TarHeader {
  if (block.length < BLOCK) throw new TarHeaderError(`short block (${block.length} bytes)`);
  const stored = readNumber(block, CHECKSUM, 'checksum');
  if (stored !== headerChecksum(block)) throw new TarHeaderError(`checksum ${stored} does not match ${headerChecksum(block)}`);
  const magic = block.toString('ascii', MAGIC, MAGIC + 5);
  let name = readString(block, NAME);
  if (magic === 'ustar') {
    const prefix = readString(block, PREFIX);
    if (prefix !== '') name = `${prefix}/${name}`;
  }
  const flag = block[TYPEFLAG]!;
  const type: TarEntryType = flag === 0x30 || flag === 0 ? 'file' : flag === 0x35 ? 'directory' : 'other';
  return {
    name,
    size: readNumber(block, SIZE, 'size'),
    type: type === 'file' && name.endsWith('/') ? 'directory' : type,
    mode: readNumber(block, MODE, 'mode'),
  };
}
