// The bundle store: an index per bundle in SQLite built from the manifest entry and tar headers, kept
// across restarts, rebuilt when files change; several bundles at once (newest tag wins, any bundle's
// blob is served), split volumes, ambiguous hosts, and no file opened outside the bundles' volumes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { pooledBuffersLent } from '../../src/mirror/blob-body.js';
import { BundleStore } from '../../src/mirror/bundle-store.js';
import { startMirror, type RunningMirror } from '../../src/mirror/server.js';
import { sha256Of } from '../../src/oci/digest.js';
import { MediaType } from '../../src/oci/media-types.js';
import { buildTinyBundle, testImage } from '../support/mirror-fixture.js';

const app = { domain: 'quay.io', path: 'example/app' };
const appElsewhere = { domain: 'registry.example.com', path: 'example/app' };
const tool = { domain: 'registry.example.com', path: 'team/tool' };

async function withWork(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-mirror-store-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function serve(t: { after: (fn: () => Promise<void>) => void }, store: BundleStore): Promise<RunningMirror> {
  const mirror = await startMirror({ store, listen: '127.0.0.1:0' });
  t.after(() => mirror.close());
  return mirror;
}

function get(mirror: RunningMirror, target: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: mirror.port, path: target, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('a registered bundle is served: manifest by tag and digest, every blob with its exact bytes, tags, catalog', async (t) => {
  const dir = await withWork(t);
  const one = testImage(app, 'one', [randomBytes(5000), randomBytes(70_000)], { tag: 'v1' });
  const seal = await buildTinyBundle(path.join(dir, 'a.tar'), [one]);
  const store = await BundleStore.open(path.join(dir, 'state.db'));
  t.after(() => store.close());
  const registered = await store.registerBundle(seal);
  assert.equal(registered.path, path.join(dir, 'a.tar'));
  assert.equal(registered.images, 1);
  const mirror = await serve(t, store);
  const byTag = await get(mirror, '/v2/example/app/manifests/v1');
  assert.equal(byTag.status, 200);
  assert.equal(byTag.headers['content-type'], MediaType.ociManifest);
  assert.equal(byTag.headers['docker-content-digest'], one.image.reference.digest);
  assert.equal(sha256Of(byTag.body), one.image.reference.digest);
  const byDigest = await get(mirror, `/v2/quay.io/example/app/manifests/${one.image.reference.digest}`);
  assert.ok(byDigest.body.equals(byTag.body));
  for (const blob of one.blobs) {
    const res = await get(mirror, `/v2/example/app/blobs/${blob.digest}`);
    assert.equal(res.status, 200);
    assert.equal(sha256Of(res.body), blob.digest);
  }
  assert.deepEqual(JSON.parse((await get(mirror, '/v2/example/app/tags/list')).body.toString()), { name: 'example/app', tags: ['v1'] });
  assert.deepEqual(JSON.parse((await get(mirror, '/v2/_catalog')).body.toString()), { repositories: ['quay.io/example/app'] });
});

test('the index survives a restart without re-reading the bundle, and is rebuilt when a volume changes', async (t) => {
  const dir = await withWork(t);
  const one = testImage(app, 'one', [randomBytes(3000)], { tag: 'v1' });
  const seal = await buildTinyBundle(path.join(dir, 'a.tar'), [one]);
  const db = path.join(dir, 'state.db');
  const first = await BundleStore.open(db);
  const registered = await first.registerBundle(seal);
  first.close();

  const second = await BundleStore.open(db);
  const [kept] = second.listBundles();
  assert.equal(kept?.id, registered.id, 'same index row: not re-indexed');
  assert.equal(kept?.registeredAt, registered.registeredAt);
  const again = await second.registerBundle(path.join(dir, 'a.tar'));
  assert.equal(again.id, registered.id, 'registering the same files again is a no-op');
  second.close();

  const later = new Date(Date.now() + 5000);
  await utimes(path.join(dir, 'a.tar'), later, later);
  const third = await BundleStore.open(db);
  t.after(() => third.close());
  const [rebuilt] = third.listBundles();
  assert.notEqual(rebuilt?.id, registered.id, 'a touched volume is re-indexed');
  assert.equal(rebuilt?.problem, undefined);
  const mirror = await serve(t, third);
  assert.equal((await get(mirror, '/v2/example/app/manifests/v1')).status, 200);
});

test('a bundle whose files vanished stays listed with the problem and is not served; unregister forgets it', async (t) => {
  const dir = await withWork(t);
  const seal = await buildTinyBundle(path.join(dir, 'a.tar'), [testImage(app, 'one', [randomBytes(3000)], { tag: 'v1' })]);
  const db = path.join(dir, 'state.db');
  const first = await BundleStore.open(db);
  await first.registerBundle(seal);
  first.close();
  await rm(path.join(dir, 'a.tar'));
  const store = await BundleStore.open(db);
  t.after(() => store.close());
  const [listed] = store.listBundles();
  assert.ok(listed?.problem, 'the problem is recorded');
  const mirror = await serve(t, store);
  assert.equal((await get(mirror, '/v2/example/app/manifests/v1')).status, 404);
  assert.equal(await store.unregisterBundle(seal), true);
  assert.deepEqual(store.listBundles(), []);
});

test('with several bundles, a tag resolves to the newest bundle and a blob from any bundle is served', async (t) => {
  const dir = await withWork(t);
  const old = testImage(app, 'old', [randomBytes(3000)], { tag: 'v1' });
  const newer = testImage(app, 'new', [randomBytes(3000)], { tag: 'v1' });
  const onlyInOld = testImage(app, 'only-old', [randomBytes(4000)], { tag: 'old-only' });
  const sealOld = await buildTinyBundle(path.join(dir, 'old.tar'), [old, onlyInOld], { created: '2026-01-01T00:00:00Z' });
  const sealNew = await buildTinyBundle(path.join(dir, 'new.tar'), [newer], { created: '2026-02-01T00:00:00Z' });
  const store = await BundleStore.open(path.join(dir, 'state.db'));
  t.after(() => store.close());
  // Registered newest first: "created" decides, not the order of registration.
  await store.registerBundle(sealNew);
  await store.registerBundle(sealOld);
  const mirror = await serve(t, store);
  assert.equal((await get(mirror, '/v2/example/app/manifests/v1')).headers['docker-content-digest'], newer.image.reference.digest);
  assert.equal((await get(mirror, '/v2/example/app/manifests/old-only')).headers['docker-content-digest'], onlyInOld.image.reference.digest);
  assert.equal((await get(mirror, `/v2/example/app/manifests/${old.image.reference.digest}`)).status, 200, 'the older image is still there by digest');
  const oldLayer = onlyInOld.blobs.at(-1)!;
  assert.equal(sha256Of((await get(mirror, `/v2/example/app/blobs/${oldLayer.digest}`)).body), oldLayer.digest);
  assert.deepEqual(JSON.parse((await get(mirror, '/v2/example/app/tags/list')).body.toString()).tags, ['old-only', 'v1']);
  await store.unregisterBundle(sealNew);
  assert.equal((await get(mirror, '/v2/example/app/manifests/v1')).headers['docker-content-digest'], old.image.reference.digest);
});

test('two hosts with the same path: a tag needs the host or ns, a digest finds the host that has it', async (t) => {
  const dir = await withWork(t);
  const quayImage = testImage(app, 'quay', [randomBytes(3000)], { tag: 'v1' });
  const otherImage = testImage(appElsewhere, 'other', [randomBytes(3000)], { tag: 'v1' });
  const seal = await buildTinyBundle(path.join(dir, 'a.tar'), [quayImage, otherImage]);
  const store = await BundleStore.open(path.join(dir, 'state.db'));
  t.after(() => store.close());
  await store.registerBundle(seal);
  const mirror = await serve(t, store);
  const ambiguous = await get(mirror, '/v2/example/app/manifests/v1');
  assert.equal(ambiguous.status, 404);
  const error = JSON.parse(ambiguous.body.toString()).errors[0];
  assert.equal(error.code, 'NAME_UNKNOWN');
  assert.match(error.message, /ambiguous.*\/v2\/<host>\/example\/app.*ns=/);
  assert.equal((await get(mirror, '/v2/example/app/manifests/v1?ns=registry.example.com')).headers['docker-content-digest'], otherImage.image.reference.digest);
  assert.equal((await get(mirror, '/v2/quay.io/example/app/manifests/v1')).headers['docker-content-digest'], quayImage.image.reference.digest);
  assert.equal((await get(mirror, `/v2/example/app/manifests/${otherImage.image.reference.digest}`)).status, 200);
  assert.equal((await get(mirror, `/v2/example/app/manifests/${quayImage.image.reference.digest}`)).status, 200);
});

test('a blob that crosses a volume boundary of a split bundle is served whole and by range', async (t) => {
  const dir = await withWork(t);
  const big = testImage(tool, 'big', [randomBytes(300_000)], { tag: 'v1' });
  const seal = await buildTinyBundle(path.join(dir, 'split.tar'), [big], { splitSize: 64 * 1024 });
  assert.ok(fs.existsSync(path.join(dir, 'split.tar.003')), 'the bundle is split into several volumes');
  const store = await BundleStore.open(path.join(dir, 'state.db'));
  t.after(() => store.close());
  await store.registerBundle(seal);
  const mirror = await serve(t, store);
  const layer = big.blobs.reduce((a, b) => (b.size > a.size ? b : a));
  const whole = await get(mirror, `/v2/team/tool/blobs/${layer.digest}`);
  assert.equal(whole.body.length, layer.size);
  assert.equal(sha256Of(whole.body), layer.digest);
  const part = await get(mirror, `/v2/team/tool/blobs/${layer.digest}`, { range: 'bytes=60000-200000' });
  assert.equal(part.status, 206);
  assert.ok(part.body.equals(whole.body.subarray(60000, 200001)));
});

test('the mirror opens no file but the registered volumes, whatever the request names', async (t) => {
  const dir = await withWork(t);
  const one = testImage(app, 'one', [randomBytes(20_000)], { tag: 'v1' });
  const seal = await buildTinyBundle(path.join(dir, 'a.tar'), [one]);
  const canary = path.join(dir, 'canary');
  await writeFile(canary, 'must never be served');
  const store = await BundleStore.open(path.join(dir, 'state.db'));
  t.after(() => store.close());
  await store.registerBundle(seal);
  const mirror = await serve(t, store);
  const opened: string[] = [];
  const original = fs.promises.open;
  fs.promises.open = ((file: fs.PathLike, ...rest: unknown[]) => {
    opened.push(String(file));
    return (original as (...args: unknown[]) => ReturnType<typeof original>)(file, ...rest);
  }) as typeof fs.promises.open;
  // The blob path opens with fs.open (callback: the volume fd is kept across downloads); spy on both entries.
  const originalOpen = fs.open;
  fs.open = ((file: fs.PathLike, ...rest: unknown[]) => {
    opened.push(String(file));
    return (originalOpen as (...args: unknown[]) => void)(file, ...rest);
  }) as typeof fs.open;
  t.after(() => {
    fs.promises.open = original;
    fs.open = originalOpen;
  });
  const layer = one.blobs.at(-1)!;
  const targets = [
    `/v2/example/app/blobs/${layer.digest}`,
    `/v2/example/app/blobs/sha256:${sha256Of('must never be served').slice(7)}`,
    '/v2/example/app/blobs/sha256:../../canary',
    '/v2/example/../../canary/blobs/sha256:0',
    `/v2/example/%2e%2e/%2e%2e/canary/blobs/${layer.digest}`,
    `/v2/example/app/manifests/..%2f..%2fcanary`,
    '/v2/example/app/manifests/v1',
  ];
  const statuses = [];
  for (const target of targets) statuses.push((await get(mirror, target)).status);
  // "..%2f..%2fcanary" is not a tag: 404 MANIFEST_UNKNOWN (the conformance suite's status), decided without a lookup.
  assert.deepEqual(statuses, [200, 404, 404, 400, 400, 404, 200]);
  assert.ok(opened.length >= 1, 'the blob read went through fs.open or fs.promises.open');
  assert.deepEqual([...new Set(opened)], [path.join(dir, 'a.tar')], 'only the bundle volume was opened');
});

test('a bundle registered by another process in the same database is served on the next request', async (t) => {
  const dir = await withWork(t);
  const seal = await buildTinyBundle(path.join(dir, 'a.tar'), [testImage(tool, 'one', [randomBytes(3000)], { tag: 'v1' })]);
  const db = path.join(dir, 'state.db');
  const serving = await BundleStore.open(db);
  t.after(() => serving.close());
  const mirror = await serve(t, serving);
  assert.equal((await get(mirror, '/v2/team/tool/manifests/v1')).status, 404);
  const importer = await BundleStore.open(db);
  await importer.registerBundle(seal);
  importer.close();
  assert.equal((await get(mirror, '/v2/team/tool/manifests/v1')).status, 200);
});

test("a blob another process's commit adds or removes is served, or not, on the next request: a lookup remembered before does not outlive the commit", async (t) => {
  const dir = await withWork(t);
  const first = testImage(tool, 'one', [randomBytes(3000)], { tag: 'v1' });
  const second = testImage(tool, 'two', [randomBytes(5000)], { tag: 'v2' });
  const sealFirst = await buildTinyBundle(path.join(dir, 'a.tar'), [first]);
  const sealSecond = await buildTinyBundle(path.join(dir, 'b.tar'), [second]);
  const db = path.join(dir, 'state.db');
  const serving = await BundleStore.open(db);
  t.after(() => serving.close());
  await serving.registerBundle(sealFirst);
  const mirror = await serve(t, serving);
  const layer = second.blobs.at(-1)!;
  const blob = `/v2/team/tool/blobs/${layer.digest}`;
  // The repository is served, the blob is in no bundle yet: asked twice, so its absence is remembered.
  for (let i = 0; i < 2; i++) assert.equal((await get(mirror, blob)).status, 404);
  const other = await BundleStore.open(db);
  await other.registerBundle(sealSecond);
  const served = await get(mirror, blob);
  assert.equal(served.status, 200);
  assert.equal(sha256Of(served.body), layer.digest);
  await other.unregisterBundle(sealSecond);
  other.close();
  const gone = await get(mirror, blob);
  assert.equal(gone.status, 404);
  assert.equal(JSON.parse(gone.body.toString()).errors[0].code, 'BLOB_UNKNOWN');
});

/** The mirror's blob downloads in progress (its gauge), and the pooled buffers lent, once both are back to `lentBefore` and 0 (5 s at most). */
async function downloadsSettled(mirror: RunningMirror, lentBefore: number): Promise<{ active: number; lent: number }> {
  const active = async () => Number(/^pin_preload_mirror_blob_streams (\d+)$/m.exec((await get(mirror, '/metrics')).body.toString())?.[1]);
  let now = { active: await active(), lent: pooledBuffersLent() };
  for (let i = 0; i < 50 && (now.active !== 0 || now.lent !== lentBefore); i++) {
    await new Promise((r) => setTimeout(r, 100));
    now = { active: await active(), lent: pooledBuffersLent() };
  }
  return now;
}

/** GETs `target` and resolves once the connection is gone: after the first body bytes when `leaveEarly`, else whenever the server ends it. */
function getUntilGone(mirror: RunningMirror, target: string, leaveEarly: boolean): Promise<void> {
  return new Promise<void>((resolve) => {
    const req = http.get({ host: '127.0.0.1', port: mirror.port, path: target }, (res) => {
      res.on('data', () => {
        if (leaveEarly) req.destroy();
      });
      res.on('error', () => undefined);
    });
    req.on('error', () => undefined);
    req.on('close', () => resolve());
  });
}

test('a client that goes away mid-blob ends the download: the download slot and every pooled buffer come back', async (t) => {
  const dir = await withWork(t);
  // Far more than the socket buffers on both sides hold, so the copy is still running when the client leaves.
  const big = testImage(tool, 'big', [randomBytes(24 * 1024 * 1024)], { tag: 'v1' });
  const store = await BundleStore.open(path.join(dir, 'state.db'));
  t.after(() => store.close());
  await store.registerBundle(await buildTinyBundle(path.join(dir, 'a.tar'), [big]));
  const mirror = await serve(t, store);
  const lentBefore = pooledBuffersLent();
  await getUntilGone(mirror, `/v2/team/tool/blobs/${big.blobs.at(-1)!.digest}`, true);
  assert.deepEqual(await downloadsSettled(mirror, lentBefore), { active: 0, lent: lentBefore });
});

test('a connection destroyed just before the last chunk is written (Node drops that write without calling back, yet the response finishes) still gives every pooled buffer back', async (t) => {
  const dir = await withWork(t);
  const blob = testImage(tool, 'blob', [randomBytes(3 * 1024 * 1024 + 5)], { tag: 'v1' });
  const store = await BundleStore.open(path.join(dir, 'state.db'));
  t.after(() => store.close());
  await store.registerBundle(await buildTinyBundle(path.join(dir, 'a.tar'), [blob]));
  const mirror = await serve(t, store);
  const layer = blob.blobs.at(-1)!;
  // The socket is destroyed right before the write that completes the body: the moment a client's reset can land.
  const write = http.ServerResponse.prototype.write;
  const sent = new WeakMap<http.ServerResponse, number>();
  let destroyedBeforeLast = 0;
  http.ServerResponse.prototype.write = function (this: http.ServerResponse, chunk: Uint8Array, ...rest: unknown[]) {
    if (this.getHeader('docker-content-digest') === layer.digest) {
      const total = (sent.get(this) ?? 0) + chunk.length;
      sent.set(this, total);
      if (total === layer.size) {
        this.socket?.destroy();
        destroyedBeforeLast++;
      }
    }
    return (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
  } as typeof write;
  t.after(() => {
    http.ServerResponse.prototype.write = write;
  });
  const lentBefore = pooledBuffersLent();
  await getUntilGone(mirror, `/v2/team/tool/blobs/${layer.digest}`, false);
  assert.equal(destroyedBeforeLast, 1, 'the last chunk met a destroyed socket');
  http.ServerResponse.prototype.write = write;
  assert.deepEqual(await downloadsSettled(mirror, lentBefore), { active: 0, lent: lentBefore });
});

for (const servedBefore of [false, true]) {
  const title = servedBefore
    ? "a bundle file deleted after its blobs were served (its fd kept open) is BLOB_UNKNOWN, not the old inode's bytes"
    : 'a blob whose bundle file vanished while serving is BLOB_UNKNOWN, not a broken connection';
  test(title, async (t) => {
    const dir = await withWork(t);
    const one = testImage(tool, 'one', [randomBytes(3000)], { tag: 'v1' });
    const seal = await buildTinyBundle(path.join(dir, 'a.tar'), [one]);
    const store = await BundleStore.open(path.join(dir, 'state.db'));
    t.after(() => store.close());
    await store.registerBundle(seal);
    const mirror = await serve(t, store);
    const blob = `/v2/team/tool/blobs/${one.blobs.at(-1)!.digest}`;
    if (servedBefore) {
      assert.equal((await get(mirror, blob)).status, 200);
      assert.equal((await get(mirror, blob)).status, 200, 'served again through the kept fd');
    }
    await rm(path.join(dir, 'a.tar'));
    const res = await get(mirror, blob);
    assert.equal(res.status, 404);
    assert.equal(JSON.parse(res.body.toString()).errors[0].code, 'BLOB_UNKNOWN');
    assert.equal((await get(mirror, '/v2/team/tool/manifests/v1')).status, 200, 'manifests are served from the index');
  });
}
