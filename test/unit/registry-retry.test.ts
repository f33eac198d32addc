import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backoffDelay, isRetryableStatus, parseRetryAfter, TransientError, withRetries, type RetryPolicy } from '../../src/registry/retry.js';

function policy(overrides: Partial<RetryPolicy> = {}): RetryPolicy & { slept: number[] } {
  const slept: number[] = [];
  return {
    attempts: 4,
    baseDelayMs: 100,
    maxDelayMs: 1000,
    maxRetryAfterMs: 5000,
    random: () => 0.999,
    sleep: async (ms) => {
      slept.push(ms);
    },
    ...overrides,
    slept,
  };
}

const statusCases: Array<[number, boolean]> = [
  [429, true], [500, true], [502, true], [503, true], [504, true],
  [400, false], [401, false], [403, false], [404, false], [416, false], [501, false],
];
for (const [status, retryable] of statusCases) {
  test(`HTTP ${status} is ${retryable ? '' : 'not '}retried`, () => assert.equal(isRetryableStatus(status), retryable));
}

test('Retry-After is read as seconds or as an HTTP date', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  assert.equal(parseRetryAfter('7', now), 7000);
  assert.equal(parseRetryAfter('Thu, 01 Jan 2026 00:00:30 GMT', now), 30_000);
  assert.equal(parseRetryAfter('Wed, 31 Dec 2025 23:00:00 GMT', now), 0);
  assert.equal(parseRetryAfter('soon', now), undefined);
  assert.equal(parseRetryAfter(undefined, now), undefined);
});

test('backoff grows exponentially under a cap, with full jitter below it', () => {
  const p = policy();
  assert.deepEqual([0, 1, 2, 3, 4].map((n) => backoffDelay(n, p)), [99, 199, 399, 799, 999]);
  assert.equal(backoffDelay(3, { ...p, random: () => 0 }), 0);
});

test('transient failures are retried until success', async () => {
  const p = policy();
  let calls = 0;
  const result = await withRetries(p, async () => {
    calls++;
    if (calls < 3) throw Object.assign(new Error('reset'), { code: 'ECONNRESET' });
    return 'done';
  });
  assert.equal(result, 'done');
  assert.equal(calls, 3);
  assert.equal(p.slept.length, 2);
});

test('tries are bounded: the last transient error is thrown after `attempts` tries', async () => {
  const p = policy({ attempts: 3 });
  let calls = 0;
  await assert.rejects(
    withRetries(p, async () => {
      calls++;
      throw new TransientError('HTTP 503', { status: 503 });
    }),
    (err: unknown) => err instanceof TransientError && err.details.status === 503,
  );
  assert.equal(calls, 3);
});

test('Retry-After decides the wait, capped', async () => {
  const p = policy({ maxRetryAfterMs: 2000 });
  let calls = 0;
  await withRetries(p, async () => {
    calls++;
    if (calls === 1) throw new TransientError('429', { status: 429, retryAfterMs: 1500 });
    if (calls === 2) throw new TransientError('429', { status: 429, retryAfterMs: 3_600_000 });
    return 'ok';
  });
  assert.deepEqual(p.slept, [1500, 2000]);
});

test('errors that are not transient are thrown at once', async () => {
  const p = policy();
  let calls = 0;
  await assert.rejects(
    withRetries(p, async () => {
      calls++;
      throw Object.assign(new Error('refused'), { code: 'ECONNREFUSED' });
    }),
    /refused/,
  );
  assert.equal(calls, 1);
});
