// The mirror's blob copy: exact bytes across volume boundaries and ranges, at most two chunks in flight
// (three while at most four copies run),
// pooled buffers reused only after the sink took them, and none lost when a client goes away.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { BLOB_READ_CHUNK, fileSegmentsBody, pooledBuffersLent } from '../../src/mirror/blob-body.js';
import type { ByteSink } from '../../src/mirror/store.js';
import { BufferPool } from '../../src/util/buffer-pool.js';

async function workDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-blob-body-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A sink that copies what it is given (the buffer will be reused) and completes each write at once. */
function collectingSink(): { sink: ByteSink; bytes(): Buffer } {
  const parts: Buffer[] = [];
  return {
    sink: {
      write(chunk, done) {
        parts.push(Buffer.from(chunk));
        setImmediate(() => done());
        return true;
      },
    },
    bytes: () => Buffer.concat(parts),
  };
}

/** A sink that holds every write until told to complete it, like a socket whose client stopped reading. */
function heldSink(): { sink: ByteSink; held: Array<{ chunk: Buffer; done: (err?: Error | null) => void }> } {
  const held: Array<{ chunk: Buffer; done: (err?: Error | null) => void }> = [];
  return {
    sink: {
      write(chunk, done) {
        held.push({ chunk: Buffer.from(chunk), done });
        return false;
      },
    },
    held,
  };
}

/** Polls until `ready` holds (bounded: 10 s, for a loaded machine), so tests wait for reads, not for a guessed time. */
async function until(ready: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2000 && !ready(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(ready(), `timed out waiting until ${what}`);
}
/** Time for a read that should not happen to show up before asserting that it did not. */
const QUIET_MS = 50;

const settles = (p: Promise<unknown>, ms: number) => Promise.race([p.then(() => true, () => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);

test('copies the exact bytes of a blob that crosses a volume boundary, in chunks no larger than the read size', async (t) => {
  const dir = await workDir(t);
  const first = randomBytes(BLOB_READ_CHUNK + 12_345);
  const second = randomBytes(2 * BLOB_READ_CHUNK + 7);
  await writeFile(path.join(dir, 'v1'), first);
  await writeFile(path.join(dir, 'v2'), second);
  const sizes: number[] = [];
  const { sink, bytes } = collectingSink();
  const counting: ByteSink = { write: (chunk, done) => (sizes.push(chunk.length), sink.write(chunk, done)) };
  const body = fileSegmentsBody([
    { path: path.join(dir, 'v1'), offset: 100, length: first.length - 100 },
    { path: path.join(dir, 'v2'), offset: 0, length: second.length - 3 },
  ]);
  await body.copyTo(counting, new AbortController().signal);
  assert.deepEqual(bytes(), Buffer.concat([first.subarray(100), second.subarray(0, second.length - 3)]));
  assert.ok(sizes.every((n) => n > 0 && n <= BLOB_READ_CHUNK), `chunk sizes ${sizes.join(',')}`);
});

test('a copy alone keeps at most three chunks in flight: the next read waits until the sink took one', async (t) => {
  const dir = await workDir(t);
  const file = path.join(dir, 'blob');
  await writeFile(file, randomBytes(5 * BLOB_READ_CHUNK));
  const { sink, held } = heldSink();
  const copy = fileSegmentsBody([{ path: file, offset: 0, length: 5 * BLOB_READ_CHUNK }]).copyTo(sink, new AbortController().signal);
  await until(() => held.length >= 3, 'three chunks are out');
  assert.equal(await settles(copy, QUIET_MS), false, 'the copy waits on the held writes');
  assert.equal(held.length, 3);
  held[0]!.done();
  await until(() => held.length >= 4, 'a fourth chunk is out');
  await new Promise((r) => setTimeout(r, QUIET_MS));
  assert.equal(held.length, 4, 'one completed write lets exactly one more chunk out');
  for (let i = 1; i < 5; i++) {
    await until(() => held.length > i, `chunk ${i + 1} is out`);
    held[i]!.done();
  }
  assert.equal(await settles(copy, 1000), true);
  assert.equal(held.length, 5);
});

test('with more than four copies running, each keeps at most two chunks in flight', async (t) => {
  const dir = await workDir(t);
  const file = path.join(dir, 'blob');
  await writeFile(file, randomBytes(5 * BLOB_READ_CHUNK));
  const downloads = Array.from({ length: 5 }, () => ({ ...heldSink(), gone: new AbortController() }));
  const copies = downloads.map((d) => fileSegmentsBody([{ path: file, offset: 0, length: 5 * BLOB_READ_CHUNK }]).copyTo(d.sink, d.gone.signal));
  await until(() => downloads.every((d) => d.held.length >= 2), 'every copy has two chunks out');
  await new Promise((r) => setTimeout(r, QUIET_MS));
  assert.deepEqual(downloads.map((d) => d.held.length), [2, 2, 2, 2, 2]);
  for (const d of downloads) d.gone.abort();
  await Promise.all(copies);
});

test('a copy aborted while its writes are held stops reading and gives every pooled buffer back', async (t) => {
  const dir = await workDir(t);
  const file = path.join(dir, 'blob');
  await writeFile(file, randomBytes(4 * BLOB_READ_CHUNK));
  const lentBefore = pooledBuffersLent();
  const { sink, held } = heldSink();
  const gone = new AbortController();
  const copy = fileSegmentsBody([{ path: file, offset: 0, length: 4 * BLOB_READ_CHUNK }]).copyTo(sink, gone.signal);
  await until(() => held.length >= 3, 'three chunks are out');
  assert.equal(pooledBuffersLent(), lentBefore + 3);
  gone.abort();
  await copy;
  assert.equal(held.length, 3, 'nothing was read after the abort');
  assert.equal(pooledBuffersLent(), lentBefore, 'the abandoned buffers no longer count as lent');
  held[0]!.done(new Error('socket closed'));
  held[1]!.done();
  held[2]!.done();
  assert.equal(pooledBuffersLent(), lentBefore, 'late completions of abandoned writes change nothing');
});

test('past the pool bound, downloads read smaller chunks of their own instead of waiting for a buffer', async (t) => {
  const dir = await workDir(t);
  const file = path.join(dir, 'blob');
  await writeFile(file, randomBytes(4 * BLOB_READ_CHUNK));
  const lentBefore = pooledBuffersLent();
  const downloads = Array.from({ length: 40 }, () => ({ ...heldSink(), gone: new AbortController() }));
  const copies = downloads.map((d) => fileSegmentsBody([{ path: file, offset: 0, length: 4 * BLOB_READ_CHUNK }]).copyTo(d.sink, d.gone.signal));
  await until(() => downloads.every((d) => d.held.length >= 2), 'every download has two chunks out');
  const sizes = downloads.flatMap((d) => d.held.map((h) => h.chunk.length));
  assert.equal(sizes.length, 80, 'every download has its two chunks out, none waits for the pool');
  assert.equal(pooledBuffersLent() - lentBefore, 64, 'the pool lends no more than its bound');
  assert.equal(sizes.filter((n) => n === BLOB_READ_CHUNK).length, 64);
  assert.equal(sizes.filter((n) => n === 128 * 1024).length, 16, 'the rest read 128 KiB chunks');
  for (const d of downloads) d.gone.abort();
  await Promise.all(copies);
  assert.equal(pooledBuffersLent(), lentBefore);
});

test('a failed write stops the copy with its error', async (t) => {
  const dir = await workDir(t);
  const file = path.join(dir, 'blob');
  await writeFile(file, randomBytes(4 * BLOB_READ_CHUNK));
  const lentBefore = pooledBuffersLent();
  const sink: ByteSink = { write: (_chunk, done) => (setImmediate(() => done(new Error('EPIPE'))), false) };
  await assert.rejects(fileSegmentsBody([{ path: file, offset: 0, length: 4 * BLOB_READ_CHUNK }]).copyTo(sink, new AbortController().signal), /EPIPE/);
  assert.equal(pooledBuffersLent(), lentBefore);
});

test('a missing file rejects before any byte is written; a truncated one names the file and the offset', async (t) => {
  const dir = await workDir(t);
  const { sink, bytes } = collectingSink();
  await assert.rejects(fileSegmentsBody([{ path: path.join(dir, 'gone'), offset: 0, length: 10 }]).copyTo(sink, new AbortController().signal), { code: 'ENOENT' });
  assert.equal(bytes().length, 0);
  const short = path.join(dir, 'short');
  await writeFile(short, randomBytes(1000));
  await assert.rejects(fileSegmentsBody([{ path: short, offset: 0, length: 2000 }]).copyTo(sink, new AbortController().signal), (err: Error) => {
    assert.match(err.message, /short ends at byte 1000, before the blob does/);
    return true;
  });
});

test('a buffer pool lends up to its bound, reuses returned buffers and keeps only maxIdle of them', () => {
  const pool = new BufferPool(16, 3, 1);
  const a = pool.tryAcquire()!;
  const b = pool.tryAcquire()!;
  const c = pool.tryAcquire()!;
  assert.equal(pool.tryAcquire(), undefined, 'no fourth buffer past maxLent');
  pool.release(a);
  pool.release(b);
  assert.equal(pool.idleCount, 1, 'only maxIdle returned buffers are kept');
  assert.equal(pool.tryAcquire(), a, 'a returned buffer is lent again');
  pool.forget();
  assert.equal(pool.lentCount, 1);
  assert.equal(c.length, 16);
});
