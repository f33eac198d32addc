import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { createGunzip } from 'node:zlib';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import tar from 'tar-stream';
import { generateSampleRelease, loadSampleRelease, pushLayout, REF_NAME_ANNOTATION, type SampleRelease } from '../../src/sample/index.js';
import { parseManifest, type ImageManifest } from '../../src/oci/manifest.js';
import { MediaType } from '../../src/oci/media-types.js';
import { isUserError } from '../../src/util/errors.js';
import { startDockerRegistry } from '../support/docker-registry.js';

const run = promisify(execFile);
let work: string;
let release: SampleRelease;

before(async () => {
  work = await fs.mkdtemp(path.join(os.tmpdir(), 'pin-preload-sample-'));
  release = await generateSampleRelease(path.join(work, 'default'), { multiPayload: true });
});
after(async () => {
  await fs.rm(work, { recursive: true, force: true });
});

function blobPath(dir: string, digest: string): string {
  return path.join(dir, 'blobs', 'sha256', digest.slice('sha256:'.length));
}

async function readJson(dir: string, digest: string): Promise<Record<string, any>> {
  return JSON.parse(await fs.readFile(blobPath(dir, digest), 'utf8'));
}

async function readImageManifest(dir: string, digest: string, mediaType: string): Promise<ImageManifest> {
  const manifest = parseManifest(await fs.readFile(blobPath(dir, digest)), mediaType, digest);
  assert.equal(manifest.kind, 'image');
  return manifest as ImageManifest;
}

/** Every image manifest of the layout, with index children resolved. */
async function allImageManifests(dir: string): Promise<ImageManifest[]> {
  const top = JSON.parse(await fs.readFile(path.join(dir, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string; mediaType: string }> };
  const out: ImageManifest[] = [];
  const visit = async (digest: string, mediaType: string): Promise<void> => {
    const m = parseManifest(await fs.readFile(blobPath(dir, digest)), mediaType, digest);
    if (m.kind === 'index') for (const c of m.manifests) await visit(c.digest, c.mediaType);
    else out.push(m);
  };
  for (const e of top.manifests) await visit(e.digest, e.mediaType);
  return out;
}

/** Entry names (in order) of a gzip'd tar blob and the text of the entries named in `wanted`. */
async function readTarLayer(file: string, wanted: string[]): Promise<{ entries: Array<{ name: string; type: string }>; files: Map<string, string> }> {
  const entries: Array<{ name: string; type: string }> = [];
  const files = new Map<string, string>();
  const extract = tar.extract();
  extract.on('entry', (header, stream, next) => {
    entries.push({ name: header.name, type: header.type ?? 'file' });
    const chunks: Buffer[] = [];
    stream.on('data', (c: unknown) => {
      if (!Buffer.isBuffer(c)) return;
      if (wanted.includes(header.name)) chunks.push(c);
    });
    stream.on('end', () => {
      if (wanted.includes(header.name)) files.set(header.name, Buffer.concat(chunks).toString('utf8'));
      next();
    });
  });
  await pipeline(createReadStream(file), createGunzip(), extract);
  return { entries, files };
}

async function uncompressedDigest(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), createGunzip(), new Writable({ write(chunk, _e, done) { hash.update(chunk); done(); } }));
  return `sha256:${hash.digest('hex')}`;
}

test('generates the same layout and digests from the same parameters, and other ones from another seed', async () => {
  const params = { components: 6, multiPayload: true };
  const a = await generateSampleRelease(path.join(work, 'det-a'), params);
  const b = await generateSampleRelease(path.join(work, 'det-b'), params);
  const c = await generateSampleRelease(path.join(work, 'det-c'), { ...params, seed: 'another seed' });
  assert.deepEqual(await fs.readFile(path.join(a.dir, 'index.json')), await fs.readFile(path.join(b.dir, 'index.json')));
  assert.deepEqual(a.images, b.images);
  assert.equal(a.releaseDigest, b.releaseDigest);
  assert.deepEqual(await fs.readdir(path.join(a.dir, 'blobs', 'sha256')), await fs.readdir(path.join(b.dir, 'blobs', 'sha256')));
  assert.notEqual(c.releaseDigest, a.releaseDigest);
  assert.notDeepEqual(c.components.map((x) => x.digest), a.components.map((x) => x.digest));

  // Stored (level 0) deflate blocks follow zlib's buffer sizes: multi-MiB layers must still be stable.
  const stored = { components: 2, componentLayerSize: 3 * 1024 * 1024 + 17, compressionLevel: 0 };
  const s1 = await generateSampleRelease(path.join(work, 'stored-a'), stored);
  const s2 = await generateSampleRelease(path.join(work, 'stored-b'), stored);
  assert.deepEqual(s1.images, s2.images);
  assert.ok(s1.totalBytes > 2 * 3 * 1024 * 1024, 'stored layers are at least as big as their content');
});

test('names every index.json entry by its full source reference and describes it in sample.json', async () => {
  const index = JSON.parse(await fs.readFile(path.join(release.dir, 'index.json'), 'utf8'));
  const names = index.manifests.map((e: any) => e.annotations[REF_NAME_ANNOTATION]);
  assert.deepEqual(names, release.images.map((i) => i.reference));
  assert.equal(names[0], 'quay.io/openshift-release-dev/ocp-release:4.16.0-sample-x86_64');
  assert.equal(names[1], 'quay.io/openshift-release-dev/ocp-release:4.16.0-sample-multi');
  assert.equal(release.components.length, 12);
  for (const c of release.components) assert.match(c.reference, /^quay\.io\/openshift-release-dev\/ocp-v4\.0-art-dev@sha256:[a-f0-9]{64}$/);
  assert.deepEqual(release.extraImages.map((e) => e.reference), ['registry.example.com/sample/tools:1.0', 'registry.example.com/sample/debug:2.1']);
  assert.equal(release.components.filter((c) => c.platforms.length === 2).length, 3, 'a quarter of 12 components are multi-arch');
  assert.equal(release.components.filter((c) => c.mediaType.startsWith('application/vnd.oci')).length, 6, 'half use OCI media types');
  for (const c of release.components) {
    assert.equal(c.platforms.length === 2, c.mediaType === MediaType.ociIndex || c.mediaType === MediaType.dockerManifestList);
  }
  const loaded = await loadSampleRelease(release.dir);
  assert.deepEqual(loaded, release);
  const files = await fs.readdir(path.join(release.dir, 'blobs', 'sha256'));
  assert.equal(release.blobs, files.length);
});

test("puts image-references second in the payload's last layer, as the documented ImageStream", async () => {
  const payload = await readImageManifest(release.dir, release.releaseDigest, MediaType.dockerManifest);
  assert.equal(payload.mediaType, MediaType.dockerManifest);
  const top = payload.layers[payload.layers.length - 1]!;
  const { entries, files } = await readTarLayer(blobPath(release.dir, top.digest), ['release-manifests/image-references', 'release-manifests/release-metadata']);
  assert.deepEqual(entries.slice(0, 3), [
    { name: 'release-manifests/', type: 'directory' },
    { name: 'release-manifests/image-references', type: 'file' },
    { name: 'release-manifests/release-metadata', type: 'file' },
  ]);
  assert.equal(entries.length, 5);
  for (const e of entries.slice(3)) assert.match(e.name, /^release-manifests\/0000_.*\.yaml$/);

  const stream = JSON.parse(files.get('release-manifests/image-references')!);
  assert.equal(stream.kind, 'ImageStream');
  assert.equal(stream.apiVersion, 'image.openshift.io/v1');
  assert.equal(stream.metadata.name, '4.16.0-sample');
  assert.deepEqual(
    stream.spec.tags.map((t: any) => [t.name, t.from.kind, t.from.name]),
    release.components.map((c) => [c.name, 'DockerImage', c.reference]),
  );
  assert.equal(stream.spec.tags[0].name, 'cluster-version-operator');
  assert.equal(typeof stream.spec.tags[0].annotations['io.openshift.build.commit.id'], 'string');
  const metadata = JSON.parse(files.get('release-manifests/release-metadata')!);
  assert.equal(metadata.kind, 'cincinnati-metadata-v0');
  assert.equal(metadata.version, '4.16.0-sample');

  const config = await readJson(release.dir, payload.config.digest);
  assert.equal(config.config.Labels['io.openshift.release'], '4.16.0-sample');
  assert.match(config.config.Labels['io.openshift.release.base-image-digest'], /^sha256:[a-f0-9]{64}$/);
  assert.equal(config.architecture, 'amd64');
});

test('lists as diff_ids the sha256 of every uncompressed layer, for every image and platform', async () => {
  const manifests = await allImageManifests(release.dir);
  assert.ok(manifests.length > release.images.length, 'multi-arch children are included');
  const architectures = new Set<string>();
  for (const m of manifests) {
    const config = await readJson(release.dir, m.config.digest);
    architectures.add(`${config.os}/${config.architecture}`);
    assert.equal(config.rootfs.diff_ids.length, m.layers.length);
    for (const [i, layer] of m.layers.entries()) {
      assert.equal(await uncompressedDigest(blobPath(release.dir, layer.digest)), config.rootfs.diff_ids[i], `layer ${layer.digest}`);
      const { size } = await fs.stat(blobPath(release.dir, layer.digest));
      assert.equal(size, layer.size);
    }
  }
  assert.deepEqual([...architectures].sort(), ['linux/amd64', 'linux/arm64']);
});

test('a component layer holds usr/share/<component>/data.bin of the requested size', async () => {
  const component = release.components.find((c) => c.platforms.length === 1)!;
  const manifest = await readImageManifest(release.dir, component.digest, component.mediaType);
  const own = manifest.layers[manifest.layers.length - 1]!;
  const { entries } = await readTarLayer(blobPath(release.dir, own.digest), []);
  assert.ok(entries.some((e) => e.name === `usr/share/${component.name}/data.bin`), JSON.stringify(entries));
  assert.equal(manifest.layers.length, 3 + 1, 'three shared base layers and one own layer');
});

test('is pushed to a docker-registry that skopeo can inspect and copy from; a second push uploads nothing', async (t) => {
  const registry = await startDockerRegistry();
  t.after(() => registry.stop());
  const first = await pushLayout(release.dir, registry.url, { concurrency: 4 });
  assert.equal(first.images, release.images.length);
  assert.ok(first.blobsMounted > 0, 'shared base layers are mounted across repositories');

  const tls = '--tls-verify=false';
  const payload = JSON.parse((await run('skopeo', ['inspect', tls, `docker://${registry.host}/openshift-release-dev/ocp-release:4.16.0-sample-x86_64`])).stdout);
  assert.equal(payload.Digest, release.releaseDigest);
  assert.equal(payload.Labels['io.openshift.release'], '4.16.0-sample');

  const multi = release.components.find((c) => c.platforms.length === 2)!;
  const raw = JSON.parse((await run('skopeo', ['inspect', tls, '--raw', `docker://${registry.host}/openshift-release-dev/ocp-v4.0-art-dev@${multi.digest}`])).stdout);
  assert.equal(raw.mediaType, multi.mediaType);
  assert.deepEqual(raw.manifests.map((m: any) => m.platform.architecture), ['amd64', 'arm64']);

  const multiPayload = JSON.parse((await run('skopeo', ['inspect', tls, '--raw', `docker://${registry.host}/openshift-release-dev/ocp-release:4.16.0-sample-multi`])).stdout);
  assert.equal(multiPayload.mediaType, MediaType.dockerManifestList);

  const tools = JSON.parse((await run('skopeo', ['inspect', tls, `docker://${registry.host}/sample/tools:1.0`])).stdout);
  assert.equal(tools.Digest, release.extraImages[0]!.digest);

  const single = release.components.find((c) => c.platforms.length === 1)!;
  const copyDir = path.join(work, 'copied');
  await run('skopeo', ['copy', '--src-tls-verify=false', `docker://${registry.host}/openshift-release-dev/ocp-v4.0-art-dev@${single.digest}`, `oci:${copyDir}`]);
  const copied = JSON.parse(await fs.readFile(path.join(copyDir, 'index.json'), 'utf8'));
  assert.equal(copied.manifests.length, 1);

  const second = await pushLayout(release.dir, registry.url);
  assert.equal(second.blobsUploaded, 0);
  assert.equal(second.blobsMounted, 0);
  assert.equal(second.bytesUploaded, 0);
});

test('a push to a registry that refuses names the image and the blob', async (t) => {
  const registry = await startDockerRegistry({ authYaml: 'auth:\n  htpasswd:\n    realm: test\n    path: /nonexistent-htpasswd' });
  t.after(() => registry.stop());
  await assert.rejects(pushLayout(release.dir, registry.url, { concurrency: 1 }), (err: unknown) => {
    assert.ok(isUserError(err));
    assert.equal(err.code, 'PUSH_REFUSED');
    assert.match(err.message, /blob sha256:[a-f0-9]{64} of image quay\.io\/openshift-release-dev\/ocp-release:4\.16\.0-sample-x86_64 to repository openshift-release-dev\/ocp-release/);
    assert.match(err.message, /HTTP 401/);
    return true;
  });
});

test('scales to 190 components (tiny layers), each with its own name', async () => {
  // How fast generation is belongs to bench/, not to a timed test.
  const big = await generateSampleRelease(path.join(work, 'big'), { components: 190, baseLayerSize: 1024, componentLayerSize: 1024, compressionLevel: 0 });
  assert.equal(big.components.length, 190);
  assert.equal(new Set(big.components.map((c) => c.name)).size, 190);
  assert.equal(big.components[189]!.name, 'sample-component-190');
  assert.equal(big.components.filter((c) => c.platforms.length === 2).length, Math.round(190 * 0.25));
});

test('returns an existing generation with the same parameters without rewriting it, and replaces one with other parameters', async () => {
  const dir = path.join(work, 'reuse');
  const first = await generateSampleRelease(dir, { components: 3 });
  const marker = path.join(dir, 'blobs', 'sha256', first.releaseDigest.slice(7));
  const before = (await fs.stat(marker)).mtimeMs;
  const again = await generateSampleRelease(dir, { components: 3 });
  assert.deepEqual(again, first);
  assert.equal((await fs.stat(marker)).mtimeMs, before);
  const changed = await generateSampleRelease(dir, { components: 4, seed: 'other' });
  assert.equal(changed.components.length, 4);
  assert.deepEqual((await fs.readdir(path.join(dir, 'blobs', 'sha256'))).length, changed.blobs, 'blobs of the older generation are gone');
});

test('rejects impossible parameters with a message naming the parameter', async () => {
  await assert.rejects(generateSampleRelease(path.join(work, 'bad'), { components: 0 }), /components=0/);
  await assert.rejects(generateSampleRelease(path.join(work, 'bad'), { multiArchShare: 1.5 }), /multiArchShare=1.5/);
  await assert.rejects(generateSampleRelease(path.join(work, 'bad'), { compressionLevel: 10 }), /compressionLevel=10/);
});
