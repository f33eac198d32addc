import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { CriError } from '../../../src/cri/image-service.js';
import { defaultBackoffMs, pullImages, pullTimeoutMs } from '../../../src/node/pull.js';

const requests = (n: number) => Array.from({ length: n }, (_, i) => ({ name: `quay.io/x/img${i}@sha256:${String(i).padStart(64, '0')}`, bytes: 1000 }));

function criFailure(details: string, image: string): CriError {
  return new CriError({ grpcCode: grpc.status.UNKNOWN, operation: 'pull', image, details });
}

test('backoff is 1 s doubling to a 10 s cap, like the MCO', () => {
  assert.deepEqual([1, 2, 3, 4, 5, 6].map(defaultBackoffMs), [1000, 2000, 4000, 8000, 10_000, 10_000]);
});

test('the per-image timeout grows with the image size, one base timeout per GiB started', () => {
  assert.equal(pullTimeoutMs(600_000, 0), 600_000);
  assert.equal(pullTimeoutMs(600_000, 2 ** 30), 600_000);
  assert.equal(pullTimeoutMs(600_000, 2 ** 30 + 1), 1_200_000);
  assert.equal(pullTimeoutMs(600_000, 5.5 * 2 ** 30), 3_600_000);
});

test('never more pulls in flight than the concurrency, and every image pulled once', async () => {
  let inFlight = 0;
  let maxInFlight = 0;
  const seen: string[] = [];
  const cri = {
    async pullImage(ref: string) {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise((r) => setTimeout(r, 5));
      inFlight--;
      seen.push(ref);
      return ref;
    },
  };
  const outcome = await pullImages(cri, requests(12), { concurrency: 3, retries: 1, baseTimeoutMs: 1000 });
  assert.equal(maxInFlight, 3);
  assert.equal(outcome.pulled.length, 12);
  assert.deepEqual([...seen].sort(), requests(12).map((r) => r.name).sort());
  assert.equal(outcome.failed.size, 0);
});

test('a failing pull is retried with backoff and succeeds; one that keeps failing is reported with its error', async () => {
  const attempts = new Map<string, number>();
  const [flaky, broken] = requests(2).map((r) => r.name) as [string, string];
  const cri = {
    async pullImage(ref: string) {
      const n = (attempts.get(ref) ?? 0) + 1;
      attempts.set(ref, n);
      if (ref === broken || n < 3) throw criFailure('connection refused', ref);
      return ref;
    },
  };
  const waits: number[] = [];
  const outcome = await pullImages(cri, requests(2), {
    concurrency: 2,
    retries: 4,
    baseTimeoutMs: 1000,
    backoffMs: (attempt) => {
      waits.push(attempt);
      return 1;
    },
  });
  assert.deepEqual(outcome.pulled, [flaky]);
  assert.equal(attempts.get(flaky), 3);
  assert.equal(attempts.get(broken), 4, 'every allowed attempt used');
  assert.match(outcome.failed.get(broken)!.message, /connection refused/);
  assert.equal(outcome.noSpace, undefined);
});

test('ENOSPC stops every remaining and running pull at once', async () => {
  const started: string[] = [];
  const cri = {
    async pullImage(ref: string, options: { signal?: AbortSignal }) {
      started.push(ref);
      if (started.length === 2) throw criFailure('write /var/lib/containers: no space left on device', ref);
      // A long pull that only ends when cancelled.
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(resolve, 10_000);
        options.signal?.addEventListener('abort', () => {
          clearTimeout(timer);
          reject(new CriError({ grpcCode: grpc.status.CANCELLED, operation: 'pull', image: ref, details: 'cancelled' }));
        });
      });
      return ref;
    },
  };
  const begin = Date.now();
  const outcome = await pullImages(cri, requests(20), { concurrency: 2, retries: 5, baseTimeoutMs: 60_000 });
  assert.ok(Date.now() - begin < 2000, 'the running pull was cancelled, not waited for');
  assert.ok(outcome.noSpace?.isNoSpace);
  assert.equal(started.length, 2, 'no pull started after ENOSPC, and the full one was not retried');
  assert.deepEqual(outcome.pulled, []);
});

test('an outside abort stops the pulls without counting them as failed', async () => {
  const stop = new AbortController();
  const cri = {
    async pullImage(ref: string, options: { signal?: AbortSignal }) {
      stop.abort();
      throw new CriError({ grpcCode: grpc.status.CANCELLED, operation: 'pull', image: ref, details: options.signal?.aborted ? 'cancelled' : '?' });
    },
  };
  const outcome = await pullImages(cri, requests(5), { concurrency: 1, retries: 3, baseTimeoutMs: 1000, signal: stop.signal });
  assert.equal(outcome.aborted, true);
  assert.equal(outcome.failed.size, 0);
  assert.deepEqual(outcome.pulled, []);
});
