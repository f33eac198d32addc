import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { BLOCK, decodeHeader, encodeHeader, headerChecksum, TarHeaderError, type TarHeader } from '../../src/bundle/tar-header.js';
import { expectOnly, FUZZ_OPTIONS } from '../support/fuzz.js';

/** Writes the right checksum into `block` so decoding gets past the checksum gate to the other fields. */
function withValidChecksum(block: Buffer): Buffer {
  const copy = Buffer.from(block);
  copy.write(headerChecksum(copy).toString(8).padStart(6, '0') + '\0 ', 148, 8, 'ascii');
  return copy;
}

function assertSaneHeader(h: TarHeader): void {
  assert.equal(typeof h.name, 'string');
  assert.ok(Number.isSafeInteger(h.size) && h.size >= 0, `size ${h.size}`);
  assert.ok(Number.isSafeInteger(h.mode) && h.mode >= 0, `mode ${h.mode}`);
  assert.ok(['file', 'directory', 'other'].includes(h.type));
}

const randomBlock = fc.uint8Array({ minLength: BLOCK, maxLength: BLOCK }).map((b) => Buffer.from(b));
const fileName = fc
  .string({ unit: 'grapheme', minLength: 1, maxLength: 60 })
  .filter((s) => !s.includes('\0') && !s.endsWith('/') && Buffer.byteLength(s) <= 100);
const size = fc.oneof(fc.nat({ max: 1 << 20 }), fc.constantFrom(0, 8 ** 11 - 1, 8 ** 11, 10 * 2 ** 30), fc.maxSafeNat());

/** A real header with a few bytes overwritten (and, half the time, the checksum fixed up). */
const mutatedHeader = fc
  .tuple(fileName, size, fc.array(fc.tuple(fc.nat({ max: BLOCK - 1 }), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }), fc.boolean())
  .map(([name, n, edits, fix]) => {
    const block = encodeHeader(name, n, 'file');
    for (const [at, byte] of edits) block[at] = byte;
    return fix ? withValidChecksum(block) : block;
  });

test('decodeHeader on random 512-byte blocks returns a sane header or throws TarHeaderError', () => {
  fc.assert(
    fc.property(fc.oneof(randomBlock, randomBlock.map(withValidChecksum), mutatedHeader), (block) => {
      const header = expectOnly(() => decodeHeader(block), [TarHeaderError], block.toString('hex'));
      if (header !== undefined) assertSaneHeader(header);
    }),
    FUZZ_OPTIONS,
  );
});

test('decodeHeader rejects a block whose checksum does not match', () => {
  fc.assert(
    fc.property(fileName, size, fc.nat({ max: BLOCK - 1 }), fc.integer({ min: 1, max: 255 }), (name, n, at, delta) => {
      const block = encodeHeader(name, n, 'file');
      fc.pre(at < 148 || at >= 156); // a change inside the checksum field is a different checksum, tested below
      block[at] = (block[at]! + delta) & 0xff;
      assert.throws(() => decodeHeader(block), TarHeaderError);
    }),
    FUZZ_OPTIONS,
  );
});

test('decodeHeader rejects blocks shorter than 512 bytes with TarHeaderError', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: BLOCK - 1 }), (bytes) => {
      assert.throws(() => decodeHeader(Buffer.from(bytes)), TarHeaderError);
    }),
    FUZZ_OPTIONS,
  );
});

test('encodeHeader then decodeHeader gives back the name, size, type and mode (sizes past 8 GiB included)', () => {
  fc.assert(
    fc.property(fileName, size, fc.boolean(), (name, n, directory) => {
      const header = directory ? decodeHeader(encodeHeader(`${name}/`, 0, 'directory')) : decodeHeader(encodeHeader(name, n, 'file'));
      assert.deepEqual(header, directory ? { name: `${name}/`, size: 0, type: 'directory', mode: 0o755 } : { name, size: n, type: 'file', mode: 0o644 });
    }),
    FUZZ_OPTIONS,
  );
});

test('encodeHeader is a function of its arguments: same entry, same 512 bytes', () => {
  fc.assert(
    fc.property(fileName, size, (name, n) => {
      assert.ok(encodeHeader(name, n, 'file').equals(encodeHeader(name, n, 'file')));
    }),
    FUZZ_OPTIONS,
  );
});

test('encodeHeader refuses what it cannot write faithfully with TarHeaderError', () => {
  const badEntry = fc.oneof(
    fc.string({ minLength: 101, maxLength: 200 }).map((name) => [name, 0, 'file'] as const),
    fc.tuple(fileName, fc.oneof(fc.integer({ max: -1 }), fc.double({ min: 0.1, max: 1e6, noInteger: true }), fc.constant(Number.MAX_SAFE_INTEGER + 2))).map(([name, n]) => [name, n, 'file'] as const),
    fc.tuple(fileName, fc.integer({ min: 1, max: 1000 })).map(([name, n]) => [`${name}/`, n, 'directory'] as const),
    fileName.map((name) => [name, 0, 'directory'] as const),
  );
  fc.assert(
    fc.property(badEntry, ([name, n, type]) => {
      assert.throws(() => encodeHeader(name, n, type), TarHeaderError);
    }),
    FUZZ_OPTIONS,
  );
});
