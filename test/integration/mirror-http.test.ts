// The mirror's HTTP behaviour over the layout store serving the generated sample release: every route,
// header, error code, Range, HEAD, pagination, negotiation, referrers, and refusal of malformed names.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { fileSegmentsBody } from '../../src/mirror/blob-body.js';
import { LayoutStore } from '../../src/mirror/layout-store.js';
import { startMirror, type RunningMirror } from '../../src/mirror/server.js';
import type { MirrorStore } from '../../src/mirror/store.js';
import { generateSampleRelease, type SampleRelease } from '../../src/sample/index.js';
import { LayoutWriter } from '../../src/sample/layout-writer.js';
import { sha256Of, type Digest } from '../../src/oci/digest.js';
import { MediaType } from '../../src/oci/media-types.js';
import { parseManifest } from '../../src/oci/manifest.js';

let work: string;
let sample: SampleRelease;
let store: LayoutStore;
let mirror: RunningMirror;
const accessLog = new PassThrough();
let logText = '';
accessLog.on('data', (d: Buffer) => (logText += d.toString()));

const RELEASE = 'openshift-release-dev/ocp-release';
const COMPONENTS = 'openshift-release-dev/ocp-v4.0-art-dev';
const OCI_ONLY = MediaType.ociManifest;
const DOCKER_ONLY = MediaType.dockerManifest;

before(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-mirror-http-'));
  sample = await generateSampleRelease(path.join(work, 'sample'), { multiPayload: true, components: 6 });
  store = await LayoutStore.open(sample.dir);
  mirror = await startMirror({ store, listen: '127.0.0.1:0', accessLog });
});

after(async () => {
  await mirror?.close();
  await rm(work, { recursive: true, force: true });
});

interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** A request with the path sent exactly as written (fetch would normalise "%2e%2e" and ".."). */
function raw(method: string, target: string, headers: Record<string, string> = {}, base: RunningMirror = mirror): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: base.port, method, path: target, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

function errorCode(res: RawResponse): string {
  const doc = JSON.parse(res.body.toString()) as { errors: Array<{ code: string; message: string; detail: unknown }> };
  assert.equal(doc.errors.length, 1);
  assert.ok('detail' in doc.errors[0]!);
  return doc.errors[0]!.code;
}

function component(kind: 'oci' | 'docker', multi: boolean) {
  const c = sample.components.find((x) => (x.mediaType === MediaType.ociIndex || x.mediaType === MediaType.ociManifest) === (kind === 'oci') && (x.platforms.length > 1) === multi);
  assert.ok(c, `the sample has a ${kind} ${multi ? 'multi-arch' : 'single-arch'} component`);
  return c;
}

test('GET /v2/ answers 200 {} with the API version header', async () => {
  const res = await raw('GET', '/v2/');
  assert.equal(res.status, 200);
  assert.deepEqual(JSON.parse(res.body.toString()), {});
  assert.equal(res.headers['docker-distribution-api-version'], 'registry/2.0');
});

test('the Express layer adds no header of its own and routes exactly: no X-Powered-By or body ETag; /V2/, /healthz/ and absolute targets are 404', async () => {
  const base = await raw('GET', '/v2/');
  assert.equal(base.headers['x-powered-by'], undefined);
  assert.equal(base.headers.etag, undefined);
  for (const target of ['/V2/', '/healthz/', `http://127.0.0.1:${mirror.port}/v2/`]) {
    const res = await raw('GET', target);
    assert.equal(res.status, 404, target);
    assert.equal(errorCode(res), 'NOT_FOUND', target);
  }
  assert.equal((await raw('GET', '/healthz?probe=1')).status, 200);
});

test('a manifest by tag is served with its stored type, length, digest and ETag; HEAD has the same headers and no body', async () => {
  const get = await raw('GET', `/v2/${RELEASE}/manifests/4.16.0-sample-x86_64`);
  assert.equal(get.status, 200);
  assert.equal(get.headers['content-type'], MediaType.dockerManifest);
  assert.equal(get.headers['docker-content-digest'], sample.releaseDigest);
  assert.equal(get.headers.etag, `"${sample.releaseDigest}"`);
  assert.equal(Number(get.headers['content-length']), get.body.length);
  assert.equal(sha256Of(get.body), sample.releaseDigest);
  const head = await raw('HEAD', `/v2/${RELEASE}/manifests/4.16.0-sample-x86_64`);
  assert.equal(head.status, 200);
  assert.equal(head.body.length, 0);
  for (const h of ['content-type', 'content-length', 'docker-content-digest', 'etag', 'docker-distribution-api-version']) assert.equal(head.headers[h], get.headers[h], h);
});

test('a manifest is also served under the host-qualified name and with containerd\'s ns', async () => {
  const c = component('oci', false);
  for (const target of [`/v2/quay.io/${COMPONENTS}/manifests/${c.digest}`, `/v2/${COMPONENTS}/manifests/${c.digest}?ns=quay.io`]) {
    const res = await raw('GET', target);
    assert.equal(res.status, 200, target);
    assert.equal(res.headers['docker-content-digest'], c.digest);
  }
  const wrongHost = await raw('GET', `/v2/${COMPONENTS}/manifests/${c.digest}?ns=registry.example.com`);
  assert.equal(wrongHost.status, 404);
  assert.equal(errorCode(wrongHost), 'NAME_UNKNOWN');
});

test('an OCI manifest the Accept header does not allow is MANIFEST_UNKNOWN; absent Accept allows all', async () => {
  const c = component('oci', false);
  const refused = await raw('GET', `/v2/${COMPONENTS}/manifests/${c.digest}`, { accept: DOCKER_ONLY });
  assert.equal(refused.status, 404);
  assert.equal(errorCode(refused), 'MANIFEST_UNKNOWN');
  const allowed = await raw('GET', `/v2/${COMPONENTS}/manifests/${c.digest}`, { accept: OCI_ONLY });
  assert.equal(allowed.status, 200);
  assert.equal((await raw('GET', `/v2/${COMPONENTS}/manifests/${c.digest}`)).status, 200);
});

test('an OCI index the Accept header does not allow is MANIFEST_UNKNOWN', async () => {
  const res = await raw('GET', '/v2/sample/debug/manifests/2.1', { accept: `${MediaType.dockerManifestList}, ${DOCKER_ONLY}, ${OCI_ONLY}` });
  assert.equal(res.status, 404);
  assert.equal(errorCode(res), 'MANIFEST_UNKNOWN');
});

test('a Docker manifest list asked by tag without list types in Accept gives its linux/amd64 child', async () => {
  const target = `/v2/${RELEASE}/manifests/4.16.0-sample-multi`;
  const list = await raw('GET', target, { accept: `${MediaType.dockerManifestList}, ${DOCKER_ONLY}` });
  assert.equal(list.headers['content-type'], MediaType.dockerManifestList);
  const index = parseManifest(list.body, MediaType.dockerManifestList, 'list');
  assert.equal(index.kind, 'index');
  const amd64 = index.kind === 'index' ? index.manifests.find((m) => m.platform?.architecture === 'amd64') : undefined;
  assert.ok(amd64);
  const child = await raw('GET', target, { accept: DOCKER_ONLY });
  assert.equal(child.status, 200);
  assert.equal(child.headers['content-type'], MediaType.dockerManifest);
  assert.equal(child.headers['docker-content-digest'], amd64.digest);
  assert.equal(sha256Of(child.body), amd64.digest);
});

async function someLayer(): Promise<{ digest: Digest; size: number }> {
  const res = await raw('GET', `/v2/${RELEASE}/manifests/4.16.0-sample-x86_64`);
  const m = parseManifest(res.body, MediaType.dockerManifest, 'release');
  assert.equal(m.kind, 'image');
  const layer = m.kind === 'image' ? m.layers.reduce((a, b) => (b.size > a.size ? b : a)) : undefined;
  return { digest: layer!.digest, size: layer!.size };
}

test('a blob is served whole with length and digest headers; HEAD has no body', async () => {
  const layer = await someLayer();
  const get = await raw('GET', `/v2/${RELEASE}/blobs/${layer.digest}`);
  assert.equal(get.status, 200);
  assert.equal(get.body.length, layer.size);
  assert.equal(sha256Of(get.body), layer.digest);
  assert.equal(get.headers['docker-content-digest'], layer.digest);
  assert.equal(get.headers.etag, `"${layer.digest}"`);
  assert.equal(get.headers['accept-ranges'], 'bytes');
  const head = await raw('HEAD', `/v2/${RELEASE}/blobs/${layer.digest}`);
  assert.equal(head.status, 200);
  assert.equal(Number(head.headers['content-length']), layer.size);
  assert.equal(head.body.length, 0);
});

test('serves a blob range with 206 and the right bytes, clips the end, and answers 416 past the end', async () => {
  const layer = await someLayer();
  const whole = (await raw('GET', `/v2/${RELEASE}/blobs/${layer.digest}`)).body;
  const part = await raw('GET', `/v2/${RELEASE}/blobs/${layer.digest}`, { range: 'bytes=100-4195' });
  assert.equal(part.status, 206);
  assert.equal(part.headers['content-range'], `bytes 100-4195/${layer.size}`);
  assert.ok(part.body.equals(whole.subarray(100, 4196)));
  const clipped = await raw('GET', `/v2/${RELEASE}/blobs/${layer.digest}`, { range: `bytes=${layer.size - 10}-${layer.size + 1000}` });
  assert.equal(clipped.status, 206);
  assert.equal(clipped.headers['content-range'], `bytes ${layer.size - 10}-${layer.size - 1}/${layer.size}`);
  assert.ok(clipped.body.equals(whole.subarray(layer.size - 10)));
  const suffix = await raw('GET', `/v2/${RELEASE}/blobs/${layer.digest}`, { range: 'bytes=-7' });
  assert.ok(suffix.body.equals(whole.subarray(layer.size - 7)));
  const open = await raw('GET', `/v2/${RELEASE}/blobs/${layer.digest}`, { range: `bytes=${layer.size - 3}-` });
  assert.ok(open.body.equals(whole.subarray(layer.size - 3)));
  const beyond = await raw('GET', `/v2/${RELEASE}/blobs/${layer.digest}`, { range: `bytes=${layer.size}-` });
  assert.equal(beyond.status, 416);
  assert.equal(beyond.headers['content-range'], `bytes */${layer.size}`);
  const multi = await raw('GET', `/v2/${RELEASE}/blobs/${layer.digest}`, { range: 'bytes=0-1,5-9' });
  assert.equal(multi.status, 200);
  assert.equal(multi.body.length, layer.size);
});

test('unknown blobs, manifests, tags and names get their spec codes', async () => {
  const missing = `sha256:${'0'.repeat(64)}`;
  const cases: Array<[string, number, string]> = [
    [`/v2/${RELEASE}/blobs/${missing}`, 404, 'BLOB_UNKNOWN'],
    [`/v2/${RELEASE}/manifests/${missing}`, 404, 'MANIFEST_UNKNOWN'],
    [`/v2/${RELEASE}/manifests/no-such-tag`, 404, 'MANIFEST_UNKNOWN'],
    [`/v2/${RELEASE}/manifests/_odd.but-valid_TAG`, 404, 'MANIFEST_UNKNOWN'],
    ['/v2/no/such/repo/manifests/latest', 404, 'NAME_UNKNOWN'],
    ['/v2/no/such/repo/tags/list', 404, 'NAME_UNKNOWN'],
    [`/v2/no/such/repo/blobs/${missing}`, 404, 'NAME_UNKNOWN'],
    [`/v2/${RELEASE}/blobs/sha256:1234`, 400, 'DIGEST_INVALID'],
    [`/v2/${RELEASE}/blobs/md5:${'a'.repeat(32)}`, 400, 'DIGEST_INVALID'],
    // A reference that cannot be a tag names no manifest: 404, as the conformance suite requires (not 400 TAG_INVALID).
    [`/v2/${RELEASE}/manifests/-bad-tag`, 404, 'MANIFEST_UNKNOWN'],
    [`/v2/${RELEASE}/manifests/${'t'.repeat(129)}`, 404, 'MANIFEST_UNKNOWN'],
    [`/v2/${RELEASE}/tags/list?n=-1`, 400, 'PAGINATION_NUMBER_INVALID'],
    [`/v2/${RELEASE}/nothing-here`, 404, 'NOT_FOUND'],
  ];
  for (const [target, status, code] of cases) {
    const res = await raw('GET', target);
    assert.equal(res.status, status, target);
    assert.equal(errorCode(res), code, target);
    assert.equal(res.headers['docker-distribution-api-version'], 'registry/2.0');
  }
});

test('writes are refused with 405 UNSUPPORTED on every /v2 route', async () => {
  for (const [method, target] of [
    ['PUT', `/v2/${RELEASE}/manifests/x`],
    ['DELETE', `/v2/${RELEASE}/manifests/4.16.0-sample-x86_64`],
    ['POST', `/v2/${RELEASE}/blobs/uploads/`],
    ['PATCH', `/v2/${RELEASE}/blobs/uploads/abc`],
    ['DELETE', `/v2/${RELEASE}/blobs/sha256:${'0'.repeat(64)}`],
    ['OPTIONS', '/v2/'],
  ]) {
    const res = await raw(method!, target!);
    assert.equal(res.status, 405, `${method} ${target}`);
    assert.equal(errorCode(res), 'UNSUPPORTED');
    assert.equal(res.headers.allow, 'GET, HEAD');
  }
});

test('traversal and malformed names are refused before any store lookup', async () => {
  const calls: string[] = [];
  const spied = new Proxy(store as MirrorStore, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      return typeof value === 'function' ? (...args: unknown[]) => (calls.push(String(prop)), (value as (...a: unknown[]) => unknown).apply(target, args)) : value;
    },
  });
  const guarded = await startMirror({ store: spied, listen: '127.0.0.1:0' });
  try {
    const layer = await someLayer();
    const attempts: Array<[string, number]> = [
      [`/v2/../../etc/passwd/blobs/${layer.digest}`, 400],
      [`/v2/a/%2e%2e/%2e%2e/blobs/${layer.digest}`, 400],
      [`/v2/%2e%2e/manifests/latest`, 400],
      [`/v2/a/%2F..%2Fb/manifests/latest`, 400],
      [`/v2/a//b/manifests/latest`, 400],
      [`/v2/Openshift-Release-Dev/ocp-release/manifests/latest`, 400],
      [`/v2/${'a/'.repeat(130)}b/manifests/latest`, 400],
      [`/v2/${RELEASE}/blobs/sha256:..%2f..%2fetc%2fpasswd`, 400],
      [`/v2/${RELEASE}/blobs/sha256:${'../'.repeat(21)}a`, 404],
      [`/v2/${RELEASE}/blobs/${layer.digest.toUpperCase()}`, 400],
      // Not tags, so no manifest: 404 as the conformance suite requires for a reference that cannot be a tag.
      [`/v2/${RELEASE}/manifests/..`, 404],
      [`/v2/${RELEASE}/manifests/%2e%2e`, 404],
    ];
    for (const [target, status] of attempts) {
      const res = await raw('GET', target, {}, guarded);
      assert.equal(res.status, status, target);
    }
    assert.deepEqual(calls, [], 'no malformed request reached the store');
    assert.equal((await raw('GET', `/v2/${RELEASE}/blobs/${layer.digest}`, {}, guarded)).status, 200);
    assert.deepEqual(calls, ['statBlob', 'openBlob']);
  } finally {
    await guarded.close();
  }
});

test('tags are listed lexically and paginated with n, last and a Link to the next page', async () => {
  const all = await raw('GET', `/v2/${RELEASE}/tags/list`);
  assert.deepEqual(JSON.parse(all.body.toString()), { name: RELEASE, tags: ['4.16.0-sample-multi', '4.16.0-sample-x86_64'] });
  const first = await raw('GET', `/v2/${RELEASE}/tags/list?n=1`);
  assert.deepEqual(JSON.parse(first.body.toString()).tags, ['4.16.0-sample-multi']);
  assert.equal(first.headers.link, `</v2/${RELEASE}/tags/list?n=1&last=4.16.0-sample-multi>; rel="next"`);
  const second = await raw('GET', `/v2/${RELEASE}/tags/list?n=1&last=4.16.0-sample-multi`);
  assert.deepEqual(JSON.parse(second.body.toString()).tags, ['4.16.0-sample-x86_64']);
  assert.equal(second.headers.link, undefined);
  const none = await raw('GET', `/v2/${RELEASE}/tags/list?n=0`);
  assert.deepEqual(JSON.parse(none.body.toString()).tags, []);
});

test('the catalog lists every repository host-qualified, paginated', async () => {
  const all = JSON.parse((await raw('GET', '/v2/_catalog')).body.toString()) as { repositories: string[] };
  assert.deepEqual(all.repositories, [`quay.io/${RELEASE}`, `quay.io/${COMPONENTS}`, 'registry.example.com/sample/debug', 'registry.example.com/sample/tools']);
  const page = await raw('GET', '/v2/_catalog?n=3');
  assert.equal(JSON.parse(page.body.toString()).repositories.length, 3);
  assert.equal(page.headers.link, `</v2/_catalog?n=3&last=${encodeURIComponent('registry.example.com/sample/debug')}>; rel="next"`);
});

test('referrers of a manifest without any is an empty OCI index, not a 404', async () => {
  const res = await raw('GET', `/v2/${RELEASE}/referrers/${sample.releaseDigest}`);
  assert.equal(res.status, 200);
  assert.equal(res.headers['content-type'], MediaType.ociIndex);
  assert.deepEqual(JSON.parse(res.body.toString()), { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] });
});

test('referrers lists manifests whose subject is the digest, filtered by artifactType on request', async (t) => {
  const dir = path.join(work, 'referrers-layout');
  const layout = new LayoutWriter(dir);
  await layout.open();
  const config = await layout.writeJson(MediaType.ociEmpty, {});
  const image = await layout.writeJson(MediaType.ociManifest, { schemaVersion: 2, mediaType: MediaType.ociManifest, config, layers: [] });
  const subject = { mediaType: image.mediaType, digest: image.digest, size: image.size };
  const sbom = await layout.writeJson(MediaType.ociManifest, { schemaVersion: 2, mediaType: MediaType.ociManifest, artifactType: 'application/spdx+json', config, layers: [], subject, annotations: { kind: 'sbom' } });
  const sig = await layout.writeJson(MediaType.ociManifest, { schemaVersion: 2, mediaType: MediaType.ociManifest, config: { ...config, mediaType: 'application/vnd.example.signature' }, layers: [], subject });
  layout.addIndexEntry(image, 'quay.io/example/app:v1');
  layout.addIndexEntry(sbom, `quay.io/example/app@${sbom.digest}`);
  layout.addIndexEntry(sig, `quay.io/example/app@${sig.digest}`);
  await layout.finish();
  const refMirror = await startMirror({ store: await LayoutStore.open(dir), listen: '127.0.0.1:0' });
  t.after(() => refMirror.close());
  const all = await raw('GET', `/v2/example/app/referrers/${image.digest}`, {}, refMirror);
  const doc = JSON.parse(all.body.toString()) as { manifests: Array<{ digest: string; artifactType?: string; annotations?: Record<string, string>; size: number }> };
  assert.deepEqual(doc.manifests.map((m) => m.artifactType).sort(), ['application/spdx+json', 'application/vnd.example.signature']);
  assert.deepEqual(doc.manifests.find((m) => m.digest === sbom.digest)?.annotations, { kind: 'sbom' });
  assert.equal(all.headers['oci-filters-applied'], undefined);
  const filtered = await raw('GET', `/v2/example/app/referrers/${image.digest}?artifactType=${encodeURIComponent('application/spdx+json')}`, {}, refMirror);
  assert.equal(filtered.headers['oci-filters-applied'], 'artifactType');
  assert.deepEqual((JSON.parse(filtered.body.toString()) as typeof doc).manifests.map((m) => [m.digest, m.size]), [[sbom.digest, sbom.size]]);
});

test('/healthz answers ok and /metrics counts requests by route and status, and bytes served', async () => {
  assert.equal((await raw('GET', '/healthz')).body.toString(), 'ok\n');
  const layer = await someLayer();
  const scrape = async () => (await raw('GET', '/metrics')).body.toString();
  const blobBytes = (metrics: string) => Number(/pin_preload_mirror_bytes_served_total\{route="blob"\} (\d+)/.exec(metrics)?.[1] ?? 0);
  const before = blobBytes(await scrape());
  await raw('GET', `/v2/${RELEASE}/blobs/${layer.digest}`);
  // A request is counted when its response closes, which can come just after the client has its last byte.
  let metrics = await scrape();
  for (let i = 0; i < 200 && blobBytes(metrics) === before; i++) metrics = await new Promise((r) => setTimeout(r, 5)).then(scrape);
  assert.match(metrics, /pin_preload_mirror_requests_total\{route="blob",method="GET",status="200"\} \d+/);
  assert.match(metrics, /pin_preload_mirror_requests_total\{route="manifest",method="GET",status="404"\} \d+/);
  assert.equal(blobBytes(metrics) - before, layer.size, "the blob's bytes are counted once");
  assert.match(metrics, /pin_preload_mirror_request_duration_seconds_bucket\{le="0.005",route="manifest"\}/);
});

test('every request leaves one JSON access-log line with method, path, status, bytes, duration and remote', async () => {
  const layer = await someLayer();
  const target = `/v2/${RELEASE}/blobs/${layer.digest}`;
  const entriesFor = () => logText.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.path === target);
  const before = entriesFor().length;
  await raw('GET', target, { range: 'bytes=0-99' });
  // The line is written when the server's response closes, which can come just after the client has its
  // last byte (the server still closes the volume file), and is flushed once per event-loop turn.
  for (let i = 0; i < 200 && entriesFor().length === before; i++) await new Promise((r) => setTimeout(r, 5));
  const entries = entriesFor();
  assert.equal(entries.length, before + 1, 'one line for the request');
  const entry = entries.at(-1)!;
  assert.equal(entry.method, 'GET');
  assert.equal(entry.status, 206);
  assert.equal(entry.bytes, 100);
  assert.equal(entry.remote, '127.0.0.1');
  assert.equal(typeof entry.durationMs, 'number');
  assert.ok(!Number.isNaN(Date.parse(String(entry.time))));
});

/**
 * A store with one large blob (a sparse file, so it costs no disk) that records each copy of it, so the
 * test can see whether a copy was stopped when its client went away.
 */
async function bigBlobStore(size: number): Promise<{ store: MirrorStore; copies: Array<Promise<void>> }> {
  const file = path.join(work, `big-${size}.blob`);
  await truncate(file, size).catch(async () => {
    await writeFile(file, '');
    await truncate(file, size);
  });
  const copies: Array<Promise<void>> = [];
  const digest = `sha256:${'b'.repeat(64)}` as Digest;
  const known = { miss: 'BLOB_UNKNOWN', message: 'no' } as const;
  const stub: MirrorStore = {
    resolveManifest: () => ({ miss: 'MANIFEST_UNKNOWN', message: 'none' }),
    manifestBytes: async () => Buffer.alloc(0),
    statBlob: (_name, d) => (d === digest ? { digest, size } : known),
    openBlob: (_blob, range) => {
      const body = fileSegmentsBody([{ path: file, offset: range?.start ?? 0, length: range ? range.end - range.start + 1 : size }]);
      return {
        copyTo: (sink, signal) => {
          const copy = body.copyTo(sink, signal);
          copies.push(copy);
          return copy;
        },
      };
    },
    tags: () => ({ tags: [] }),
    repositories: () => [],
    referrers: () => ({ manifests: [] }),
  };
  return { store: stub, copies };
}

test('too many blob downloads at once get 429 TOOMANYREQUESTS with Retry-After; a disconnect stops the read and frees the slot', async (t) => {
  const { store: big, copies } = await bigBlobStore(256 * 1024 * 1024);
  const target = `/v2/any/name/blobs/sha256:${'b'.repeat(64)}`;
  const limited = await startMirror({ store: big, listen: '127.0.0.1:0', maxBlobStreams: 1 });
  t.after(() => limited.close());
  // Hold one download open by not reading it, so the stream waits on backpressure.
  const held = await new Promise<http.ClientRequest>((resolve) => {
    const req = http.request({ host: '127.0.0.1', port: limited.port, path: target }, (res) => {
      res.pause();
      resolve(req);
    });
    req.on('error', () => undefined);
    req.end();
  });
  const refused = await raw('GET', target, {}, limited);
  assert.equal(refused.status, 429);
  assert.equal(errorCode(refused), 'TOOMANYREQUESTS');
  assert.equal(refused.headers['retry-after'], '1');
  assert.equal(copies.length, 1);
  let stopped = false;
  // Stopped either way: resolved on the abort, or rejected by the write the reset connection failed.
  const stop = () => (stopped = true);
  void copies[0]!.then(stop, stop);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(stopped, false, 'the held download waits on its client');
  held.destroy();
  for (let i = 0; i < 200 && !stopped; i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(stopped, 'the blob read was stopped when the client went away');
  const again = await raw('GET', target, { range: 'bytes=0-1023' }, limited);
  assert.equal(again.status, 206, 'the slot is free again');
  assert.equal(again.body.length, 1024);
});

test('one client alone gets the exact bytes of a multi-MiB blob, whole and as a Range that starts and ends mid-chunk', async (t) => {
  const size = 9 * 1024 * 1024 + 12_345; // ten 1 MiB reads, the last one short
  const bytes = randomBytes(size);
  const file = path.join(work, 'random-9m.blob');
  await writeFile(file, bytes);
  const digest = sha256Of(bytes);
  const { store: big } = await bigBlobStore(1);
  const single: MirrorStore = {
    ...big,
    statBlob: (_name, d) => (d === digest ? { digest, size } : { miss: 'BLOB_UNKNOWN', message: 'no' }),
    openBlob: (_blob, range) => fileSegmentsBody([{ path: file, offset: range?.start ?? 0, length: range ? range.end - range.start + 1 : size }]),
  };
  const served = await startMirror({ store: single, listen: '127.0.0.1:0' });
  t.after(() => served.close());
  const target = `/v2/any/name/blobs/${digest}`;
  const whole = await raw('GET', target, {}, served);
  assert.equal(whole.status, 200);
  assert.equal(whole.headers['content-length'], String(size));
  assert.ok(whole.body.equals(bytes), 'the whole blob, byte for byte');
  const start = 1000;
  const end = 6 * 1024 * 1024 + 777; // starts inside the first read, ends inside the seventh
  const part = await raw('GET', target, { range: `bytes=${start}-${end}` }, served);
  assert.equal(part.status, 206);
  assert.equal(part.headers['content-range'], `bytes ${start}-${end}/${size}`);
  assert.ok(part.body.equals(bytes.subarray(start, end + 1)), 'the range, byte for byte');
});

test('a blob the store cannot open is a 500 UNKNOWN and frees its download slot', async (t) => {
  const { store: big } = await bigBlobStore(1024);
  const broken: MirrorStore = {
    ...big,
    openBlob: () => {
      throw new Error('blob vanished from the bundle index');
    },
  };
  const limited = await startMirror({ store: broken, listen: '127.0.0.1:0', maxBlobStreams: 1 });
  t.after(() => limited.close());
  const target = `/v2/any/name/blobs/sha256:${'b'.repeat(64)}`;
  for (let i = 0; i < 2; i++) {
    const res = await raw('GET', target, {}, limited);
    assert.equal(res.status, 500, `request ${i + 1} is not refused with 429: the slot was freed`);
    assert.equal(errorCode(res), 'UNKNOWN');
  }
});

test('serves HTTPS with the given certificate and key', async (t) => {
  const { execFile } = await import('node:child_process');
  const { promisify } = await import('node:util');
  const { readFile } = await import('node:fs/promises');
  const https = await import('node:https');
  const cert = path.join(work, 'tls.crt');
  const key = path.join(work, 'tls.key');
  await promisify(execFile)('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-keyout', key, '-out', cert]);
  const secure = await startMirror({ store, listen: '127.0.0.1:0', tls: { cert: await readFile(cert), key: await readFile(key) } });
  t.after(() => secure.close());
  assert.match(secure.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  const status = await new Promise<number>((resolve, reject) => {
    https.get({ host: '127.0.0.1', port: secure.port, path: `/v2/${RELEASE}/tags/list`, ca: [], rejectUnauthorized: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on('error', reject);
  });
  assert.equal(status, 200);
});
