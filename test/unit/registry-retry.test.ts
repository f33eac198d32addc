import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DigestMismatchError, sha256Of } from '../../src/oci/digest.js';
import { backoffDelay, classifyFailure, decideRetry, parseRetryAfter, StatusFailure, type Attempt, type Failure, type RetryDecision, type RetryLimits } from '../../src/registry/retry.js';
import { UserError } from '../../src/util/errors.js';

/** Jitter pinned just below 1, so a backoff is its ceiling minus one: 99, 199, 399, ... */
const limits: RetryLimits = { attempts: 4, baseDelayMs: 100, maxDelayMs: 1000, maxRetryAfterMs: 5000, maxBlobResumes: 2, random: () => 0.999 };

const request = (tries: number, stopped = false): Attempt => ({ phase: 'request', tries, stopped });
const body = (resumesWithoutProgress: number, stopped = false): Attempt => ({ phase: 'blob-body', resumesWithoutProgress, stopped });
const status = (code: number, retryAfterMs?: number): Failure => ({ kind: 'status', status: code, retryAfterMs });
const network = (code: string): Failure => ({ kind: 'network', code });

const retry = (delayMs: number): RetryDecision => ({ action: 'retry', delayMs });
const giveUp = (reason: 'not-retryable' | 'exhausted' | 'aborted'): RetryDecision => ({ action: 'give-up', reason });

const decisions: Array<[string, Failure, Attempt, RetryDecision]> = [
  // requests: overload statuses and broken connections are tried again, with backoff or Retry-After
  ...[429, 500, 502, 503, 504].map((s): [string, Failure, Attempt, RetryDecision] => [`HTTP ${s}, first try`, status(s), request(1), retry(99)]),
  ...[400, 401, 403, 404, 416, 501].map((s): [string, Failure, Attempt, RetryDecision] => [`HTTP ${s}`, status(s), request(1), giveUp('not-retryable')]),
  ['HTTP 503, third try: backoff doubles', status(503), request(3), retry(399)],
  ['HTTP 503, last try', status(503), request(4), giveUp('exhausted')],
  ['HTTP 429 with Retry-After 1.5 s', status(429, 1500), request(1), retry(1500)],
  ['HTTP 429 with Retry-After 0', status(429, 0), request(2), retry(0)],
  ['HTTP 429 with Retry-After of an hour: capped', status(429, 3_600_000), request(1), retry(5000)],
  ['HTTP 503 after the caller stopped', status(503), request(1, true), giveUp('aborted')],
  ['HTTP 404 after the caller stopped: still what it means', status(404), request(1, true), giveUp('not-retryable')],
  ...['ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ECONNABORTED', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH', 'UND_ERR_CLOSED'].map(
    (code): [string, Failure, Attempt, RetryDecision] => [`${code}, first try`, network(code), request(1), retry(99)],
  ),
  ['an unparsable response, first try: a fresh connection', network('HTTP_PARSER_ERROR'), request(1), retry(99)],
  ['ECONNRESET, second try', network('ECONNRESET'), request(2), retry(199)],
  ['ECONNRESET, last try', network('ECONNRESET'), request(4), giveUp('exhausted')],
  ['ECONNRESET after the caller stopped', network('ECONNRESET'), request(1, true), giveUp('aborted')],
  ['ECONNREFUSED (nobody listens: a new try will not change that)', network('ECONNREFUSED'), request(1), giveUp('not-retryable')],
  ['ENOTFOUND', network('ENOTFOUND'), request(1), giveUp('not-retryable')],
  ['a TLS certificate error', network('DEPTH_ZERO_SELF_SIGNED_CERT'), request(1), giveUp('not-retryable')],
  ['a digest mismatch (a manifest)', { kind: 'digest-mismatch' }, request(1), giveUp('not-retryable')],
  ['the abort itself', { kind: 'aborted' }, request(1, true), giveUp('aborted')],
  ['our own refusal or a bug', { kind: 'other' }, request(1), giveUp('not-retryable')],
  // blob bodies: resumed with a Range request, bounded by breaks in a row that add no byte
  ['a blob body reset, after progress', network('ECONNRESET'), body(0), { action: 'resume', delayMs: 99 }],
  ['a blob body reset, second break without progress', network('ECONNRESET'), body(2), { action: 'resume', delayMs: 399 }],
  ['a blob body reset, one break too many without progress', network('ECONNRESET'), body(3), giveUp('exhausted')],
  ['a blob body reset after the reader went away', network('ECONNRESET'), body(0, true), giveUp('aborted')],
  ['a blob body that stopped on our own error', { kind: 'other' }, body(1), giveUp('not-retryable')],
  ['a blob body timing out', network('UND_ERR_BODY_TIMEOUT'), body(1), { action: 'resume', delayMs: 199 }],
  ['a blob body ending short: asked for again at once', { kind: 'truncated' }, body(0), { action: 'resume' }],
  ['a blob body ending short, at the bound', { kind: 'truncated' }, body(2), { action: 'resume' }],
  ['a blob body ending short once too often: the next endpoint', { kind: 'truncated' }, body(3), { action: 'next-endpoint' }],
  ['a blob body ending short while stopping: the next request sees the abort', { kind: 'truncated' }, body(0, true), { action: 'resume' }],
];

for (const [name, failure, attempt, expected] of decisions) {
  test(`retry policy: ${name} → ${expected.action}${'reason' in expected ? ` (${expected.reason})` : ''}`, () => {
    assert.deepEqual(decideRetry(failure, attempt, limits), expected);
  });
}

const reset = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
const classifications: Array<[string, unknown, Failure]> = [
  ['a non-2xx answer', new StatusFailure(503, '{}', 2000), { kind: 'status', status: 503, retryAfterMs: 2000 }],
  ['a reset', reset, { kind: 'network', code: 'ECONNRESET' }],
  ['an error whose cause is a reset (undici wraps them)', new Error('fetch failed', { cause: reset }), { kind: 'network', code: 'ECONNRESET' }],
  ['an undici body timeout', Object.assign(new Error('Body Timeout Error'), { code: 'UND_ERR_BODY_TIMEOUT' }), { kind: 'network', code: 'UND_ERR_BODY_TIMEOUT' }],
  ['a digest mismatch', new DigestMismatchError(sha256Of(Buffer.from('a')), 'sha256:00', 'blob x'), { kind: 'digest-mismatch' }],
  ['a UserError (its code is not an errno)', new UserError('REGISTRY_ERROR', 'redirected without a Location header'), { kind: 'other' }],
  ['an AbortSignal reason', new DOMException('This operation was aborted', 'AbortError'), { kind: 'aborted' }],
  ['a request deadline (AbortSignal.timeout\'s reason)', new DOMException('The operation was aborted due to timeout', 'TimeoutError'), { kind: 'network', code: 'ETIMEDOUT' }],
  ['undici aborting a request', Object.assign(new Error('Request aborted'), { code: 'UND_ERR_ABORTED' }), { kind: 'aborted' }],
  ['an error without a code', new Error('the blob stream was closed'), { kind: 'other' }],
  // undici's HTTPParserError for a response garbled by a stray body after a HEAD carries no code
  ['an unparsable response (undici HTTPParserError, no code)', Object.assign(new Error('Response does not match the HTTP/1.1 protocol (Expected HTTP/, RTSP/ or ICE/)'), { name: 'HTTPParserError', code: undefined }), { kind: 'network', code: 'HTTP_PARSER_ERROR' }],
  ['an unparsable response with an llhttp code', Object.assign(new Error('Invalid header value char'), { name: 'HTTPParserError', code: 'HPE_INVALID_HEADER_TOKEN' }), { kind: 'network', code: 'HTTP_PARSER_ERROR' }],
];

for (const [name, error, expected] of classifications) {
  test(`failure classification: ${name} is ${expected.kind}`, () => assert.deepEqual(classifyFailure(error), expected));
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
  assert.deepEqual([0, 1, 2, 3, 4].map((n) => backoffDelay(n, limits)), [99, 199, 399, 799, 999]);
  assert.equal(backoffDelay(3, { ...limits, random: () => 0 }), 0);
});
