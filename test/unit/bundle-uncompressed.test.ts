// Uncompressed layer sizes from the gzip trailer: exact only when the compressed size leaves one candidate.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { randomBytes } from 'node:crypto';
import { sizeFromGzipTrailer } from '../../src/bundle/uncompressed.js';

test('a small gzip layer gets its exact uncompressed size from ISIZE', () => {
  for (const content of [Buffer.alloc(100_000, 7), randomBytes(50_000), Buffer.alloc(0)]) {
    const gz = gzipSync(content);
    const isize = gz.readUInt32LE(gz.length - 4);
    assert.deepEqual(sizeFromGzipTrailer(isize, gz.length, gz.length * 3), { size: content.length, estimated: false });
  }
});

test('a large layer where ISIZE wraps is marked estimated, with a size consistent with ISIZE', () => {
  const compressed = 2 ** 30; // 1 GiB compressed can inflate past many multiples of 4 GiB
  const result = sizeFromGzipTrailer(12345, compressed, compressed * 3);
  assert.equal(result.estimated, true);
  assert.equal(result.size % 2 ** 32, 12345);
  assert.ok(Math.abs(result.size - compressed * 3) <= 2 ** 31);
});

test('once the deflate 1032:1 bound spans 4 GiB, an ISIZE with two fitting candidates is only an estimate', () => {
  const compressed = Math.ceil(2 ** 32 / 1032) + 10_000; // inflates to at most ~4.305 GB
  // 5 000 000 and 5 000 000 + 2^32 both fit between the compressed size and 1032× it.
  assert.equal(sizeFromGzipTrailer(5_000_000, compressed, compressed * 3).estimated, true);
  // 5 cannot (below the compressed size), so 5 + 2^32 is the one candidate.
  assert.deepEqual(sizeFromGzipTrailer(5, compressed, compressed * 3), { size: 5 + 2 ** 32, estimated: false });
});
