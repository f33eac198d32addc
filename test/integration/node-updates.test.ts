// A node through z-stream updates, end to end: three releases of the sample, each bundled by `bundle create
// --release`, pre-loaded one after the other into a private containerd 1.7 (which pins).
// - The node inventory lists exactly the blobs of the bundles in the bundle dir and the images in the runtime.
// - Retiring old pins ([pins] keep_releases): once the newest release is all pinned, the oldest one's own
//   images lose their pin (CRI and label) but stay in the runtime, shared images stay pinned, its bundle leaves
//   the bundle dir, and status says what was retired; an update that fails retires nothing.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { openBundle } from '../../src/bundle/reader.js';
import { readInventory } from '../../src/node/inventory.js';
import type { BundleManifest } from '../../src/bundle/format.js';
import { ContainerdImages, PINNED_LABEL } from '../../src/cri/containerd-images.js';
import type { CriImageService } from '../../src/cri/image-service.js';
import type { StatusJson } from '../../src/node/status.js';
import { generateSampleRelease, pushLayout, RELEASE_REPOSITORY } from '../../src/sample/index.js';
import { CONTAINERD_VARIANTS, type RunningContainerd } from '../support/containerd.js';
import { startDockerRegistry } from '../support/docker-registry.js';
import { startContainerdNode } from '../support/node-config.js';
import { assertNoInternalError, runCli } from '../support/cli.js';

const VERSIONS = ['4.16.0-sample', '4.16.1-sample', '4.16.2-sample'] as const;
const EXTRA = 'registry.example.com/sample/tools:1.0';

let work: string;
/** Per release, oldest first: its bundle's seal in the media dir and the bundle manifest. */
const bundles: Array<{ seal: string; file: string; manifest: BundleManifest; images: string[] }> = [];

before(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-retire-'));
  const registry = await startDockerRegistry();
  try {
    const conf = path.join(work, 'registries.conf');
    await writeFile(conf, ['quay.io', 'registry.example.com'].map((p) => `[[registry]]\nprefix = "${p}"\nlocation = "${registry.host}"\ninsecure = true\n`).join('\n'));
    const authfile = path.join(work, 'auth.json');
    await writeFile(authfile, '{"auths":{}}');
    await mkdir(path.join(work, 'media'));
    for (const [i, version] of VERSIONS.entries()) {
      // Z-streams of one seed: a fifth of the components rebuilt in each, the rest shared byte for byte.
      const sample = await generateSampleRelease(path.join(work, version), { version, changedShare: 0.2, extraImages: i === 0 ? 1 : 0 });
      await pushLayout(sample.dir, registry.url, { concurrency: 8 });
      const output = path.join(work, 'media', `ocp-${version}.tar`);
      // The oldest bundle also carries an extra image: it ages with its bundle.
      const created = await runCli(['bundle', 'create', '--release', `${RELEASE_REPOSITORY}@${sample.releaseDigest}`, ...(i === 0 ? ['--image', EXTRA] : []), '--platform', 'linux/amd64', '--registries-conf', conf, '--authfile', authfile, '--output', output]);
      assert.equal(created.code, 0, `bundle create failed:\n${created.stdout}${created.stderr}`);
      const opened = await openBundle(`${output}.seal.json`);
      try {
        bundles.push({ seal: `${output}.seal.json`, file: path.basename(output), manifest: opened.manifest, images: opened.manifest.images.map((m) => m.name).sort() });
      } finally {
        await opened.close();
      }
    }
  } finally {
    await registry.stop(); // the node is offline from here on
  }
});

after(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

const variant = CONTAINERD_VARIANTS.find((v) => v.pins)!;
const digestOf = (name: string) => name.slice(name.lastIndexOf('@') + 1);
/** Images of release `i` that no later release has. */
const ownImages = (i: number) => bundles[i]!.images.filter((n) => !bundles.slice(i + 1).some((b) => b.images.includes(n)));
const sharedImages = (i: number) => bundles[i]!.images.filter((n) => !ownImages(i).includes(n));

describe(`[pins] keep_releases on a ${variant.name} node`, { concurrency: false }, () => {
  let containerd: RunningContainerd;
  let cri: CriImageService;
  let records: ContainerdImages;
  let configFile: string;
  let bundleDir: string;

  before(async () => {
    ({ containerd, cri, configFile, bundleDir } = await startContainerdNode(path.join(work, 'node'), variant));
    records = await ContainerdImages.connect(containerd.endpoint);
  });

  after(async () => {
    records?.close();
    cri?.close();
    await containerd?.stop();
  });

  const preload = async (...args: string[]) => {
    const result = await runCli(['preload', '--config', configFile, '--json', ...args], { timeoutMs: 120_000 });
    assertNoInternalError(result, `preload ${args.join(' ')}`);
    return { ...result, json: result.code === 0 ? (JSON.parse(result.stdout) as { retired: { releases: Array<{ version: string; name: string }>; bundles: string[] }; pulled: string[]; unpinned: string[] }) : undefined };
  };
  const status = async (): Promise<StatusJson> => JSON.parse((await runCli(['status', '--config', configFile, '--json'])).stdout) as StatusJson;
  const pinnedByCri = async (names: readonly string[]) => Promise.all(names.map(async (n) => (await cri.imageStatus(n))?.pinned === true));
  const labelled = async (names: readonly string[]) => (await records.recordsFor(names.map(digestOf))).filter((r) => r.labels[PINNED_LABEL] !== undefined).map((r) => r.name);
  const inRuntime = async () => new Set((await cri.listImages()).flatMap((i) => i.repoDigests));
  const bundleFiles = async () => (await readdir(bundleDir)).filter((f) => !f.startsWith('.')).sort();

  test('bundles made with --release record the release version from the payload', () => {
    assert.deepEqual(bundles.map((b) => b.manifest.releases?.map((r) => r.version)), VERSIONS.map((v) => [v]));
    assert.ok(ownImages(0).length > 1 && sharedImages(0).length > 1, 'the z-streams share some images and not others');
  });

  test('two releases with keep_releases = 2: both stay pinned, nothing retired', async () => {
    for (const b of bundles.slice(0, 2)) {
      const result = await preload(b.seal);
      assert.equal(result.code, 0, result.stderr);
      assert.deepEqual(result.json!.retired, { releases: [], bundles: [] });
    }
    const both = [...new Set([...bundles[0]!.images, ...bundles[1]!.images])];
    assert.deepEqual(await pinnedByCri(both), both.map(() => true));
  });

  test('inventory writes the blobs of every bundle in the bundle dir, once each, and the images in the runtime', async () => {
    const output = path.join(work, 'node', 'inventory.json');
    const result = await runCli(['inventory', '--config', configFile, '--output', output, '--node-name', 'worker-0', '--json']);
    assertNoInternalError(result, 'inventory');
    assert.equal(result.code, 0, result.stderr);
    const inventory = await readInventory(output);
    const blobs = new Map(bundles.slice(0, 2).flatMap((b) => b.manifest.blobs.map((x) => [x.digest as string, x.size] as const)));
    assert.deepEqual(inventory.blobs.map((b) => [b.digest, b.size]), [...blobs].sort(([a], [b]) => (a < b ? -1 : 1)));
    assert.ok(blobs.size < bundles[0]!.manifest.blobs.length + bundles[1]!.manifest.blobs.length, 'the z-streams share blobs, listed once');
    assert.deepEqual(inventory.bundles.map((b) => [path.basename(b.path), b.releases.map((r) => r.version)]), [[bundles[0]!.file, [VERSIONS[0]]], [bundles[1]!.file, [VERSIONS[1]]]]);
    const listed = (await cri.listImages()).map((i) => [i.id, [...i.repoDigests].sort()]).sort();
    assert.deepEqual(inventory.runtime.images.map((i) => [i.id, i.repoDigests]).sort(), listed, 'exactly what CRI ListImages reports');
    const present = new Set(inventory.runtime.images.flatMap((i) => i.repoDigests));
    assert.deepEqual([...bundles[0]!.images, ...bundles[1]!.images].filter((n) => !present.has(n)), [], 'every pre-loaded image is among them');
    assert.equal(inventory.node.name, 'worker-0');
    assert.match(inventory.runtime.version, /^1\.7\./);
    const summary = JSON.parse(result.stdout) as Record<string, unknown>;
    assert.deepEqual(summary, { schemaVersion: 1, output, node: 'worker-0', generatedAt: inventory.generatedAt, bundles: 2, blobs: blobs.size, runtimeImages: listed.length });
  });

  test('a failed update (the newest release not pinned) retires nothing', async () => {
    // Not enough room for the new release: the sync fails before pulling anything.
    const result = await preload('--reserve', '1000TiB', bundles[2]!.seal);
    assert.equal(result.code, 1, result.stdout);
    assert.ok((await bundleFiles()).includes(`${bundles[0]!.file}.seal.json`), 'the oldest bundle is still there');
    const s = await status();
    assert.deepEqual([s.retired.releases, s.retired.bundles], [[], []]);
    assert.deepEqual(await pinnedByCri(bundles[0]!.images), bundles[0]!.images.map(() => true), 'the old pins are all still there');
  });

  test('once the newest release is all pinned, the oldest one beyond keep_releases = 2 is retired: own images unpinned, shared stay, bundle removed, nothing deleted', async () => {
    const result = await preload();
    assert.equal(result.code, 0, result.stderr);
    const own = ownImages(0);
    const extra = bundles[0]!.manifest.images.find((i) => i.origin === 'extra')!.name;
    assert.deepEqual(result.json!.retired, { releases: [{ name: bundles[0]!.manifest.releases![0]!.name, version: VERSIONS[0] }], bundles: [path.join(bundleDir, bundles[0]!.file)] });
    assert.deepEqual([...result.json!.unpinned].sort(), own);
    assert.ok(result.json!.unpinned.includes(extra), 'the extra image of the removed bundle left with it');

    assert.deepEqual(await pinnedByCri(own), own.map(() => false), 'CRI ImageStatus: the retired images are not pinned');
    assert.deepEqual(await labelled(own), [], 'their containerd label is gone');
    const present = await inRuntime();
    assert.deepEqual(own.filter((n) => !present.has(n)), [], 'nothing was deleted from the runtime');
    const kept = [...new Set([...sharedImages(0), ...bundles[1]!.images, ...bundles[2]!.images])];
    assert.deepEqual(await pinnedByCri(kept), kept.map(() => true), 'shared images and the kept releases stay pinned');
    assert.deepEqual((await bundleFiles()).filter((f) => f.startsWith(bundles[0]!.file)), [], 'the oldest bundle left the bundle dir');

    const s = await status();
    assert.deepEqual(s.retired.releases.map((r) => [r.version, r.name, r.bundles]), [[VERSIONS[0], bundles[0]!.manifest.releases![0]!.name, [path.join(bundleDir, bundles[0]!.file)]]]);
    assert.deepEqual(s.retired.bundles.map((b) => b.path), [path.join(bundleDir, bundles[0]!.file)]);
    assert.ok(s.retired.releases.every((r) => !Number.isNaN(Date.parse(r.retiredAt))));
    assert.deepEqual(s.unpinned.filter((u) => own.includes(u.name) && u.wasPinned && u.unpinnedAt !== null).length, own.length);
    assert.deepEqual(s.bundles.map((b) => b.release), [VERSIONS[1], VERSIONS[2]]);
    const text = await runCli(['status', '--config', configFile]);
    assert.match(text.stdout, /^Retired releases \(1: beyond keep_releases = 2; their own images unpinned, not deleted\):$/m);
    assert.match(text.stdout, new RegExp(`^  ${VERSIONS[0].replace(/\./g, '\\.')} +quay\\.io/`, 'm'));
    assert.match(text.stdout, /^Removed bundles \(1: no kept release needed them\):$/m);
  });

  test('keep_releases = 1 retires the previous release too; a further sync retires nothing more', async () => {
    const result = await preload('--keep-releases', '1');
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(result.json!.retired.releases.map((r) => r.version), [VERSIONS[1]]);
    const own = ownImages(1);
    assert.deepEqual(await pinnedByCri(own), own.map(() => false));
    assert.deepEqual(await pinnedByCri(bundles[2]!.images), bundles[2]!.images.map(() => true));
    assert.deepEqual(await bundleFiles(), [`${bundles[2]!.file}`, `${bundles[2]!.file}.seal.json`]);
    const again = await preload('--keep-releases', '1');
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual([again.json!.retired, again.json!.pulled, again.json!.unpinned], [{ releases: [], bundles: [] }, [], []]);
    assert.deepEqual((await status()).retired.releases.map((r) => r.version), [VERSIONS[1], VERSIONS[0]]);
  });
});
