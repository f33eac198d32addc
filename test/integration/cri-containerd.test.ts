import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { pack } from 'tar-stream';
import { ContainerdImages, PINNED_LABEL, PINNED_VALUE } from '../../src/cri/containerd-images.js';
import { CriError, CriImageService } from '../../src/cri/image-service.js';
import { isUserError } from '../../src/util/errors.js';
import { sha256Of, type Digest } from '../../src/oci/digest.js';
import { MediaType } from '../../src/oci/media-types.js';
import { startDockerRegistry } from '../support/docker-registry.js';
import { CONTAINERD_VARIANTS, startContainerd, startContainerdVariant, writeHostsToml } from '../support/containerd.js';
import { waitFor } from '../support/ports.js';

const REPOSITORY = 'openshift-release-dev/ocp-v4.0-art-dev';
const SOURCE = `quay.io/${REPOSITORY}`;

async function tarOf(files: Record<string, string>): Promise<Buffer> {
  const archive = pack();
  for (const [name, content] of Object.entries(files)) archive.entry({ name, mode: 0o644 }, content);
  archive.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of archive) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function pushBlob(registryUrl: string, bytes: Buffer): Promise<Digest> {
  const digest = sha256Of(bytes);
  const start = await fetch(`${registryUrl}/v2/${REPOSITORY}/blobs/uploads/`, { method: 'POST' });
  assert.equal(start.status, 202, 'registry accepts a blob upload');
  const location = new URL(start.headers.get('location') ?? '', registryUrl);
  location.searchParams.set('digest', digest);
  const put = await fetch(location, {
    method: 'PUT',
    body: bytes,
    headers: { 'content-type': 'application/octet-stream' },
  });
  assert.equal(put.status, 201, `registry stores blob ${digest}`);
  return digest;
}

/** Pushes a one-layer Docker schema2 image holding `files` and returns its manifest digest. */
async function pushImage(registryUrl: string, files: Record<string, string>): Promise<Digest> {
  const layerTar = await tarOf(files);
  const layer = gzipSync(layerTar);
  const config = Buffer.from(
    JSON.stringify({
      architecture: process.arch === 'arm64' ? 'arm64' : 'amd64',
      os: 'linux',
      config: { Cmd: ['/bin/true'] },
      rootfs: { type: 'layers', diff_ids: [sha256Of(layerTar)] },
      history: [{ created_by: 'pin-preload test' }],
    }),
  );
  const layerDigest = await pushBlob(registryUrl, layer);
  const configDigest = await pushBlob(registryUrl, config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.dockerManifest,
      config: { mediaType: 'application/vnd.docker.container.image.v1+json', size: config.length, digest: configDigest },
      layers: [{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: layer.length, digest: layerDigest }],
    }),
  );
  const digest = sha256Of(manifest);
  const put = await fetch(`${registryUrl}/v2/${REPOSITORY}/manifests/${digest}`, {
    method: 'PUT',
    body: manifest,
    headers: { 'content-type': MediaType.dockerManifest },
  });
  assert.equal(put.status, 201, 'registry stores the manifest');
  return digest;
}

/**
 * A pass-through proxy in front of the registry that records what containerd asks the mirror for;
 * with `stallBlobs` it never answers blob requests (a hung mirror).
 */
async function startRecordingProxy(
  targetUrl: string,
  options: { stallBlobs?: boolean } = {},
): Promise<{ url: string; requests: string[]; stop(): Promise<void> }> {
  const target = new URL(targetUrl);
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    if (options.stallBlobs && req.url?.includes('/blobs/')) return;
    const upstream = http.request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

for (const variant of CONTAINERD_VARIANTS) test(`${variant.name} pulls a quay.io image by digest through a hosts.toml mirror, via the CRI ImageService`, async (t) => {
  const registry = await startDockerRegistry();
  t.after(() => registry.stop());
  const digest = await pushImage(registry.url, { 'etc/pin-preload-test': 'pulled through CRI\n' });
  const proxy = await startRecordingProxy(registry.url);
  t.after(() => proxy.stop());

  const hostsDir = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-certs.d-'));
  t.after(() => rm(hostsDir, { recursive: true, force: true }));
  await writeHostsToml(hostsDir, 'quay.io', proxy.url);

  const containerd = await startContainerdVariant(variant, { registryHostsDir: hostsDir });
  t.after(() => containerd.stop());
  const cri = await CriImageService.connect(containerd.endpoint, { timeoutMs: 5_000 });
  t.after(() => cri.close());
  const records = await ContainerdImages.connect(containerd.endpoint, { timeoutMs: 5_000 });
  t.after(() => records.close());

  const ref = `${SOURCE}@${digest}`;

  await t.test('identifies the runtime as containerd speaking CRI v1', async () => {
    const version = await cri.version();
    assert.equal(version.runtimeName, 'containerd');
    assert.match(version.runtimeVersion, variant.version);
    assert.equal(version.runtimeApiVersion, 'v1');
  });

  await t.test('reports the image as absent before the pull', async () => {
    assert.equal(await cri.imageStatus(ref), undefined);
  });

  await t.test('pulls by digest and returns the image ref', async () => {
    const imageRef = await cri.pullImage(ref, { timeoutMs: 20_000 });
    assert.match(imageRef, /^sha256:[0-9a-f]{64}$/);
  });

  await t.test('asked the mirror for the manifest by digest with ?ns=quay.io', (st) => {
    st.diagnostic(`mirror requests: ${proxy.requests.join(' | ')}`);
    assert.ok(
      proxy.requests.includes(`GET /v2/${REPOSITORY}/manifests/${digest}?ns=quay.io`) ||
        proxy.requests.includes(`HEAD /v2/${REPOSITORY}/manifests/${digest}?ns=quay.io`),
      `mirror requests: ${proxy.requests.join(', ')}`,
    );
    assert.ok(
      proxy.requests.every((line) => line.endsWith('?ns=quay.io') || line.includes('?ns=quay.io&') || line === 'GET /v2/'),
      `every request names the source registry: ${proxy.requests.join(', ')}`,
    );
  });

  await t.test('reports the pulled image with its digest and not pinned', async () => {
    const image = await cri.imageStatus(ref);
    assert.ok(image, 'image present after pull');
    assert.ok(image.repoDigests.includes(ref), `repoDigests ${image.repoDigests.join(', ')} contains ${ref}`);
    assert.ok(image.size > 0);
    assert.equal(image.pinned, false, 'nothing pins a freshly pulled image');
  });

  await t.test('the images API lists the records naming the digest: the reference and the CRI\'s image ID', async () => {
    const found = await records.recordsFor([digest]);
    const image = await cri.imageStatus(ref);
    assert.deepEqual(found.map((r) => r.name).sort(), [ref, image!.id].sort());
    assert.ok(found.every((r) => r.target.digest === digest && r.labels['io.cri-containerd.image'] === 'managed'));
  });

  await t.test(`the pinned label on its records makes ImageStatus report it pinned: ${variant.pins ? 'yes' : 'never'}`, async () => {
    for (const record of await records.recordsFor([digest])) await records.setLabel(record, PINNED_LABEL, PINNED_VALUE);
    const found = await records.recordsFor([digest]);
    assert.ok(found.every((r) => r.labels[PINNED_LABEL] === PINNED_VALUE && r.labels['io.cri-containerd.image'] === 'managed'), 'only our label changed');
    if (variant.pins) {
      // The CRI plugin takes the update in from an image event: bounded wait.
      await waitFor('ImageStatus pinned', async () => (await cri.imageStatus(ref))?.pinned === true, 10_000);
      assert.ok((await cri.listImages()).some((i) => i.repoDigests.includes(ref) && i.pinned), 'ListImages (the kubelet GC\'s view) agrees');
    } else {
      await new Promise((r) => setTimeout(r, 1_000));
      assert.equal((await cri.imageStatus(ref))?.pinned, false, 'containerd 1.6 has no pinned images');
    }
  });

  await t.test('removing the label unpins it; the image stays', async () => {
    for (const record of await records.recordsFor([digest])) await records.setLabel(record, PINNED_LABEL, undefined);
    const found = await records.recordsFor([digest]);
    assert.ok(found.every((r) => r.labels[PINNED_LABEL] === undefined && r.labels['io.cri-containerd.image'] === 'managed'));
    await waitFor('ImageStatus not pinned', async () => (await cri.imageStatus(ref))?.pinned === false, 10_000);
    assert.ok(await cri.imageStatus(ref), 'still present');
  });

  await t.test('reports the image filesystem inside its own root', async () => {
    const filesystems = await cri.imageFsInfo();
    assert.ok(filesystems.length >= 1);
    const mountpoint = filesystems[0]?.mountpoint ?? '';
    assert.ok(mountpoint.startsWith(`${containerd.root}/`), `${mountpoint} is under ${containerd.root}`);
    assert.equal(typeof filesystems[0]?.usedBytes, 'number');
  });

  await t.test('lists the pulled image', async () => {
    const images = await cri.listImages();
    assert.ok(images.some((image) => image.repoDigests.includes(ref)));
  });

  await t.test('removes the image, after which it is absent', async () => {
    await cri.removeImage(ref);
    assert.equal(await cri.imageStatus(ref), undefined);
    await cri.removeImage(ref); // idempotent
  });

  await t.test('a digest the mirror lacks: mirror answers 404, containerd falls back to quay.io, UNKNOWN error', async () => {
    const missing = `${SOURCE}@${sha256Of('not in the mirror')}`;
    await assert.rejects(cri.pullImage(missing, { timeoutMs: 20_000 }), (err: unknown) => {
      assert.ok(err instanceof CriError, String(err));
      assert.equal(err.image, missing);
      assert.ok(err.message.includes(missing));
      // The last host tried is hosts.toml's `server`; offline that is a DNS/dial error, not "not found".
      assert.equal(err.code, 'UNKNOWN');
      assert.ok(err.message.includes('https://quay.io/v2/'), err.message);
      assert.equal(err.isNoSpace, false);
      return true;
    });
    const asked = `HEAD /v2/${REPOSITORY}/manifests/${missing.split('@')[1]}?ns=quay.io`;
    assert.ok(proxy.requests.includes(asked), `mirror requests: ${proxy.requests.join(', ')}`);
  });

  await t.test('a digest the mirror lacks, mirror-only hosts.toml: NOT_FOUND CriError naming the image', async () => {
    await writeHostsToml(hostsDir, 'quay.io', proxy.url, { mirrorOnly: true });
    const missing = `${SOURCE}@${sha256Of('no such manifest')}`;
    await assert.rejects(cri.pullImage(missing, { timeoutMs: 20_000 }), (err: unknown) => {
      assert.ok(err instanceof CriError, String(err));
      assert.equal(err.code, 'NOT_FOUND');
      assert.ok(err.isNotFound);
      assert.equal(err.image, missing);
      assert.ok(err.message.includes(missing));
      return true;
    });
  });

  await t.test('cancels a pull when its signal aborts', async () => {
    const controller = new AbortController();
    controller.abort();
    await assert.rejects(cri.pullImage(ref, { timeoutMs: 20_000, signal: controller.signal }), (err: unknown) => {
      assert.ok(err instanceof CriError);
      assert.equal(err.code, 'CANCELLED');
      return true;
    });
  });
});

test('a pull that fills the runtime storage fails with isNoSpace set', async (t) => {
  const registry = await startDockerRegistry();
  t.after(() => registry.stop());
  // Random bytes do not compress: a 4 MiB layer cannot fit a 2 MiB image store.
  const digest = await pushImage(registry.url, { 'var/big': randomBytes(4 * 1024 * 1024).toString('base64') });
  const hostsDir = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-certs.d-'));
  t.after(() => rm(hostsDir, { recursive: true, force: true }));
  await writeHostsToml(hostsDir, 'quay.io', registry.url, { mirrorOnly: true });
  const containerd = await startContainerd({ registryHostsDir: hostsDir, rootSizeBytes: 2 * 1024 * 1024 });
  t.after(() => containerd.stop());
  const cri = await CriImageService.connect(containerd.endpoint, { timeoutMs: 5_000 });
  t.after(() => cri.close());

  const ref = `${SOURCE}@${digest}`;
  await assert.rejects(cri.pullImage(ref, { timeoutMs: 20_000 }), (err: unknown) => {
    assert.ok(err instanceof CriError, String(err));
    t.diagnostic(`${err.code}: ${err.message}`);
    assert.ok(err.isNoSpace, err.message);
    assert.equal(err.image, ref);
    assert.match(err.hint ?? '', /storage is full/);
    return true;
  });
});

test('a pull from a hung mirror ends at its deadline or when its signal aborts', async (t) => {
  const registry = await startDockerRegistry();
  t.after(() => registry.stop());
  const digest = await pushImage(registry.url, { 'etc/hung': 'never arrives\n' });
  const proxy = await startRecordingProxy(registry.url, { stallBlobs: true });
  t.after(() => proxy.stop());
  const hostsDir = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-certs.d-'));
  t.after(() => rm(hostsDir, { recursive: true, force: true }));
  await writeHostsToml(hostsDir, 'quay.io', proxy.url, { mirrorOnly: true });
  const containerd = await startContainerd({ registryHostsDir: hostsDir });
  t.after(() => containerd.stop());
  const cri = await CriImageService.connect(containerd.endpoint, { timeoutMs: 5_000 });
  t.after(() => cri.close());
  const ref = `${SOURCE}@${digest}`;

  await t.test('DEADLINE_EXCEEDED after timeoutMs', async () => {
    const started = Date.now();
    await assert.rejects(cri.pullImage(ref, { timeoutMs: 500 }), (err: unknown) => {
      assert.ok(err instanceof CriError, String(err));
      assert.equal(err.code, 'DEADLINE_EXCEEDED');
      assert.equal(err.image, ref);
      return true;
    });
    assert.ok(Date.now() - started < 5_000);
  });

  await t.test('CANCELLED when the signal aborts mid-pull', async () => {
    const controller = new AbortController();
    const pull = cri.pullImage(ref, { timeoutMs: 20_000, signal: controller.signal });
    setTimeout(() => controller.abort(), 300);
    const started = Date.now();
    await assert.rejects(pull, (err: unknown) => {
      assert.ok(err instanceof CriError, String(err));
      assert.equal(err.code, 'CANCELLED');
      return true;
    });
    assert.ok(Date.now() - started < 5_000);
    assert.ok(proxy.requests.some((line) => line.includes('/blobs/')), 'the pull had reached the blobs');
  });
});

test('connecting to a socket nobody serves fails with CRI_UNREACHABLE naming the endpoint', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-nocri-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const endpoint = `unix://${dir}/containerd.sock`;
  await assert.rejects(CriImageService.connect(endpoint, { timeoutMs: 1_000 }), (err: unknown) => {
    assert.ok(isUserError(err));
    assert.equal(err.code, 'CRI_UNREACHABLE');
    assert.ok(err.message.includes(endpoint));
    assert.match(err.hint ?? '', /running/);
    return true;
  });
});
