// The signature store client against a local HTTP server: signature-1…N until the first 404, overload
// answers retried as registry requests are, the count bounded, and every failure naming release and URL.

import { exitStatusOf } from '../../src/cli/exit-status.js';
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fetchReleaseSignatures, MAX_SIGNATURES_PER_RELEASE, parseSignatureStore, signatureUrl } from '../../src/release/signature-store.js';
import type { RetryPolicy } from '../../src/registry/retry.js';
import type { Digest } from '../../src/oci/digest.js';
import { UserError } from '../../src/util/errors.js';
import { freePort } from '../support/ports.js';

const DIGEST = `sha256:${'c'.repeat(64)}` as Digest;
const FAST: RetryPolicy = { attempts: 3, baseDelayMs: 1, maxDelayMs: 2, maxRetryAfterMs: 5 };

/** Per path: the statuses to answer in turn (the last one repeats); 200 answers with the path as body, 0 never answers. */
const script = new Map<string, number[]>();
const requests: string[] = [];
let server: http.Server;
let root: URL;

before(async () => {
  server = http.createServer((req, res) => {
    const url = req.url ?? '';
    requests.push(url);
    const statuses = script.get(url) ?? [404];
    const status = statuses.length > 1 ? statuses.shift()! : statuses[0]!;
    if (status === 0) return;
    if (status === 200) res.writeHead(200).end(url);
    else res.writeHead(status, status === 503 ? { 'Retry-After': '0' } : {}).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  root = parseSignatureStore(`http://127.0.0.1:${(server.address() as AddressInfo).port}/sigs/`);
});

after(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const path = (n: number) => `/sigs/sha256=${'c'.repeat(64)}/signature-${n}`;

test('reads signature-1, -2, … until the first 404, retrying a 503 on the way', async () => {
  script.clear();
  requests.length = 0;
  script.set(path(1), [200]);
  script.set(path(2), [503, 200]);
  const signatures = await fetchReleaseSignatures(root, DIGEST, { release: 'release 4.16.0', retry: FAST });
  assert.deepEqual(signatures.map((s) => [s.index, s.bytes.toString()]), [[1, path(1)], [2, path(2)]]);
  assert.deepEqual(requests, [path(1), path(2), path(2), path(3)]);
});

test('a store at the host root, with or without its slash, is asked for /sha256=<hex>/signature-N (one slash)', async () => {
  const port = (server.address() as AddressInfo).port;
  const atRoot = `/sha256=${'c'.repeat(64)}/signature-1`;
  for (const text of [`http://127.0.0.1:${port}`, `http://127.0.0.1:${port}/`, `http://127.0.0.1:${port}//`]) {
    script.clear();
    requests.length = 0;
    script.set(atRoot, [200]);
    const signatures = await fetchReleaseSignatures(parseSignatureStore(text), DIGEST, { release: 'release 4.16.0', retry: FAST });
    assert.equal(signatures.length, 1, text);
    assert.equal(requests[0], atRoot, text);
  }
  assert.equal(signatureUrl(parseSignatureStore('https://mirror.example.com/pub/sigs//'), DIGEST, 2), `https://mirror.example.com/pub/sigs/sha256=${'c'.repeat(64)}/signature-2`);
});

test('stops at the bound when a store never answers 404', async () => {
  script.clear();
  for (let n = 1; n <= MAX_SIGNATURES_PER_RELEASE + 4; n++) script.set(path(n), [200]);
  const signatures = await fetchReleaseSignatures(root, DIGEST, { release: 'release 4.16.0', retry: FAST });
  assert.equal(signatures.length, MAX_SIGNATURES_PER_RELEASE);
});

test('a 500 that persists and a 401 are errors naming the release and the URL', async () => {
  for (const [status, message] of [[500, /release 4\.16\.0: cannot fetch http:\/\/127\.0\.0\.1:\d+\/sigs\/sha256=c{64}\/signature-1: HTTP 500/], [401, /release 4\.16\.0: the signature store answered HTTP 401 for http:\/\/127\.0\.0\.1:\d+\/sigs\/sha256=c{64}\/signature-1/]] as const) {
    script.clear();
    requests.length = 0;
    script.set(path(1), [status]);
    await assert.rejects(fetchReleaseSignatures(root, DIGEST, { release: 'release 4.16.0', retry: FAST }), (err: unknown) => err instanceof UserError && err.code === 'SIGNATURE_STORE_FAILED' && message.test(err.message));
    assert.equal(requests.length, status === 500 ? FAST.attempts : 1, `HTTP ${status}: retried only when transient`);
  }
});

test('a store that never answers is retried as a timeout, then an error naming the URL and the wait', async () => {
  script.clear();
  requests.length = 0;
  script.set(path(1), [0]);
  await assert.rejects(
    fetchReleaseSignatures(root, DIGEST, { release: 'release 4.16.0', retry: FAST, timeoutMs: 50 }),
    (err: unknown) => err instanceof UserError && err.code === 'SIGNATURE_STORE_FAILED' && /release 4\.16\.0: cannot fetch http:\/\/127\.0\.0\.1:\d+\/sigs\/sha256=c{64}\/signature-1: no answer within 50 ms/.test(err.message) && err.subject?.kind === 'url' && /tried 3 times/.test(err.hint),
  );
  assert.equal(requests.length, FAST.attempts, 'each try timed out and was tried again, as the hint says');
});

test('a store that is not there is an error naming the URL', async () => {
  const port = await freePort();
  const closed = parseSignatureStore(`http://127.0.0.1:${port}/sigs`);
  await assert.rejects(fetchReleaseSignatures(closed, DIGEST, { release: 'release 4.16.0', retry: FAST }), (err: unknown) =>
    err instanceof UserError && new RegExp(`release 4\\.16\\.0: cannot fetch http://127\\.0\\.0\\.1:${port}/sigs/sha256=c{64}/signature-1: ECONNREFUSED`).test(err.message) && err.subject?.name === `http://127.0.0.1:${port}/sigs/sha256=${'c'.repeat(64)}/signature-1` && !/tried/.test(err.hint));
});

test('an abort while fetching is INTERRUPTED (exit 130), not a store failure', async () => {
  script.clear();
  script.set(path(1), [503]);
  const controller = new AbortController();
  const slow: RetryPolicy = { ...FAST, attempts: 5, maxRetryAfterMs: 10_000, sleep: async () => controller.abort() };
  await assert.rejects(fetchReleaseSignatures(root, DIGEST, { release: 'release 4.16.0', retry: slow, signal: controller.signal }), (err: unknown) => err instanceof UserError && err.code === 'INTERRUPTED' && exitStatusOf(err) === 130);
});

test('a store URL that is not http(s) is a usage error', () => {
  for (const text of ['ftp://example.com/sigs', 'not a url']) assert.throws(() => parseSignatureStore(text), (err: unknown) => err instanceof UserError && exitStatusOf(err) === 2);
});
