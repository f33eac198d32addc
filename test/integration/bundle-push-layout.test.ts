// `bundle push --to oci:DIR`: a bundle into an OCI image layout that skopeo reads back image by image, a
// re-run that writes nothing, a killed or failed push that a re-run completes, tags that move, a layout read
// back by LayoutSource (layout → layout), and a damaged layout manifest named when the sample push reads it.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { appendFile, copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { BundleManifest } from '../../src/bundle/format.js';
import { REF_NAME_ANNOTATION } from '../../src/bundle/oci-layout.js';
import { copyImages } from '../../src/copy/copy.js';
import { LAYOUT_WORK_DIR, LayoutDestination } from '../../src/copy/layout-destination.js';
import { LayoutSource, layoutImages } from '../../src/copy/layout-source.js';
import { layoutBlobPath, readLayoutIndex } from '../../src/oci/image-layout.js';
import { MediaType } from '../../src/oci/media-types.js';
import { repositoryName } from '../../src/oci/reference.js';
import { pushLayout } from '../../src/sample/index.js';
import { errorKind } from '../../src/util/error-codes.js';
import { isUserError } from '../../src/util/errors.js';
import { assertNoInternalError, runCli, startCli } from '../support/cli.js';
import { flipByte } from '../support/damage.js';
import { startDockerRegistry } from '../support/docker-registry.js';
import { buildSampleBundle, buildTinyBundle, bundleManifestOf, largestBlobOf, testImage, type SampleBundle } from '../support/mirror-fixture.js';

const run = promisify(execFile);
const OCI_TYPES: readonly string[] = [MediaType.ociManifest, MediaType.ociIndex];
const APP = { domain: 'registry.example.com', path: 'sample/app' };

let work: string;
let bundle: SampleBundle;
let manifest: BundleManifest;

before(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-push-layout-'));
  bundle = await buildSampleBundle(path.join(work, 'fixture'));
  manifest = await bundleManifestOf(bundle.sealPath);
});

after(async () => {
  await rm(work, { recursive: true, force: true });
});

const sha256 = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** The names index.json gives, each with the digest it names. */
async function layoutNames(dir: string): Promise<Map<string, string>> {
  const layout = await readLayoutIndex(dir);
  return new Map(layout.index.manifests.map((entry) => [entry.annotations?.[REF_NAME_ANNOTATION] ?? '', entry.digest]));
}

/** What `skopeo inspect --raw oci:DIR:NAME` returns, as its digest. */
async function skopeoManifestDigest(dir: string, name: string): Promise<string> {
  const raw = await run('skopeo', ['inspect', '--raw', `oci:${dir}:${name}`], { encoding: 'buffer', maxBuffer: 16 << 20 });
  return sha256(raw.stdout);
}

/**
 * `skopeo copy oci:DIR:NAME dir:OUT` (the host's platform of an index): the manifest it wrote is one of
 * `manifests`, and every blob file hashes to its name.
 */
async function assertSkopeoCopies(dir: string, name: string, manifests: readonly string[]): Promise<void> {
  const out = await mkdtemp(path.join(work, 'skopeo-'));
  await run('skopeo', ['copy', '--quiet', `oci:${dir}:${name}`, `dir:${out}`], { timeout: 60_000 });
  assert.ok(manifests.includes(sha256(await readFile(path.join(out, 'manifest.json')))), `${name}: skopeo wrote another manifest`);
  for (const file of (await readdir(out)).filter((f) => /^[0-9a-f]{64}$/.test(f))) {
    assert.equal(sha256(await readFile(path.join(out, file))), `sha256:${file}`, `${name}: blob ${file}`);
  }
  await rm(out, { recursive: true, force: true });
}

test('pushes every image into an OCI layout that skopeo reads back by digest and by tag, byte for byte; a re-run writes nothing', async () => {
  const dir = path.join(work, 'layout');
  const result = await runCli(['bundle', 'push', bundle.sealPath, '--to', `oci:${dir}`, '--json']);
  assertNoInternalError(result, 'bundle push --to oci:');
  assert.equal(result.code, 0, result.stderr);
  const summary = JSON.parse(result.stdout);
  assert.equal(summary.target, `oci:${dir}`);
  assert.equal(summary.targetKind, 'layout');
  assert.equal(summary.images, manifest.images.length);
  assert.ok(summary.blobsSent > 0 && summary.blobsPresent === 0);
  assert.deepEqual(summary.sparseIndexesRefused, [], 'a layout takes an index with only some of its platforms');

  const names = await layoutNames(dir);
  for (const image of manifest.images) {
    const byDigest = `${image.repository}@${image.digest}`;
    assert.equal(names.get(byDigest), image.digest, `${byDigest} is named in index.json`);
    if (image.tag !== undefined) assert.equal(names.get(`${image.repository}:${image.tag}`), image.digest);
    // containers/image finds a name only on an entry of an OCI media type; Docker-typed images are checked by the round trip below.
    if (!OCI_TYPES.includes(image.mediaType)) continue;
    assert.equal(await skopeoManifestDigest(dir, byDigest), image.digest);
    await assertSkopeoCopies(dir, byDigest, image.manifests);
    if (image.tag !== undefined) assert.equal(await skopeoManifestDigest(dir, `${image.repository}:${image.tag}`), image.digest);
  }
  const kinds = new Set(manifest.images.map((image) => `${OCI_TYPES.includes(image.mediaType)}:${image.tag !== undefined}`));
  assert.deepEqual([...kinds].sort(), ['false:false', 'false:true', 'true:false', 'true:true'], 'OCI and Docker typed images, with and without tags');

  const indexBefore = await stat(path.join(dir, 'index.json'));
  const again = await runCli(['bundle', 'push', bundle.sealPath, '--to', `oci:${dir}`, '--json']);
  assert.equal(again.code, 0, again.stderr);
  const second = JSON.parse(again.stdout);
  assert.equal(second.blobsSent + second.blobsMounted + second.manifestsPut + second.tagsPut + second.bytesSent, 0);
  assert.equal((await stat(path.join(dir, 'index.json'))).mtimeMs, indexBefore.mtimeMs, 'index.json is not rewritten');
  assert.deepEqual((await readdir(dir)).sort(), ['blobs', 'index.json', 'oci-layout'], `no ${LAYOUT_WORK_DIR} or temp file is left`);
});

test('LayoutSource reads what the layout destination wrote: layout → layout keeps every name and blob', async () => {
  const from = path.join(work, 'round-trip-from');
  const to = path.join(work, 'round-trip-to');
  const pushed = await runCli(['bundle', 'push', bundle.sealPath, '--to', `oci:${from}`, '--quiet']);
  assert.equal(pushed.code, 0, pushed.stderr);
  const destination = await LayoutDestination.open(to);
  try {
    const images = await layoutImages(from, repositoryName);
    destination.nameImages(images);
    const summary = await copyImages(new LayoutSource(from), destination, images);
    assert.ok(summary.blobsSent > 0);
  } finally {
    await destination.close();
  }
  assert.deepEqual([...(await layoutNames(to))].sort(), [...(await layoutNames(from))].sort());
  assert.deepEqual((await readdir(path.join(to, 'blobs', 'sha256'))).sort(), (await readdir(path.join(from, 'blobs', 'sha256'))).sort());
  // The copy checked every byte against its digest on the way; skopeo reads an OCI-typed image of the copy.
  const oci = manifest.images.find((image) => image.mediaType === MediaType.ociManifest)!;
  await assertSkopeoCopies(to, `${oci.repository}@${oci.digest}`, oci.manifests);
});

test('a damaged blob stops the push (BUNDLE_VERIFY_FAILED) and never reaches the layout; after the fix a re-run completes', async () => {
  const copyDir = path.join(work, 'damaged');
  await mkdir(copyDir, { recursive: true });
  const tar = path.join(copyDir, path.basename(bundle.tarPath));
  const seal = path.join(copyDir, path.basename(bundle.sealPath));
  await copyFile(bundle.tarPath, tar);
  await copyFile(bundle.sealPath, seal);
  const { digest, offset, size } = await largestBlobOf(tar);
  await flipByte(tar, offset + size - 10);

  const dir = path.join(work, 'layout-damaged');
  const failed = await runCli(['bundle', 'push', seal, '--to', `oci:${dir}`]);
  assertNoInternalError(failed, 'bundle push of a damaged bundle');
  assert.equal(failed.code, 1);
  assert.ok(failed.stderr.includes(`blob ${digest} is damaged`) && failed.stderr.includes(`not committed at oci:${dir}`), failed.stderr);
  assert.match(failed.stderr, /found while pushing image quay\.io\/[^ ;)]+\)/, 'the image comes from the copy error’s subject');
  await assert.rejects(stat(layoutBlobPath(dir, digest)), { code: 'ENOENT' });
  await assert.rejects(stat(path.join(dir, LAYOUT_WORK_DIR)), { code: 'ENOENT' }, 'no partial file is left');

  await copyFile(bundle.tarPath, tar);
  const fixed = await runCli(['bundle', 'push', seal, '--to', `oci:${dir}`, '--json']);
  assert.equal(fixed.code, 0, fixed.stderr);
  assert.ok(JSON.parse(fixed.stdout).blobsPresent > 0, 'what was written before stays');
  assert.equal(sha256(await readFile(layoutBlobPath(dir, digest))), digest);
  assert.equal((await layoutNames(dir)).size, (await layoutNames(path.join(work, 'layout'))).size);
});

test('a push killed mid-blob leaves no blob file half-written; the re-run removes its partial file and completes', async () => {
  const big = testImage(APP, 'big', [randomBytes(48 << 20)], { tag: '1.0' });
  const seal = await buildTinyBundle(path.join(work, 'big', 'big.tar'), [big]);
  const dir = path.join(work, 'layout-killed');
  const partials = path.join(dir, LAYOUT_WORK_DIR);
  const killed = startCli(['bundle', 'push', seal, '--to', `oci:${dir}`, '--concurrency', '1', '--quiet']);
  let sawPartial = false;
  for (let i = 0; i < 3000 && killed.child.exitCode === null && !sawPartial; i++) {
    sawPartial = (await readdir(partials).catch(() => [])).some((f) => f.endsWith('.partial'));
    if (!sawPartial) await new Promise((resolve) => setTimeout(resolve, 5));
  }
  killed.child.kill('SIGKILL');
  await killed.done;
  assert.ok(sawPartial, 'the push was killed while a blob was being written');
  const layer = big.blobs.find((b) => b.role === 'layer')!;
  await assert.rejects(stat(layoutBlobPath(dir, layer.digest)), { code: 'ENOENT' }, 'the killed blob is not at its digest path');

  const rerun = await runCli(['bundle', 'push', seal, '--to', `oci:${dir}`, '--json']);
  assertNoInternalError(rerun, 'bundle push after a kill');
  assert.equal(rerun.code, 0, rerun.stderr);
  await assert.rejects(stat(partials), { code: 'ENOENT' }, 'the stale partial file is gone');
  assert.equal(await skopeoManifestDigest(dir, `${repositoryName(APP)}:1.0`), big.image.reference.digest);
});

test('pushes into a layout another tool wrote and a second push keeps every image; a tag that moves names the new image, the old stays by digest', async () => {
  const first = testImage(APP, 'first', [Buffer.from('first layer')], { tag: 'stable' });
  const tools = testImage({ domain: 'registry.example.com', path: 'sample/tools' }, 'tools', [Buffer.from('tools layer')], { tag: '1.0' });
  const second = testImage(APP, 'second', [Buffer.from('second layer')], { tag: 'stable' });
  const dir = path.join(work, 'layout-tags');
  const app = repositoryName(APP);
  for (const [name, images] of [['one', [first, tools]], ['two', [second]]] as const) {
    const seal = await buildTinyBundle(path.join(work, `tags-${name}`, `${name}.tar`), images);
    // skopeo writes the layout first, under a name of its own: the pushes must keep it.
    if (name === 'one') await run('skopeo', ['copy', '--quiet', `oci-archive:${seal.replace(/\.seal\.json$/, '')}:${app}@${first.image.reference.digest}`, `oci:${dir}:foreign`]);
    const pushed = await runCli(['bundle', 'push', seal, '--to', `oci:${dir}`, '--quiet']);
    assert.equal(pushed.code, 0, pushed.stderr);
  }
  const names = await layoutNames(dir);
  assert.ok(names.has('foreign'), 'the entry skopeo wrote is kept');
  await run('skopeo', ['inspect', '--raw', `oci:${dir}:foreign`]);
  assert.equal(names.get(`${app}:stable`), second.image.reference.digest, 'the moved tag names the new image');
  assert.equal(names.get(`${app}@${first.image.reference.digest}`), first.image.reference.digest, 'the old image stays by digest');
  assert.equal(names.get('registry.example.com/sample/tools:1.0'), tools.image.reference.digest, 'the first push’s other image stays');
  assert.equal(await skopeoManifestDigest(dir, `${app}:stable`), second.image.reference.digest);
});

test('a second push into a layout that a running push holds is refused (BUNDLE_BUSY), exit 1', async () => {
  const dir = path.join(work, 'layout-busy');
  await mkdir(path.join(dir, LAYOUT_WORK_DIR), { recursive: true });
  await writeFile(path.join(dir, LAYOUT_WORK_DIR, 'lock'), `${process.pid}\n`); // this test runner: alive
  const result = await runCli(['bundle', 'push', bundle.sealPath, '--to', `oci:${dir}`]);
  assertNoInternalError(result, 'bundle push into a busy layout');
  assert.equal(result.code, 1);
  assert.ok(result.stderr.includes(`another pin-preload (pid ${process.pid}) is writing oci:${dir}`), result.stderr);
  await assert.rejects(stat(path.join(dir, 'index.json')), { code: 'ENOENT' });
});

test('--to oci:DIR refuses registry-only options and a :REF with a usage error (exit 2)', async () => {
  for (const args of [['--authfile', 'auth.json'], ['--dest-tls-verify=false'], ['--dest-cert-dir', work]]) {
    const result = await runCli(['bundle', 'push', bundle.sealPath, '--to', `oci:${path.join(work, 'never')}`, ...args]);
    assertNoInternalError(result, `bundle push --to oci: ${args.join(' ')}`);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, new RegExp(`${args[0]!.split('=')[0]} applies to a registry target only`));
  }
  const withRef = await runCli(['bundle', 'push', bundle.sealPath, '--to', `oci:${path.join(work, 'never')}:latest`]);
  assert.equal(withRef.code, 2, withRef.stderr);
  assert.match(withRef.stderr, /give no :REF/);
  await assert.rejects(stat(path.join(work, 'never')), { code: 'ENOENT' });
});

test('a layout manifest whose bytes do not match its digest is DIGEST_MISMATCH naming the image, the manifest and the layout; one that is not a manifest is LAYOUT_INVALID', async (t) => {
  const registry = await startDockerRegistry();
  t.after(() => registry.stop());
  const image = testImage(APP, 'app', [Buffer.from('app layer')], { tag: '2.0' });
  const dir = path.join(work, 'layout-corrupt');
  const pushed = await runCli(['bundle', 'push', await buildTinyBundle(path.join(work, 'corrupt', 'c.tar'), [image]), '--to', `oci:${dir}`, '--quiet']);
  assert.equal(pushed.code, 0, pushed.stderr);
  const digest = image.image.reference.digest;
  const file = layoutBlobPath(dir, digest);
  const original = await readFile(file);

  await appendFile(file, '\n'); // still a manifest, no longer the one its digest names
  const mismatch = await pushLayout(dir, registry.url).then(() => undefined, (e: unknown) => e);
  assert.ok(isUserError(mismatch) && mismatch.code === 'DIGEST_MISMATCH', `got ${String(mismatch)}`);
  assert.equal(errorKind(mismatch.code).exit, 1);
  assert.deepEqual(mismatch.subject, { kind: 'image', name: `${repositoryName(APP)}@${digest}` });
  assert.ok(mismatch.message.includes(`manifest ${digest} of image ${repositoryName(APP)}@${digest} read from oci:${dir}`), mismatch.message);

  await writeFile(file, 'not a manifest');
  const invalid = await pushLayout(dir, registry.url).then(() => undefined, (e: unknown) => e);
  assert.ok(isUserError(invalid) && invalid.code === 'LAYOUT_INVALID', `got ${String(invalid)}`);
  assert.match(invalid.message, new RegExp(`manifest ${digest}: invalid manifest: not JSON`));

  await writeFile(file, original);
  assert.equal((await pushLayout(dir, registry.url)).images, 2, 'by digest and by tag');
});
