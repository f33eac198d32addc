// bundle create's write batches alone: a blob stream cut into batches copied into one reused buffer, in
// order, cut short when the stream ends, stalls or fails, and the buffer left alone while it is written.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { StreamClosedEarlyError, writeBatches } from '../../src/bundle/write-batches.js';

test('cuts a stream into full buffers and a short last batch, the bytes in order, a chunk larger than the buffer too', async () => {
  const chunks = [randomBytes(700), randomBytes(100), randomBytes(2500), randomBytes(1), randomBytes(1200)];
  const batches: Array<{ bytes: Buffer; short: boolean }> = [];
  for await (const { bytes, short } of writeBatches(Readable.from(chunks, { objectMode: false }), Buffer.alloc(1024))) {
    batches.push({ bytes: Buffer.from(bytes), short }); // a copy: the buffer is reused for the next batch
  }
  assert.ok(Buffer.concat(batches.map((b) => b.bytes)).equals(Buffer.concat(chunks)));
  assert.deepEqual(batches.map((b) => b.bytes.length), [1024, 1024, 1024, 1024, 405]);
  assert.deepEqual(batches.map((b) => b.short), [false, false, false, false, true]);
});

test('what arrived before a stall is a short batch after the idle time, not held until the buffer fills', async () => {
  const stream = new PassThrough();
  const batches = writeBatches(stream, Buffer.alloc(1 << 20), 20);
  stream.write(Buffer.from('first bytes'));
  const started = Date.now();
  const first = await batches.next();
  assert.equal(first.done, false);
  assert.equal(first.value!.bytes.toString(), 'first bytes');
  assert.equal(first.value!.short, true);
  assert.ok(Date.now() - started >= 15, 'waited for the stream to stall');
  stream.end(Buffer.from('the rest'));
  const second = await batches.next();
  assert.equal(second.value!.bytes.toString(), 'the rest');
  assert.equal((await batches.next()).done, true);
});

test('bytes before a stream error are a batch of their own, then the error is thrown', async () => {
  const stream = new PassThrough();
  const seen: string[] = [];
  stream.write(Buffer.from('kept'));
  setTimeout(() => stream.destroy(new Error('connection reset')), 5);
  await assert.rejects(
    (async () => {
      for await (const { bytes } of writeBatches(stream, Buffer.alloc(1024), 1000)) seen.push(bytes.toString());
    })(),
    /connection reset/,
  );
  assert.deepEqual(seen, ['kept']);
});

test('while a batch is held the stream is paused, and bytes arriving meanwhile come whole in the next batch', { timeout: 5000 }, async () => {
  const stream = new PassThrough();
  const batches = writeBatches(stream, Buffer.alloc(64), 10);
  stream.write(Buffer.alloc(10, 'a'));
  const first = await batches.next(); // short: the stream stalled
  const view = first.value!.bytes;
  stream.write(Buffer.alloc(30, 'b')); // arrives while the consumer is still writing the first batch
  await sleep(30);
  assert.equal(stream.readableFlowing, false, 'the stream is paused while the consumer holds a batch');
  assert.equal(view.toString(), 'a'.repeat(10), 'the batch held by the consumer is unchanged');
  stream.end();
  const second = await batches.next();
  assert.equal(second.done, false, 'the bytes that arrived while the first batch was held are a batch, not dropped');
  assert.equal(second.value.bytes.toString(), 'b'.repeat(30), 'the next batch holds exactly the bytes that arrived meanwhile');
  assert.equal((await batches.next()).done, true);
});

test('the stream is paused as soon as the buffer fills: chunks beyond it stay in the stream, not in memory here', { timeout: 5000 }, async () => {
  const stream = new PassThrough();
  const chunks = Array.from({ length: 10 }, () => randomBytes(64));
  for (const chunk of chunks) stream.write(chunk); // all waiting before the first batch is taken
  stream.end();
  const batches = writeBatches(stream, Buffer.alloc(64), 1000);
  const first = await batches.next();
  assert.equal(first.value!.bytes.length, 64);
  assert.equal(stream.readableFlowing, false, 'the stream is paused while the consumer holds a full batch');
  assert.ok(stream.readableLength >= 8 * 64, `the chunks after the full buffer wait in the stream (${stream.readableLength} bytes left in it)`);
  const seen = [Buffer.from(first.value!.bytes)];
  for await (const { bytes } of { [Symbol.asyncIterator]: () => batches }) seen.push(Buffer.from(bytes));
  assert.ok(Buffer.concat(seen).equals(Buffer.concat(chunks)), 'every byte once, in order');
});

test('the tail of a chunk larger than the buffer is written after the idle time when the stream stalls', { timeout: 5000 }, async () => {
  const stream = new PassThrough();
  const chunk = randomBytes(1500);
  const batches = writeBatches(stream, Buffer.alloc(1024), 20);
  stream.write(chunk); // then silence
  const first = await batches.next();
  assert.equal(first.value!.bytes.length, 1024);
  const started = Date.now();
  const second = await Promise.race([batches.next(), sleep(1000).then(() => 'still held' as const)]);
  assert.notEqual(second, 'still held', 'the 476 bytes left over were not handed out within 1 s of silence');
  if (second === 'still held') return;
  const waited = Date.now() - started;
  assert.ok(waited < 500, `the tail came after the idle time, not after ${waited} ms`);
  assert.ok(second.value!.bytes.equals(chunk.subarray(1024)));
  assert.equal(second.value!.short, true);
  stream.end();
  assert.equal((await batches.next()).done, true);
});

test('a stream destroyed without an error (closed before its end) fails after the bytes that arrived, naming the early close', { timeout: 5000 }, async () => {
  const stream = new PassThrough();
  const seen: string[] = [];
  stream.write(Buffer.from('kept'));
  setTimeout(() => stream.destroy(), 5);
  await assert.rejects(
    (async () => {
      for await (const { bytes } of writeBatches(stream, Buffer.alloc(1024), 1000)) seen.push(bytes.toString());
    })(),
    (err: Error) => err instanceof StreamClosedEarlyError && /closed before its end/.test(err.message),
  );
  assert.deepEqual(seen, ['kept']);
});
