// ustar headers as the bundle writes them: fixed metadata, a checksum every tar accepts, base-256 sizes
// beyond 8 GiB, and a decoder that gives back what was encoded and refuses damaged headers.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import fc from 'fast-check';
import tar from 'tar-stream';
import { BLOCK, decodeHeader, encodeHeader, entrySpan, headerChecksum, TarHeaderError } from '../../src/bundle/tar-header.js';

test('a file header has mode 0644, uid/gid 0, mtime 0, no user names, ustar magic and a valid checksum', () => {
  const block = encodeHeader('blobs/sha256/' + 'ab'.repeat(32), 1234, 'file');
  assert.equal(block.length, BLOCK);
  assert.equal(block.toString('ascii', 100, 108), '0000644\0');
  assert.equal(block.toString('ascii', 108, 116), '0000000\0');
  assert.equal(block.toString('ascii', 116, 124), '0000000\0');
  assert.equal(block.toString('ascii', 124, 136), '00000002322\0');
  assert.equal(block.toString('ascii', 136, 148), '00000000000\0');
  assert.equal(block[156], 0x30);
  assert.equal(block.toString('ascii', 257, 265), 'ustar\u000000');
  assert.ok(block.subarray(265, 329).every((b) => b === 0), 'uname and gname are empty');
  assert.equal(parseInt(block.toString('ascii', 148, 154), 8), headerChecksum(block));
});

test('a directory header has mode 0755 and type 5', () => {
  const block = encodeHeader('blobs/', 0, 'directory');
  assert.equal(block.toString('ascii', 100, 108), '0000755\0');
  assert.equal(block[156], 0x35);
  assert.deepEqual(decodeHeader(block), { name: 'blobs/', size: 0, type: 'directory', mode: 0o755 });
});

test('sizes of 8 GiB and more use the base-256 form and decode back exactly', () => {
  for (const size of [8 ** 11 - 1, 8 ** 11, 10 * 2 ** 30 + 5, Number.MAX_SAFE_INTEGER]) {
    const block = encodeHeader('big', size, 'file');
    assert.equal((block[124]! & 0x80) !== 0, size >= 8 ** 11, `base-256 marker for ${size}`);
    assert.equal(decodeHeader(block).size, size);
  }
});

test('encode then decode gives back name, size and type for any short name and size', () => {
  fc.assert(
    fc.property(fc.stringMatching(/^[a-z0-9._-][a-z0-9._/-]{0,98}$/), fc.maxSafeNat(), (name, size) => {
      const h = decodeHeader(encodeHeader(name, size, 'file'));
      assert.deepEqual([h.name, h.size, h.type], [name, size, name.endsWith('/') ? 'directory' : 'file']);
    }),
  );
});

test('a header with one changed byte is refused with a checksum error', () => {
  const block = encodeHeader('index.json', 10, 'file');
  block[3] = block[3]! ^ 1;
  assert.throws(() => decodeHeader(block), TarHeaderError);
});

test('names longer than 100 bytes and negative sizes are refused', () => {
  assert.throws(() => encodeHeader('x'.repeat(101), 1, 'file'), TarHeaderError);
  assert.throws(() => encodeHeader('x', -1, 'file'), TarHeaderError);
});

test('tar-stream reads our headers, data and end-of-archive', async () => {
  const data = Buffer.from('hello bundle');
  const archive = Buffer.alloc(entrySpan(data.length) + 2 * BLOCK);
  encodeHeader('pin-preload.json', data.length, 'file').copy(archive, 0);
  data.copy(archive, BLOCK);
  const seen: Array<[string, number, string]> = [];
  const extract = tar.extract();
  extract.on('entry', (header, stream, next) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: unknown) => {
      chunks.push(c as Buffer);
    });
    stream.on('end', () => {
      seen.push([header.name, header.mode ?? -1, Buffer.concat(chunks).toString()]);
      next();
    });
  });
  await new Promise<void>((resolve, reject) => {
    extract.on('finish', resolve).on('error', reject);
    Readable.from([archive]).pipe(extract);
  });
  assert.deepEqual(seen, [['pin-preload.json', 0o644, 'hello bundle']]);
});
