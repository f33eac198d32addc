import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createBundle } from '../../../src/bundle/writer.js';
import { bundleSetKey, desiredImages, layersForPlatform, listSealFiles, OpenBundles, openNodeBundle, readBundles, removeBundleFromDir } from '../../../src/node/bundle-dir.js';
import { UserError } from '../../../src/util/errors.js';
import { blobContents, MemorySource, multiArchImage, testImage, testPlan } from '../../support/bundle-plans.js';

const REPO = { domain: 'quay.io', path: 'openshift-release-dev/ocp-v4.0-art-dev' };

test('a bundle carrying a signature is written and read as format version 2, and its signature is not a desired image', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-bundle-dir-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const app = testImage(REPO, 'app', [randomBytes(500)]);
  const sig = testImage(REPO, 'sig', [randomBytes(100)]);
  const signature = { ...sig, image: { ...sig.image, origin: 'signature' as const, subject: app.image.reference.digest, tag: `sha256-${app.image.reference.digest.slice(7)}.sig`, platforms: [] } };
  await createBundle({ plan: testPlan([app, signature]), source: new MemorySource(blobContents([app, signature])), output: path.join(dir, 'b.tar'), created: '2026-01-01T00:00:00Z' });
  const bundle = await openNodeBundle(path.join(dir, 'b.tar.seal.json'));
  t.after(() => bundle.opened.close());
  assert.equal(bundle.manifest.formatVersion, 2);
  assert.equal(bundle.opened.seal?.formatVersion, 2);
  assert.deepEqual(desiredImages([bundle]).map((i) => i.name), [`quay.io/${REPO.path}@${app.image.reference.digest}`]);
});

test('desired images: every image once, with its repository, bytes and layer sizes from the bundle manifest', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-bundle-dir-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const single = testImage(REPO, 'single', [randomBytes(1000), randomBytes(2000)]);
  const multi = multiArchImage(REPO);
  await createBundle({ plan: testPlan([single, multi]), source: new MemorySource(blobContents([single, multi])), output: path.join(dir, 'b.tar'), created: '2026-01-01T00:00:00Z' });
  const seals = await listSealFiles(dir);
  assert.deepEqual(seals, [path.join(dir, 'b.tar.seal.json')]);
  const bundle = await openNodeBundle(seals[0]!);
  t.after(() => bundle.opened.close());
  assert.equal(bundle.path, path.join(dir, 'b.tar'));
  assert.equal(bundleSetKey([bundle]), bundle.manifestDigest);

  const images = desiredImages([bundle, bundle]);
  assert.equal(images.length, 2, 'an image in two bundles counts once');
  const multiName = `quay.io/${REPO.path}@${multi.image.reference.digest}`;
  const all = images.find((i) => i.name === multiName)!;
  assert.equal(all.layers.length, 3, 'before narrowing: both platforms\' layers');
  assert.deepEqual(all.repository, REPO);

  const narrowed = await layersForPlatform(images, [bundle], { os: 'linux', architecture: 'arm64' });
  const arm = narrowed.find((i) => i.name === multiName)!;
  const armLayers = multi.blobs.filter((b) => b.role === 'layer').slice(1).map((b) => b.digest);
  assert.deepEqual(arm.layers.map((l) => l.digest), armLayers, 'only the arm64 child\'s layers');
  const untouched = narrowed.find((i) => i.name !== multiName)!;
  assert.equal(untouched.layers.length, 2);
  const none = await layersForPlatform(images, [bundle], { os: 'linux', architecture: 's390x' });
  assert.equal(none.find((i) => i.name === multiName)!.layers.length, 3, 'no matching child: the over-estimate stays');
});

test('removing a bundle from the bundle dir takes its seal first, then every volume and the signature, and no other bundle', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-bundle-dir-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const images = [testImage(REPO, 'a', [randomBytes(40_000)]), testImage(REPO, 'b', [randomBytes(40_000)])];
  for (const name of ['old.tar', 'new.tar']) {
    await createBundle({ plan: testPlan(images), source: new MemorySource(blobContents(images)), output: path.join(dir, name), created: '2026-01-01T00:00:00Z', splitSize: 32 * 1024 });
  }
  await writeFile(path.join(dir, 'old.tar.sig'), 'signature');
  const oldFiles = (await readdir(dir)).filter((f) => f.startsWith('old.tar'));
  assert.ok(oldFiles.length > 3, 'split into several volumes');
  const removed = await removeBundleFromDir(path.join(dir, 'old.tar.seal.json'));
  assert.equal(removed[0], path.join(dir, 'old.tar.seal.json'), 'the seal goes first');
  assert.deepEqual(removed.map((f) => path.basename(f)).sort(), oldFiles.sort());
  assert.deepEqual(await listSealFiles(dir), [path.join(dir, 'new.tar.seal.json')]);
  assert.ok((await readdir(dir)).every((f) => f.startsWith('new.tar')));

  // A volume that cannot be removed: the seal is already gone, so no sync ever reads the rest.
  await rm(path.join(dir, 'new.tar.002'));
  await mkdir(path.join(dir, 'new.tar.002', 'busy'), { recursive: true });
  await assert.rejects(removeBundleFromDir(path.join(dir, 'new.tar.seal.json')));
  assert.deepEqual(await listSealFiles(dir), []);
});

test('the bundles of one preload: each seal opened once however often a sync asks (a retirement\'s second sync too), each closed once', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-bundle-dir-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const images = [testImage(REPO, 'a', [randomBytes(1000)])];
  for (const name of ['a.tar', 'b.tar']) await createBundle({ plan: testPlan(images), source: new MemorySource(blobContents(images)), output: path.join(dir, name), created: '2026-01-01T00:00:00Z' });
  const opens: string[] = [];
  const closes: string[] = [];
  const bundles = new OpenBundles(async (seal) => {
    opens.push(seal);
    const bundle = await openNodeBundle(seal);
    return { ...bundle, opened: { ...bundle.opened, close: () => (closes.push(seal), bundle.opened.close()) } };
  });
  const seals = await listSealFiles(dir);
  for (let sync = 0; sync < 2; sync++) for (const seal of seals) await bundles.open(seal);
  const first = await bundles.open(seals[0]!);
  assert.equal(await bundles.open(seals[0]!), first, 'the same handle');
  assert.deepEqual(opens, seals);
  await bundles.close();
  assert.deepEqual(closes, seals);
});

test('a bundle whose volume is missing is refused by name (BUNDLE_VOLUME_MISSING), not by a raw ENOENT; reading the dir sets it aside', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-bundle-dir-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  for (const name of ['a.tar', 'b.tar']) {
    const image = testImage(REPO, name, [randomBytes(500)]);
    await createBundle({ plan: testPlan([image]), source: new MemorySource(blobContents([image])), output: path.join(dir, name), created: '2026-01-01T00:00:00Z' });
  }
  await rm(path.join(dir, 'b.tar'));
  await assert.rejects(openNodeBundle(path.join(dir, 'b.tar.seal.json')), (err: unknown) => {
    assert.ok(err instanceof UserError, String(err));
    assert.equal(err.code, 'BUNDLE_VOLUME_MISSING');
    assert.match(err.message, /bundle volume .*b\.tar is missing/);
    return true;
  });
  const { bundles, unreadable } = await readBundles(await listSealFiles(dir));
  assert.deepEqual(bundles.map((b) => path.basename(b.path)), ['a.tar']);
  assert.deepEqual(unreadable.map((u) => [path.basename(u.sealPath), u.why]), [['b.tar.seal.json', `bundle volume ${path.join(dir, 'b.tar')} is missing`]]);
});
