// `bundle push` into a real docker-registry: every image pulled back by skopeo by digest, a re-run that only
// HEADs, split volumes pushed as they are, refusals and failures named, a re-run continuing, damage named and
// never committed.

import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { pushBundle, parsePushTarget } from '../../src/bundle/push.js';
import type { BundleManifest } from '../../src/bundle/format.js';
import { RegistryClient } from '../../src/registry/client.js';
import { isUserError } from '../../src/util/errors.js';
import { startDockerRegistry, type RunningRegistry } from '../support/docker-registry.js';
import { buildSampleBundle, bundleManifestOf, largestBlobOf, RELEASE_TAG, type SampleBundle } from '../support/mirror-fixture.js';
import { faultTimes, startRegistryProxy, type Fault, type ProxiedRequest, type RecordedRequest, type RunningProxy } from '../support/registry-proxy.js';
import { assertNoInternalError, runCli } from '../support/cli.js';
import { flipByte } from '../support/damage.js';
import { startContainerd, writeHostsToml } from '../support/containerd.js';
import { CriImageService } from '../../src/cri/image-service.js';
import { PASSWORD, startTokenRegistry, USER, type TokenRegistry } from '../support/token-server.js';

const run = promisify(execFile);
const FAST_RETRY = { baseDelayMs: 1, maxDelayMs: 5 };
const UPLOADS = ['POST', 'PUT', 'PATCH'];

let work: string;
let bundle: SampleBundle;
let split: string;
let manifest: BundleManifest;

before(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-push-'));
  bundle = await buildSampleBundle(path.join(work, 'fixture'));
  manifest = await bundleManifestOf(bundle.sealPath);
  // The same bundle split into volumes: pushed from the volumes as they lie on the media.
  split = (await buildSampleBundle(path.join(work, 'split'), { splitSize: 1024 * 1024 })).sealPath;
});

after(async () => {
  await rm(work, { recursive: true, force: true });
});

/** A fresh registry behind a recording proxy, both stopped when the test ends. */
async function target(t: { after: (fn: () => Promise<void>) => void }): Promise<{ registry: RunningRegistry; proxy: RunningProxy }> {
  const registry = await startDockerRegistry();
  const proxy = await startRegistryProxy(registry.url);
  t.after(async () => {
    await proxy.stop();
    await registry.stop();
  });
  return { registry, proxy };
}

/** A mount request whose `from` is the repository it is sent to (a HEAD and a POST in one). */
function mountsFromOwnRepository(request: Pick<RecordedRequest, 'method' | 'path'>): boolean {
  const url = new URL(request.path, 'http://target');
  const from = url.searchParams.get('from');
  return request.method === 'POST' && from !== null && url.pathname === `/v2/${from}/blobs/uploads/`;
}

/** "REPOSITORY@DIGEST" for a request path under /v2/REPOSITORY/blobs/. */
function blobInRepository(requestPath: string, digest: string): string {
  return `${requestPath.slice('/v2/'.length, requestPath.indexOf('/blobs/'))}@${digest}`;
}

async function push(host: string, options: { bundle?: string; retry?: object; monolithicLimit?: number } = {}) {
  const client = new RegistryClient();
  try {
    return await pushBundle({ bundle: options.bundle ?? bundle.sealPath, target: parsePushTarget(host), client, insecure: true, concurrency: 4, retry: FAST_RETRY, ...options });
  } finally {
    await client.close();
  }
}

test('pushes every image so that skopeo pulls each back by digest, byte for byte, under the prefix; a re-run only HEADs', async (t) => {
  const { registry, proxy } = await target(t);
  const result = await runCli(['bundle', 'push', bundle.sealPath, '--to', `${proxy.host}/mirror`, '--json']);
  assertNoInternalError(result, 'bundle push');
  assert.equal(result.code, 0, result.stderr);
  const summary = JSON.parse(result.stdout);
  assert.equal(summary.schemaVersion, 1);
  assert.equal(summary.targetKind, 'registry');
  assert.equal(summary.images, manifest.images.length);
  assert.ok(summary.blobsSent > 0 && summary.blobsMounted > 0, 'shared layers are sent once and mounted into the other repositories');
  assert.equal(summary.blobsPresent, 0);

  // The fixture bundles linux/amd64 only: distribution refuses a multi-arch index whose other children are
  // missing, so for those images the platform manifests are checked by digest.
  const sparse = new Set<string>(summary.sparseIndexesRefused);
  assert.ok(sparse.size > 0 && sparse.size < manifest.images.length);
  for (const image of manifest.images) {
    const repository = image.repository.slice(image.repository.indexOf('/') + 1);
    const named = image.tag !== undefined ? `${image.repository}:${image.tag}` : image.name;
    for (const digest of sparse.has(named) ? image.manifests.slice(1) : [image.digest]) {
      const raw = await run('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${registry.host}/mirror/${repository}@${digest}`], { encoding: 'buffer', maxBuffer: 16 << 20 });
      assert.equal(`sha256:${createHash('sha256').update(raw.stdout).digest('hex')}`, digest, image.name);
    }
  }
  const release = manifest.images.find((i) => i.origin === 'release')!;
  const tagged = JSON.parse((await run('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${registry.host}/mirror/openshift-release-dev/ocp-release:${RELEASE_TAG}`])).stdout);
  assert.ok(tagged.mediaType !== undefined);
  const copyDir = path.join(work, 'pulled');
  await run('skopeo', ['copy', '--src-tls-verify=false', `docker://${registry.host}/mirror/openshift-release-dev/ocp-release@${release.digest}`, `oci:${copyDir}`]);
  assert.ok((await readdir(path.join(copyDir, 'blobs', 'sha256'))).length > 1);

  proxy.requests.length = 0;
  const again = await runCli(['bundle', 'push', bundle.sealPath, '--to', `${proxy.host}/mirror`, '--json']);
  assert.equal(again.code, 0, again.stderr);
  const second = JSON.parse(again.stdout);
  assert.equal(second.blobsSent + second.blobsMounted + second.manifestsPut + second.tagsPut, 0);
  // Only HEADs, but for the sparse indexes, which are offered again (a fixed registry may take them) and refused again.
  const sent = proxy.requests.filter((r) => UPLOADS.includes(r.method));
  assert.equal(sent.length, sparse.size);
  assert.ok(sent.every((r) => r.method === 'PUT' && r.path.includes('/manifests/sha256:') && r.status === 400));
  assert.deepEqual([...new Set(proxy.requests.filter((r) => r.path !== '/v2/' && !UPLOADS.includes(r.method)).map((r) => r.method))], ['HEAD']);
});

test('keeps its connections across the HEADs of blobs and manifests: no more connections than the pool holds', async (t) => {
  const { proxy } = await target(t);
  await push(proxy.host);
  // The pool holds 8; one more is the https probe of the plain-HTTP target.
  const first = proxy.connectionsAccepted();
  assert.ok(first <= 9, `${first} connections for the first push's ${proxy.requests.length} requests`);
  // A re-run asks a HEAD for every blob and manifest (an empty target is asked fewer: see below).
  proxy.requests.length = 0;
  const before = proxy.connectionsAccepted();
  const result = await push(proxy.host);
  assert.equal(result.images, manifest.images.length);
  const heads = proxy.requests.filter((r) => r.method === 'HEAD').length;
  assert.ok(heads >= 20, `the fixture makes the push ask enough HEADs to tell (${heads})`);
  // undici closes a connection after every HEAD unless told otherwise: that was one connection per HEAD.
  const connections = proxy.connectionsAccepted() - before;
  assert.ok(connections <= 9, `${connections} connections for ${proxy.requests.length} requests (${heads} HEADs)`);
});

test('into an empty registry a blob costs one question once the target has shown that it mounts: a mount from its own repository starts its upload', async (t) => {
  const { proxy } = await target(t);
  const result = await push(proxy.host);
  assert.equal(result.blobsPresent, 0);
  const blobHeads = proxy.requests.filter((r) => r.method === 'HEAD' && r.path.includes('/blobs/'));
  // The proof: after the first upload, its blob mounted from its own repository, answered 201.
  const proof = proxy.requests.findIndex((r) => mountsFromOwnRepository(r) && r.status === 201);
  assert.ok(proof >= 0, 'the target linked the first uploaded blob');
  assert.ok(!proxy.requests.slice(0, proof).some(mountsFromOwnRepository), 'no blob is asked by a mount before the target has shown that it mounts');
  // Only the uploads started before the proof came ask a HEAD (the push in `push` runs 4 at once).
  const later = proxy.requests.slice(proof + 1).filter((r) => r.method === 'HEAD' && r.path.includes('/blobs/'));
  assert.ok(later.length <= 4, `${later.length} blob HEADs after the proof`);
  assert.ok(blobHeads.length <= 8, `${blobHeads.length} blob HEADs`);
  const posts = proxy.requests.filter((r) => r.method === 'POST');
  assert.equal(posts.length, result.blobsSent + result.blobsMounted + 1, 'one POST per blob and repository (a mount or an upload), and the proof');
  const ownMountUploads = posts.filter((r) => mountsFromOwnRepository(r) && r.status === 202).length;
  const plainPosts = posts.filter((r) => !r.path.includes('mount=')).length;
  assert.equal(ownMountUploads + plainPosts, result.blobsSent, 'each upload started by one POST: a mount from its own repository, or a plain one');
  assert.ok(ownMountUploads > result.blobsSent / 2, `${ownMountUploads} of ${result.blobsSent} uploads started by a mount`);
  assert.ok(!proxy.requests.some((r) => r.method === 'GET' && r.path.includes('/blobs/uploads/')), 'an upload a mount just started is not asked where it stands');
});

test('a target whose mounts answer a plain 202 (it ignores mount=) is asked HEAD per blob: a pre-filled target is sent only the blobs it lacks', async (t) => {
  const { proxy } = await target(t);
  await push(proxy.host);
  proxy.requests.length = 0;
  // The registry holds every blob now. Its first blob HEADs answer "absent" (as a new release's new layers
  // would), and every mount reaches it without mount= and from=, so it answers 202 and starts an upload,
  // as a registry that does not mount (or cannot mount that blob) does.
  const absent = new Set<string>();
  const missing = faultTimes((req) => req.method === 'HEAD' && req.path.includes('/blobs/sha256:'), { kind: 'status', status: 404 }, 4);
  proxy.setFault((req) => {
    if (req.method === 'POST' && req.path.includes('mount=')) return { kind: 'forward-as', path: req.path.slice(0, req.path.indexOf('?')) };
    const fault = missing(req);
    if (fault !== undefined) absent.add(blobInRepository(req.path, req.path.slice(req.path.lastIndexOf('/') + 1)));
    return fault;
  });
  const result = await push(proxy.host);
  assert.equal(result.images, manifest.images.length);
  assert.equal(absent.size, 4);
  const carried = proxy.requests.filter((r) => (r.method === 'PUT' || r.method === 'PATCH') && r.path.includes('/blobs/uploads/') && r.bytesReceived > 0);
  const blobs = carried.map((r) => blobInRepository(r.path, decodeURIComponent(/[?&]digest=([^&]+)/.exec(r.path)?.[1] ?? '')));
  assert.ok(blobs.every((blob) => absent.has(blob)), `bytes sent again for blobs the registry holds: ${blobs.filter((b) => !absent.has(b)).join(', ')}`);
  assert.equal(result.blobsSent, carried.length);
  assert.ok(result.blobsPresent > 20, `${result.blobsPresent} blobs found present`);
  // The one question whether it mounts started an upload; it is deleted, not left behind.
  const deleted = proxy.requests.filter((r) => r.method === 'DELETE');
  assert.deepEqual(deleted.map((r) => r.status), [204]);
});

test('a target that answers the own-repository mount question with 202 and refuses the upload\'s DELETE (405) still gets cross-repository mounts', async (t) => {
  const { proxy } = await target(t);
  // Only a mount from the blob's own repository reaches the registry without mount= (202, an upload
  // started); cross-repository mounts go through. Cancelling the started upload is refused.
  proxy.setFault(ownMountsIgnored({ kind: 'status', status: 405, body: '{"errors":[{"code":"UNSUPPORTED","message":"no cancel"}]}' }));
  const result = await push(proxy.host);
  assert.equal(result.images, manifest.images.length);
  assert.deepEqual(proxy.requests.filter((r) => r.method === 'DELETE').map((r) => r.status), [405], 'the one cancel was tried, and refused');
  assert.ok(result.blobsMounted > 0, 'a refused DELETE is no refusal of mounts: cross-repository mounts still happen');
  assert.equal(proxy.requests.filter(mountsFromOwnRepository).length, 1, 'after a 202 to the question, no blob is asked by a mount from its own repository');
});

/** A fault hook: a mount from the blob's own repository reaches the registry as a plain POST (202); a DELETE gets `onDelete`. */
function ownMountsIgnored(onDelete?: Fault) {
  return (req: ProxiedRequest): Fault | undefined => {
    if (mountsFromOwnRepository(req)) return { kind: 'forward-as', path: req.path.slice(0, req.path.indexOf('?')) };
    return req.method === 'DELETE' ? onDelete : undefined;
  };
}

test('a target that refuses mount requests (HTTP 405) is pushed with a HEAD and a plain POST per blob, nothing mounted', async (t) => {
  const { proxy } = await target(t);
  proxy.setFault((req) => (req.method === 'POST' && req.path.includes('mount=') ? { kind: 'status', status: 405, body: '{"errors":[{"code":"UNSUPPORTED","message":"no mounts"}]}' } : undefined));
  const result = await push(proxy.host);
  assert.equal(result.images, manifest.images.length);
  assert.equal(result.blobsMounted, 0);
  const refused = proxy.requests.filter((r) => r.path.includes('mount=') && r.status === 405);
  assert.ok(refused.length >= 1 && refused.length <= 4, `${refused.length} refused mounts: the first refusals end them`);
  assert.ok(proxy.requests.filter((r) => r.method === 'HEAD' && r.path.includes('/blobs/')).length >= result.blobsSent);
});

test('pushes a bundle split into volumes straight from the volumes', async (t) => {
  const { registry } = await target(t);
  const result = await push(registry.host, { bundle: split });
  assert.equal(result.images, manifest.images.length);
  const image = manifest.images.find((i) => i.origin === 'component')!;
  const repository = image.repository.slice(image.repository.indexOf('/') + 1);
  await run('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${registry.host}/${repository}@${image.digest}`]);
});

for (const status of [401, 403, 405]) {
  test(`a target that refuses the push with HTTP ${status} is named with the image, blob and repository; exit 1`, async (t) => {
    const { proxy } = await target(t);
    proxy.setFault((req) => (req.method === 'POST' ? { kind: 'status', status, body: '{"errors":[{"code":"DENIED","message":"no pushes here"}]}' } : undefined));
    const result = await runCli(['bundle', 'push', bundle.sealPath, '--to', proxy.host]);
    assertNoInternalError(result, 'bundle push');
    assert.equal(result.code, 1);
    assert.match(result.stderr, new RegExp(`blob sha256:[a-f0-9]{64} of image \\S+ to repository \\S+ at ${proxy.host.replace(/\./g, '\\.')}: the registry refused it with HTTP ${status}: DENIED: no pushes here`));
  });
}

test('a registry failing mid-upload (HTTP 500, a full disk) fails naming the blob; a re-run continues and sends only what is missing', async (t) => {
  const { proxy } = await target(t);
  let allowed = 3;
  proxy.setFault((req) => {
    if (req.method !== 'PUT' || !req.path.includes('/blobs/uploads/')) return undefined;
    return allowed-- > 0 ? undefined : { kind: 'status', status: 500, body: '{"errors":[{"code":"UNKNOWN","message":"no space left on device"}]}' };
  });
  await assert.rejects(push(proxy.host), (err: unknown) => {
    assert.ok(isUserError(err));
    assert.equal(err.code, 'PUSH_FAILED');
    assert.match(err.message, /blob sha256:[a-f0-9]{64} of image .* to repository .*: HTTP 500: UNKNOWN: no space left on device \(retried, giving up\)/);
    return true;
  });
  proxy.setFault(undefined);
  proxy.requests.length = 0;
  const rerun = await push(proxy.host);
  assert.ok(rerun.blobsPresent >= 3, 'the blobs the failed run placed are kept');
  assert.equal(rerun.images, manifest.images.length);
});

test('a manifest the target rejects is named; after the fix a re-run finishes', async (t) => {
  const { proxy } = await target(t);
  proxy.setFault((req) => (req.method === 'PUT' && req.path.includes('/manifests/') ? { kind: 'status', status: 400, body: '{"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid"}]}' } : undefined));
  await assert.rejects(push(proxy.host), (err: unknown) => {
    assert.ok(isUserError(err));
    assert.equal(err.code, 'PUSH_FAILED');
    assert.match(err.message, /manifest sha256:[a-f0-9]{64} of image .* to repository .*: HTTP 400: MANIFEST_INVALID/);
    return true;
  });
  proxy.setFault(undefined);
  const rerun = await push(proxy.host);
  assert.equal(rerun.blobsSent, 0, 'every blob was in place already');
  assert.ok(rerun.manifestsPut > 0);
});

test('large blobs go by PATCH, and a broken PATCH is resumed from the offset the registry reports', async (t) => {
  const { registry, proxy } = await target(t);
  let broken = 0;
  proxy.setFault((req) => (req.method === 'PATCH' && broken++ === 0 ? { kind: 'status', status: 503 } : undefined));
  const result = await push(proxy.host, { monolithicLimit: 0 });
  assert.equal(result.images, manifest.images.length);
  assert.ok(proxy.requests.some((r) => r.method === 'GET' && r.path.includes('/blobs/uploads/')), 'the retry asked where the upload stood');
  assert.equal(proxy.requests.filter((r) => r.method === 'PUT' && r.path.includes('/blobs/uploads/')).length, result.blobsSent);
  const image = manifest.images.find((i) => i.origin === 'component')!;
  const repository = image.repository.slice(image.repository.indexOf('/') + 1);
  await run('skopeo', ['copy', '--src-tls-verify=false', `docker://${registry.host}/${repository}@${image.digest}`, `oci:${path.join(work, 'patched')}`]);
});

/** A copy of the sample bundle (tar and seal) in `dir`, and its largest layer: where it lies in the tar. */
async function bundleCopy(dir: string): Promise<{ tar: string; seal: string; layer: { digest: string; offset: number; size: number } }> {
  await mkdir(dir, { recursive: true });
  const tar = path.join(dir, path.basename(bundle.tarPath));
  const seal = path.join(dir, path.basename(bundle.sealPath));
  await copyFile(bundle.tarPath, tar);
  await copyFile(bundle.sealPath, seal);
  return { tar, seal, layer: await largestBlobOf(tar) };
}

async function blobStatus(registry: RunningRegistry, digest: string): Promise<number[]> {
  const repositories = [...new Set(manifest.images.map((i) => i.repository.slice(i.repository.indexOf('/') + 1)))];
  return Promise.all(repositories.map(async (repo) => (await fetch(`${registry.url}/v2/${repo}/blobs/${digest}`, { method: 'HEAD' })).status));
}

for (const mode of [{ name: 'one PUT', monolithicLimit: undefined }, { name: 'PATCH, then a closing PUT', monolithicLimit: 1024 }]) {
  test(`a damaged blob (${mode.name}) is BUNDLE_VERIFY_FAILED naming its volume and never committed; after the media is fixed a re-run finishes`, async (t) => {
    const { registry, proxy } = await target(t);
    const damaged = await bundleCopy(path.join(work, `damaged-${mode.monolithicLimit ?? 'put'}`));
    await flipByte(damaged.tar, damaged.layer.offset + damaged.layer.size - 10);
    const options = { bundle: damaged.seal, ...(mode.monolithicLimit !== undefined ? { monolithicLimit: mode.monolithicLimit } : {}) };
    const error = await push(proxy.host, options).then(() => undefined, (e: unknown) => e);
    assert.ok(isUserError(error) && error.code === 'BUNDLE_VERIFY_FAILED', `got ${String(error)}`);
    assert.match(error.message, new RegExp(`blob ${damaged.layer.digest} is damaged`));
    assert.ok(error.message.includes(`volume ${damaged.tar} bytes ${damaged.layer.offset}–${damaged.layer.offset + damaged.layer.size}`), error.message);
    // Its body never reached the target whole (the last chunk waits for the digest check; a blob of one chunk
    // sends no byte) ...
    const carrying = proxy.requests.filter((r) => UPLOADS.includes(r.method) && r.contentLength === damaged.layer.size);
    assert.ok(carrying.every((r) => r.bytesReceived < damaged.layer.size), `received ${carrying.map((r) => r.bytesReceived).join(', ')} of ${damaged.layer.size} bytes`);
    // ... no upload of it was answered 201 (committed), and the registry does not have it.
    const closing = proxy.requests.filter((r) => r.method === 'PUT' && r.path.includes(encodeURIComponent(damaged.layer.digest)));
    assert.deepEqual(closing.filter((r) => r.status === 201), []);
    if (mode.monolithicLimit !== undefined) assert.deepEqual(closing, [], 'no closing PUT was sent');
    assert.ok((await blobStatus(registry, damaged.layer.digest)).every((status) => status === 404));
    assert.equal(proxy.requests.some((r) => r.method === 'PUT' && r.path.includes('/manifests/')), false, 'no manifest was pushed');
    // The media fixed (the volume copied again): the same push goes on and finishes.
    await copyFile(bundle.tarPath, damaged.tar);
    const result = await push(proxy.host, options);
    assert.equal(result.images, manifest.images.length);
    assert.ok((await blobStatus(registry, damaged.layer.digest)).includes(200));
  });
}

test('the CLI names a damaged blob, where it lies and that a re-run goes on, exit 1; with --verify-first it sends nothing', async (t) => {
  const { proxy } = await target(t);
  const damaged = await bundleCopy(path.join(work, 'damaged-cli'));
  await flipByte(damaged.tar, damaged.layer.offset + 10);
  const streaming = await runCli(['bundle', 'push', damaged.seal, '--to', proxy.host]);
  assertNoInternalError(streaming, 'bundle push');
  assert.equal(streaming.code, 1);
  assert.ok(streaming.stderr.includes(`blob ${damaged.layer.digest} is damaged`) && streaming.stderr.includes(`volume ${damaged.tar} bytes`), streaming.stderr);
  assert.match(streaming.stderr, /it was not committed at .*\n.*hint: copy the damaged volume again or re-create the bundle, then run the same push: it goes on where it stopped/);
  proxy.requests.length = 0;
  const first = await runCli(['bundle', 'push', damaged.seal, '--to', proxy.host, '--verify-first']);
  assertNoInternalError(first, 'bundle push --verify-first');
  assert.equal(first.code, 1);
  assert.match(first.stderr, /failed verification/);
  assert.equal(proxy.requests.length, 0, 'nothing was sent');
});

test('a bundle whose seal, manifest, volume, tar headers or signature are wrong is refused before any request', async (t) => {
  const { proxy } = await target(t);
  const cases: Array<{ name: string; damage: (copy: Awaited<ReturnType<typeof bundleCopy>>) => Promise<void>; message: RegExp }> = [
    {
      name: 'manifest',
      damage: async (copy) => {
        const seal = JSON.parse(await readFile(copy.seal, 'utf8')) as { manifestDigest: string };
        seal.manifestDigest = `sha256:${createHash('sha256').update('another manifest').digest('hex')}`;
        await writeFile(copy.seal, JSON.stringify(seal));
      },
      message: /failed verification/,
    },
    { name: 'header', damage: (copy) => flipByte(copy.tar, copy.layer.offset - 512 + 100), message: /tar header/ },
    { name: 'volume', damage: async (copy) => writeFile(copy.tar, (await readFile(copy.tar)).subarray(0, copy.layer.offset)), message: /wrong size/ },
    { name: 'seal', damage: (copy) => rm(copy.seal), message: /failed verification|seal/ },
    { name: 'signature', damage: async () => undefined, message: /not signed/ },
  ];
  const key = path.join(work, 'push.key');
  assert.equal((await runCli(['keygen', '--output', key])).code, 0);
  for (const c of cases) {
    const copy = await bundleCopy(path.join(work, `refused-${c.name}`));
    await c.damage(copy);
    const trust = c.name === 'signature' ? ['--trusted-key', `${key}.pub`] : [];
    const result = await runCli(['bundle', 'push', c.name === 'seal' ? copy.tar : copy.seal, '--to', proxy.host, ...trust]);
    assertNoInternalError(result, `bundle push (${c.name})`);
    assert.equal(result.code, 1, c.name);
    assert.match(result.stderr, c.message, c.name);
    assert.equal(proxy.requests.length, 0, `${c.name}: nothing was sent`);
  }
});

test('containerd pulls pushed images by digest through the target registry as a hosts.toml mirror of quay.io', async (t) => {
  const { registry } = await target(t);
  await push(registry.host);
  const hostsDir = path.join(work, 'push-certs.d');
  await writeHostsToml(hostsDir, 'quay.io', registry.url);
  const containerd = await startContainerd({ registryHostsDir: hostsDir });
  t.after(() => containerd.stop());
  const cri = await CriImageService.connect(containerd.endpoint, { timeoutMs: 10_000 });
  t.after(() => cri.close());
  // quay.io is unreachable here: the content can only come from the registry the bundle was pushed to.
  const release = manifest.images.find((i) => i.origin === 'release')!;
  const component = manifest.images.find((i) => i.origin === 'component' && i.manifests.length === 1)!;
  for (const ref of [`${release.repository}@${release.digest}`, `${component.repository}@${component.digest}`]) {
    await cri.pullImage(ref, { timeoutMs: 60_000 });
    assert.ok((await cri.imageStatus(ref))?.repoDigests.includes(ref), `${ref} is present after the pull`);
  }
});

test('--dest-cert-dir: a TLS target whose certificate the given CA signed is pushed to; with another CA the push fails naming it', async (t) => {
  const registry = await startDockerRegistry();
  t.after(() => registry.stop());
  const dir = path.join(work, 'tls');
  await mkdir(path.join(dir, 'good'), { recursive: true });
  await mkdir(path.join(dir, 'other'), { recursive: true });
  const selfSigned = (name: string) =>
    run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', path.join(dir, `${name}.key`), '-out', path.join(dir, `${name}.pem`), '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1']);
  await selfSigned('server');
  await selfSigned('stranger');
  await copyFile(path.join(dir, 'server.pem'), path.join(dir, 'good', 'ca.crt'));
  await copyFile(path.join(dir, 'stranger.pem'), path.join(dir, 'other', 'ca.crt'));
  const proxy = await startRegistryProxy(registry.url, { tls: { key: await readFile(path.join(dir, 'server.key'), 'utf8'), cert: await readFile(path.join(dir, 'server.pem'), 'utf8') } });
  t.after(() => proxy.stop());

  const refused = await runCli(['bundle', 'push', bundle.sealPath, '--to', proxy.host, '--dest-cert-dir', path.join(dir, 'other')]);
  assertNoInternalError(refused, 'bundle push');
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /to repository \S+ at 127\.0\.0\.1:\d+: .*(certificate|CERT)/i);
  assert.equal(proxy.requests.length, 0, 'nothing reached the target over an unverified connection');

  const pushed = await runCli(['bundle', 'push', bundle.sealPath, '--to', proxy.host, '--dest-cert-dir', path.join(dir, 'good'), '--json']);
  assert.equal(pushed.code, 0, pushed.stderr);
  assert.equal(JSON.parse(pushed.stdout).images, manifest.images.length);
});

test('--to is HOST[:PORT][/PREFIX] or oci:DIR', () => {
  assert.deepEqual(parsePushTarget('registry.example.com:5000/ocp/mirror'), { kind: 'registry', host: 'registry.example.com:5000', prefix: 'ocp/mirror' });
  assert.deepEqual(parsePushTarget('127.0.0.1:5000'), { kind: 'registry', host: '127.0.0.1:5000', prefix: '' });
  assert.throws(() => parsePushTarget('registry.example.com/Bad Prefix'), /--to/);
  assert.deepEqual(parsePushTarget('oci:layout'), { kind: 'layout', dir: path.resolve('layout') });
  assert.throws(() => parsePushTarget('oci:'), /is not oci:DIR/);
});

describe('into a registry with token auth (docker-registry auth: token)', () => {
  let dir: string;
  let registry: RunningRegistry;
  let authfile: string;
  let setup: TokenRegistry;

  before(async () => {
    setup = await startTokenRegistry({ grantPush: true });
    ({ dir, registry, authfile } = setup);
  });
  after(async () => {
    await setup?.stop();
  });

  test('without credentials the push is refused, named, exit 1', async () => {
    const empty = path.join(dir, 'empty.json');
    await writeFile(empty, '{"auths":{}}');
    const result = await runCli(['bundle', 'push', bundle.sealPath, '--to', registry.host, '--authfile', empty]);
    assertNoInternalError(result, 'bundle push');
    assert.equal(result.code, 1);
    assert.match(result.stderr, /of image \S+ to repository \S+ at 127\.0\.0\.1:\d+: the registry refused it with HTTP 401/);
  });

  test('the upload the mount question started cannot be cancelled without the delete action (401): the push goes on and finishes', async (t) => {
    const fresh = await startTokenRegistry({ grantPush: true });
    const proxy = await startRegistryProxy(fresh.registry.url);
    t.after(async () => {
      await proxy.stop();
      await fresh.stop();
    });
    proxy.setFault(ownMountsIgnored());
    const proxyAuth = path.join(fresh.dir, 'proxy-auth.json');
    await writeFile(proxyAuth, JSON.stringify({ auths: { [proxy.host]: { auth: Buffer.from(`${USER}:${PASSWORD}`).toString('base64') } } }));
    const result = await runCli(['bundle', 'push', bundle.sealPath, '--to', proxy.host, '--authfile', proxyAuth, '--dest-tls-verify=false', '--json']);
    assertNoInternalError(result, 'bundle push');
    assert.equal(result.code, 0, result.stderr);
    // The token server grants pull and push only, so distribution refuses the DELETE (it wants `delete`):
    // the upload is left to its purge, and no blob request of the push itself was refused meanwhile.
    const deletes = proxy.requests.filter((r) => r.method === 'DELETE');
    assert.ok(deletes.length >= 1 && deletes.every((r) => r.status === 401), `DELETEs: ${deletes.map((r) => r.status).join(', ')}`);
    assert.deepEqual(proxy.requests.filter((r) => r.method !== 'DELETE' && r.path.includes('/blobs/') && r.status >= 400 && r.status !== 401 && r.status !== 404).map((r) => `${r.method} ${r.path} ${r.status}`), []);
    assert.equal(JSON.parse(result.stdout).images, manifest.images.length);
  });

  test('with --authfile the push gets push tokens (mounts included) and skopeo pulls the release back by digest', async () => {
    const result = await runCli(['bundle', 'push', bundle.sealPath, '--to', registry.host, '--authfile', authfile, '--json']);
    assertNoInternalError(result, 'bundle push');
    assert.equal(result.code, 0, result.stderr);
    const summary = JSON.parse(result.stdout);
    assert.ok(summary.blobsMounted > 0, 'mounts got a token with pull on the source repository');
    const release = manifest.images.find((i) => i.origin === 'release')!;
    const raw = await run('skopeo', ['inspect', '--tls-verify=false', '--creds', `${USER}:${PASSWORD}`, '--raw', `docker://${registry.host}/openshift-release-dev/ocp-release@${release.digest}`], { encoding: 'buffer' });
    assert.equal(`sha256:${createHash('sha256').update(raw.stdout).digest('hex')}`, release.digest);
  });
});
