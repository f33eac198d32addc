// Delta bundles (`bundle create --since PREV`), end to end on three z-streams of the sample in a real registry:
// - the delta holds exactly the blobs PREV lacks plus every manifest and config, and records its base;
// - verify names the base; import without the base fails naming it and leaves nothing;
// - with the base imported, `pin-preload serve` serves the new release across base + delta (skopeo copies
//   every image by digest); deltas chain; --since takes a node inventory, and records as bases only the
//   bundles it leaves layers to (served with only those present);
// - preload through a private containerd 1.7 pulls and pins the new releases across base + delta, and retiring
//   keeps the base a kept delta needs; `pin-preload inventory` of that node feeds --since;
// - a removed base makes the delta a registered-but-not-served bundle naming the base, and a sync fails naming it.

import { describe, test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { openBundle } from '../../src/bundle/reader.js';
import type { BundleManifest } from '../../src/bundle/format.js';
import { sha256Of } from '../../src/oci/digest.js';
import { BundleStore } from '../../src/mirror/bundle-store.js';
import { listSealFiles, readNodeBundle, removeBundleFromDir } from '../../src/node/bundle-dir.js';
import { planRetirement } from '../../src/node/retire.js';
import { generateSampleRelease, pushLayout, RELEASE_REPOSITORY } from '../../src/sample/index.js';
import { startDockerRegistry, type RunningRegistry } from '../support/docker-registry.js';
import type { CriImageService } from '../../src/cri/image-service.js';
import { CONTAINERD_VARIANTS, type RunningContainerd } from '../support/containerd.js';
import { startContainerdNode, writeContainerdNodeConfig } from '../support/node-config.js';
import { freePort, waitFor } from '../support/ports.js';
import { assertNoInternalError, CLI, runCli } from '../support/cli.js';

const run = promisify(execFile);
const VERSIONS = ['4.16.0-sample', '4.16.1-sample', '4.16.2-sample'] as const;

interface Made {
  readonly seal: string;
  readonly file: string;
  readonly manifest: BundleManifest;
  readonly manifestDigest: string;
}

let work: string;
let registry: RunningRegistry;
let conf: string;
let authfile: string;
const releases: string[] = [];

async function create(version: number, name: string, ...args: string[]): Promise<Made> {
  const output = path.join(work, 'media', name);
  const result = await runCli(['bundle', 'create', '--release', releases[version]!, '--platform', 'linux/amd64', '--registries-conf', conf, '--authfile', authfile, '--output', output, '--quiet', ...args]);
  assertNoInternalError(result, `bundle create ${name}`);
  assert.equal(result.code, 0, `bundle create ${name} failed:\n${result.stdout}${result.stderr}`);
  const opened = await openBundle(`${output}.seal.json`);
  try {
    return { seal: `${output}.seal.json`, file: name, manifest: opened.manifest, manifestDigest: sha256Of(opened.manifestBytes) };
  } finally {
    await opened.close();
  }
}

const bytesOf = (m: BundleManifest) => m.blobs.reduce((n, b) => n + b.size, 0);

/** Runs `pin-preload serve` over `dir` and copies every image of `bundles` out of it by digest with skopeo. */
async function copyEveryImage(t: TestContext, dir: string, state: string, bundles: readonly Made[]): Promise<void> {
  const host = `127.0.0.1:${await freePort()}`;
  let stderr = '';
  const serve: ChildProcess = spawn(process.execPath, [CLI, 'serve', '--bundle-dir', dir, '--listen', host, '--state', state], { stdio: ['ignore', 'ignore', 'pipe'] });
  serve.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise((resolve) => serve.once('exit', resolve));
  t.after(async () => {
    if (serve.exitCode === null) serve.kill('SIGKILL');
    await exited;
  });
  await waitFor(`serve on ${host}`, async () => {
    if (serve.exitCode !== null) throw new Error(`serve exited: ${stderr}`);
    return (await fetch(`http://${host}/v2/`)).status === 200;
  });
  const copies = await mkdtemp(path.join(work, 'copy-'));
  for (const made of bundles) {
    for (const image of made.manifest.images) {
      const out = path.join(copies, `${made.file}-${image.digest.slice(7, 19)}`);
      const name = image.name.replace(/^quay\.io\//, '');
      await run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${host}/${name}`, `dir:${out}`], { timeout: 60_000 });
      // skopeo checks every blob's digest as it copies: a missing base layer would fail it.
      assert.ok((await readdir(out)).includes('manifest.json'));
    }
  }
}

before(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-delta-'));
  registry = await startDockerRegistry();
  conf = path.join(work, 'registries.conf');
  await writeFile(conf, `[[registry]]\nprefix = "quay.io"\nlocation = "${registry.host}"\ninsecure = true\n`);
  authfile = path.join(work, 'auth.json');
  await writeFile(authfile, '{"auths":{}}');
  await mkdir(path.join(work, 'media'));
  for (const version of VERSIONS) {
    // Z-streams of one seed: a fifth of the components rebuilt in each, the rest shared byte for byte.
    const sample = await generateSampleRelease(path.join(work, version), { version, changedShare: 0.2 });
    await pushLayout(sample.dir, registry.url, { concurrency: 8 });
    releases.push(`${RELEASE_REPOSITORY}@${sample.releaseDigest}`);
  }
});

after(async () => {
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

const variant = CONTAINERD_VARIANTS.find((v) => v.pins)!;

describe('delta bundles', { concurrency: false }, () => {
  let containerd: RunningContainerd;
  let cri: CriImageService;
  let full0: Made;
  let full1: Made;
  let delta1: Made;
  let delta2: Made;
  let configFile: string;
  let bundleDir: string;

  before(async () => {
    full0 = await create(0, 'ocp-0.tar');
    full1 = await create(1, 'ocp-1-full.tar');
    delta1 = await create(1, 'ocp-1-delta.tar', '--since', full0.seal);
    delta2 = await create(2, 'ocp-2-delta.tar', '--since', path.join(work, 'media', 'ocp-1-delta.tar'));
    ({ containerd, cri, configFile, bundleDir } = await startContainerdNode(path.join(work, 'node'), variant));
  });

  after(async () => {
    cri?.close();
    await containerd?.stop();
  });

  test('a delta holds only the layers its base lacks, and every manifest and config of the new release; it records its base', () => {
    const had = new Set(full0.manifest.blobs.map((b) => b.digest as string));
    const expected = full1.manifest.blobs.filter((b) => b.role !== 'layer' || !had.has(b.digest));
    assert.deepEqual(delta1.manifest.blobs.map((b) => b.digest), expected.map((b) => b.digest));
    assert.equal(bytesOf(delta1.manifest), expected.reduce((n, b) => n + b.size, 0));
    const fresh = full1.manifest.blobs.filter((b) => !had.has(b.digest));
    assert.ok(fresh.length > 0 && delta1.manifest.blobs.length < full1.manifest.blobs.length, 'some blobs new, some left out');
    for (const role of ['manifest', 'config'] as const) {
      assert.deepEqual(delta1.manifest.blobs.filter((b) => b.role === role).map((b) => b.digest), full1.manifest.blobs.filter((b) => b.role === role).map((b) => b.digest), `every ${role} carried`);
    }
    assert.deepEqual(delta1.manifest.images, full1.manifest.images, 'the same images, so the index is complete');
    assert.deepEqual(delta1.manifest.bases, [{ name: 'ocp-0.tar', manifestDigest: full0.manifestDigest }]);
    assert.deepEqual(delta1.manifest.baseBlobs, full1.manifest.blobs.filter((b) => b.role === 'layer' && had.has(b.digest)).map((b) => b.digest).sort());
    assert.equal(delta1.manifest.formatVersion, 2);
    assert.equal(full1.manifest.formatVersion, 1);
  });

  test('bundle plan --since reports new, carried and left-out bytes, in text and JSON', async () => {
    const args = ['bundle', 'plan', '--release', releases[1]!, '--platform', 'linux/amd64', '--registries-conf', conf, '--authfile', authfile, '--since', full0.seal];
    const json = await runCli([...args, '--json']);
    assert.equal(json.code, 0, json.stderr);
    const plan = JSON.parse(json.stdout) as { delta: { sinceKind: string; bases: unknown[]; newBytes: number; carriedBytes: number; newBlobs: number; carriedBlobs: number; baseBytes: number }; totals: { uniqueBytes: number } };
    const had = new Set(full0.manifest.blobs.map((b) => b.digest as string));
    const fresh = full1.manifest.blobs.filter((b) => !had.has(b.digest));
    assert.equal(plan.delta.sinceKind, 'bundle');
    assert.deepEqual(plan.delta.bases, [{ name: 'ocp-0.tar', manifestDigest: full0.manifestDigest }]);
    assert.equal(plan.delta.newBlobs, fresh.length);
    assert.equal(plan.delta.newBytes, fresh.reduce((n, b) => n + b.size, 0));
    assert.equal(plan.delta.newBytes + plan.delta.carriedBytes, bytesOf(delta1.manifest));
    assert.equal(plan.totals.uniqueBytes, bytesOf(delta1.manifest));
    assert.equal(plan.delta.newBytes + plan.delta.carriedBytes + plan.delta.baseBytes, bytesOf(full1.manifest));
    const text = await runCli(args);
    assert.match(text.stdout, new RegExp(`^Delta since: .*ocp-0\\.tar\\.seal\\.json \\(bundle\\); base ocp-0\\.tar \\(${full0.manifestDigest}\\)$`, 'm'));
    assert.match(text.stdout, new RegExp(`^  New: +${plan.delta.newBlobs} blobs, .*\\(${plan.delta.newBytes} bytes\\)`, 'm'));
    assert.match(text.stdout, new RegExp(`^  Carried: +${plan.delta.carriedBlobs} manifests and configs`, 'm'));
  });

  test('a spec\'s since (relative to the spec file) plans the same delta as --since; --since on the command line wins', async () => {
    const source = ['--registries-conf', conf, '--authfile', authfile];
    const byFlag = await runCli(['bundle', 'plan', '--release', releases[1]!, '--platform', 'linux/amd64', ...source, '--since', full0.seal, '--json']);
    assert.equal(byFlag.code, 0, byFlag.stderr);
    const spec = path.join(work, 'media', 'ocp-1-delta.toml');
    await writeFile(spec, `release = "${releases[1]}"\nplatforms = ["linux/amd64"]\nsince = "ocp-0.tar.seal.json"\n`);
    const bySpec = await runCli(['bundle', 'plan', '--spec', spec, ...source, '--json']);
    assert.equal(bySpec.code, 0, bySpec.stderr);
    assert.deepEqual(JSON.parse(bySpec.stdout), JSON.parse(byFlag.stdout), 'the same plan, to the byte counts and the base');
    const overridden = JSON.parse((await runCli(['bundle', 'plan', '--spec', spec, ...source, '--json', '--since', delta1.seal])).stdout) as { delta: { since: string; bases: unknown } };
    assert.deepEqual([overridden.delta.since, overridden.delta.bases], [delta1.seal, [{ name: 'ocp-1-delta.tar', manifestDigest: delta1.manifestDigest }]]);
  });

  test('bundle verify checks the delta and names its base', async () => {
    const result = await runCli(['bundle', 'verify', delta1.seal]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, new RegExp(`^delta bundle: ${delta1.manifest.baseBlobs!.length} blob\\(s\\) .* base ocp-0\\.tar \\(${full0.manifestDigest}\\)`, 'm'));
    assert.match(result.stdout, /^OK /m);
    const json = JSON.parse((await runCli(['bundle', 'verify', delta1.seal, '--json'])).stdout) as { ok: boolean; bases: unknown };
    assert.deepEqual([json.ok, json.bases], [true, [{ name: 'ocp-0.tar', manifestDigest: full0.manifestDigest }]]);
    const inspected = await runCli(['bundle', 'inspect', delta1.seal]);
    assert.match(inspected.stdout, new RegExp(`^Delta of: +ocp-0\\.tar \\(${full0.manifestDigest}\\)`, 'm'));
  });

  test('import of a delta whose base is not in the bundle dir fails naming the base and leaves nothing', async () => {
    const result = await runCli(['import', '--config', configFile, delta1.seal]);
    assertNoInternalError(result, 'import');
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /IMPORT_BASE_MISSING|is a delta/);
    assert.match(result.stderr, new RegExp(`ocp-0\\.tar \\(${full0.manifestDigest}\\)`));
    assert.deepEqual(await readdir(bundleDir).catch(() => []), [], 'nothing copied');
  });

  test('with the base imported, serve gives every image of the new release by digest across base + delta (skopeo), and the chained delta too', async (t) => {
    for (const b of [full0, delta1, delta2]) {
      const result = await runCli(['import', '--config', configFile, b.seal]);
      assert.equal(result.code, 0, `import ${b.file}: ${result.stderr}`);
    }
    assert.deepEqual(delta2.manifest.bases, [{ name: 'ocp-1-delta.tar', manifestDigest: delta1.manifestDigest }], 'a chain: delta2 names delta1');
    await copyEveryImage(t, bundleDir, path.join(work, 'serve.db'), [delta1, delta2]);
  });

  test(`preload through ${variant.name} pulls and pins every image of the newest releases across base + deltas; the base stays for the kept deltas`, async () => {
    const result = await runCli(['preload', '--config', configFile, '--json'], { timeoutMs: 180_000 });
    assertNoInternalError(result, 'preload');
    assert.equal(result.code, 0, result.stderr);
    const json = JSON.parse(result.stdout) as { retired: { releases: Array<{ version: string }>; bundles: string[] } };
    assert.deepEqual(json.retired.releases.map((r) => r.version), [VERSIONS[0]], 'keep_releases = 2: 4.16.0 retired');
    assert.deepEqual(json.retired.bundles, [], 'its bundle is the base of a kept delta: not removed');
    assert.match(result.stderr, /kept bundle \S+ocp-0\.tar: its releases are retired but a kept bundle depends on it/);
    for (const made of [delta1, delta2]) {
      const pinned = await Promise.all(made.manifest.images.map(async (i) => (await cri.imageStatus(i.name))?.pinned === true));
      assert.deepEqual(pinned, made.manifest.images.map(() => true), `every image of ${made.file} pinned`);
    }
    assert.ok((await readdir(bundleDir)).includes('ocp-0.tar.seal.json'));
  });

  test('--since takes the node\'s inventory (pin-preload inventory): what its bundles hold is left out, and the bundles holding it are the bases', async () => {
    const inventory = path.join(work, 'inventory.json');
    const made = await runCli(['inventory', '--config', configFile, '--output', inventory]);
    assert.equal(made.code, 0, made.stderr);
    const fromInventory = await create(2, 'ocp-2-inv.tar', '--since', inventory);
    // Along this chain each layer is in one bundle: the bases are exactly the bundles holding a layer it leaves out.
    const used = [full0, delta1, delta2].filter((b) => b.manifest.blobs.some((blob) => fromInventory.manifest.baseBlobs!.includes(blob.digest)));
    assert.deepEqual(fromInventory.manifest.bases, used.map((b) => ({ name: b.file, manifestDigest: b.manifestDigest })));
    assert.deepEqual(fromInventory.manifest.blobs.filter((b) => b.role === 'layer'), [], 'the node has every layer of 4.16.2 already');
    assert.deepEqual(fromInventory.manifest.blobs.map((b) => b.digest), delta2.manifest.blobs.filter((b) => b.role !== 'layer').map((b) => b.digest), 'every manifest and config carried');
    // Against the first bundle alone, the node would get 4.16.1's and 4.16.2's new layers again.
    const fromBundle = await create(2, 'ocp-2-since-0.tar', '--since', full0.seal);
    assert.ok(bytesOf(fromBundle.manifest) > bytesOf(fromInventory.manifest));
  });

  test('of an inventory listing two full bundles, a delta needing only the newer records that one, and is served with only it', async (t) => {
    const node = path.join(work, 'node-two-full');
    await mkdir(node, { recursive: true });
    const twoFull = await writeContainerdNodeConfig(node, containerd.endpoint, path.join(node, 'certs.d'));
    for (const b of [full0, full1]) {
      const result = await runCli(['import', '--config', twoFull, b.seal]);
      assert.equal(result.code, 0, `import ${b.file}: ${result.stderr}`);
    }
    const inventory = path.join(work, 'inventory-two-full.json');
    const made = await runCli(['inventory', '--config', twoFull, '--output', inventory]);
    assert.equal(made.code, 0, made.stderr);
    // 4.16.1 again (say, re-bundled with other extras): ocp-1-full.tar holds every layer of it, ocp-0.tar only
    // some, and those the older bundle holds too are left to the one already needed.
    const delta = await create(1, 'ocp-1-since-two.tar', '--since', inventory);
    assert.deepEqual(delta.manifest.bases, [{ name: full1.file, manifestDigest: full1.manifestDigest }], 'one base, not both');
    const base = full1;
    const inBoth = new Set(full0.manifest.blobs.map((b) => b.digest as string));
    assert.ok(delta.manifest.baseBlobs!.some((d) => inBoth.has(d)), 'some of its layers are in both bundles');
    // A node with that base alone: import accepts the delta, and the mirror serves every image of it.
    const alone = path.join(work, 'node-one-base');
    await mkdir(alone, { recursive: true });
    const aloneConfig = await writeContainerdNodeConfig(alone, containerd.endpoint, path.join(alone, 'certs.d'));
    for (const b of [base, delta]) {
      const result = await runCli(['import', '--config', aloneConfig, b.seal]);
      assert.equal(result.code, 0, `import ${b.file} beside ${base.file} alone: ${result.stderr}`);
    }
    await copyEveryImage(t, path.join(alone, 'bundles'), path.join(alone, 'serve.db'), [delta]);
  });

  test('retiring keeps a base a kept delta needs (through the chain)', async () => {
    const bundles = await Promise.all((await listSealFiles(bundleDir)).map((s) => readNodeBundle(s)));
    const plan = planRetirement(bundles, 1, new Map());
    assert.deepEqual(plan.kept.map((r) => r.version), [VERSIONS[2]]);
    assert.deepEqual(plan.removableBundles, []);
    assert.deepEqual(plan.heldBundles.map((b) => path.basename(b.path)).sort(), ['ocp-0.tar', 'ocp-1-delta.tar']);
  });

  test('a base removed from the bundle dir makes its deltas registered but not served, naming the base', async () => {
    await removeBundleFromDir(path.join(bundleDir, 'ocp-0.tar.seal.json'));
    const store = await BundleStore.open(path.join(work, 'serve.db'));
    try {
      const byName = new Map(store.listBundles().map((b) => [path.basename(b.path), b.problem]));
      assert.match(byName.get('ocp-1-delta.tar') ?? '', new RegExp(`base ocp-0\\.tar \\(${full0.manifestDigest}\\)`));
      // A chain: ocp-2-delta is built on ocp-1-delta, itself on ocp-0; the problem names the base that is gone.
      assert.match(byName.get('ocp-2-delta.tar') ?? '', new RegExp(`base ocp-0\\.tar \\(${full0.manifestDigest}\\)`));
    } finally {
      store.close();
    }
    const preload = await runCli(['preload', '--config', configFile, '--json'], { timeoutMs: 60_000 });
    assertNoInternalError(preload, 'preload without the base');
    assert.equal(preload.code, 1);
    assert.match(preload.stdout + preload.stderr, new RegExp(`ocp-1-delta\\.tar is a delta and its base ocp-0\\.tar \\(${full0.manifestDigest}\\) is not in `));
  });

  test('with the base imported again, its deltas are served again and a sync succeeds', async () => {
    const imported = await runCli(['import', '--config', configFile, full0.seal]);
    assert.equal(imported.code, 0, imported.stderr);
    const store = await BundleStore.open(path.join(work, 'serve.db'));
    try {
      assert.deepEqual(store.listBundles().map((b) => [path.basename(b.path), b.problem ?? null]).sort(), [['ocp-0.tar', null], ['ocp-1-delta.tar', null], ['ocp-2-delta.tar', null]]);
    } finally {
      store.close();
    }
    const preload = await runCli(['preload', '--config', configFile, '--json'], { timeoutMs: 120_000 });
    assert.equal(preload.code, 0, preload.stderr);
  });
});
