import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import fsp, { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { createBundle } from '../../../src/bundle/writer.js';
import { CriError, type CriImage, type CriImageService } from '../../../src/cri/image-service.js';
import { BundleStore } from '../../../src/mirror/bundle-store.js';
import { resolveConfig, type NodeConfig } from '../../../src/node/config.js';
import { openNodeBundle, removeBundleFromDir } from '../../../src/node/bundle-dir.js';
import { startMirror } from '../../../src/mirror/server.js';
import { deltaPlan, readPrevious } from '../../../src/plan/delta.js';
import { classifySyncFailure, preloadOnce, PreloadFailedError, type PreloadContext, type SyncFailure } from '../../../src/node/preload.js';
import { StorageInsufficientError, type StorageReport } from '../../../src/node/storage-check.js';
import { generateSigningKey } from '../../../src/bundle/signing.js';
import { UserError } from '../../../src/util/errors.js';
import { renderPinnedImages } from '../../../src/node/runtime-files.js';
import { openStateDatabase } from '../../../src/state/database.js';
import { NodeState } from '../../../src/state/node-state.js';
import { blobContents, MemorySource, multiArchImage, testImage, testPlan } from '../../support/bundle-plans.js';

const REPO = { domain: 'quay.io', path: 'openshift-release-dev/ocp-v4.0-art-dev' };

/** A fake runtime: a set of images, pulls that can be made to fail, pinned when listed in the pinned file. */
class FakeRuntime {
  readonly images = new Set<string>();
  readonly pulls: string[] = [];
  /** Checked on every ImageStatus: what the "pinned file" says right now. */
  pinnedNow: () => Set<string> = () => new Set();
  failPull: (ref: string, attempt: number) => Error | undefined = () => undefined;
  events: string[] = [];

  constructor(
    private readonly mountpoint: string,
    private readonly reported: { runtimeName: string; runtimeVersion: string },
  ) {}

  async version() {
    return { ...this.reported, runtimeApiVersion: 'v1' };
  }

  async imageStatus(ref: string): Promise<CriImage | undefined> {
    if (!this.images.has(ref)) return undefined;
    return { id: ref, repoTags: [], repoDigests: [ref], size: 1, pinned: this.pinnedNow().has(ref) };
  }

  async pullImage(ref: string): Promise<string> {
    this.pulls.push(ref);
    const error = this.failPull(ref, this.pulls.filter((p) => p === ref).length);
    if (error) throw error;
    this.images.add(ref);
    this.events.push(`pulled ${ref}`);
    return ref;
  }

  async imageFsInfo() {
    return [{ mountpoint: this.mountpoint }];
  }
}

interface Fixture {
  dir: string;
  config: NodeConfig;
  state: NodeState;
  store: BundleStore;
  runtime: FakeRuntime;
  names: string[];
  /** The bundle signing key, when the fixture was made `signed` (the config then trusts only it). */
  signKey?: string | undefined;
  run(context?: Partial<PreloadContext>): ReturnType<typeof preloadOnce>;
}

async function fixture(t: { after(fn: () => Promise<void> | void): void }, kind: 'crio' | 'containerd' = 'crio', options: { signed?: boolean } = {}): Promise<Fixture> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-preload-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const images = [0, 1, 2, 3].map((i) => testImage(REPO, `img${i}`, [randomBytes(2000), randomBytes(1000)]));
  const key = options.signed ? await generateSigningKey(path.join(dir, 'bundle.key')) : undefined;
  await createBundle({ plan: testPlan(images), source: new MemorySource(blobContents(images)), output: path.join(dir, 'bundles', 'b.tar'), created: '2026-01-01T00:00:00Z', ...(key ? { signKey: key.keyPath } : {}) });
  const config = resolveConfig(
    new Map<string, unknown>([
      ['runtime.kind', kind],
      ['paths.bundles', path.join(dir, 'bundles')],
      ['paths.state', path.join(dir, 'state.db')],
      ['runtime.reload', ['sh', '-c', `echo reload >> ${path.join(dir, 'reloads')}`]],
      ['runtime.pinned_images_file', path.join(dir, 'crio.conf.d', '50-pinned-images')],
      ['runtime.registries_dropin', path.join(dir, 'registries.conf.d', '50-pin-preload.conf')],
      ['runtime.registries_conf', path.join(dir, 'registries.conf')],
      ['runtime.hosts_dir', path.join(dir, 'certs.d')],
      ['storage.reserve', 0],
      ['pull.retries', 2],
      ...(key ? [['paths.trusted_key', key.publicKeyPath] as [string, unknown]] : []),
    ]),
    new Map(),
    undefined,
  );
  const db = openStateDatabase(':memory:');
  t.after(() => {
    db.close();
  });
  const state = new NodeState(db);
  const store = await BundleStore.open(db);
  // What CRI Version says decides how images are pinned: CRI-O's drop-in, or (containerd 1.6) not at all.
  const runtime = new FakeRuntime(dir, kind === 'crio' ? { runtimeName: 'cri-o', runtimeVersion: '1.30.4' } : { runtimeName: 'containerd', runtimeVersion: '1.6.20~ds1' });
  const pinnedFile = config.runtime.pinnedImagesFile;
  // CRI-O reports pinned what its pinned_images file lists (after the reload; the fake has no delay).
  runtime.pinnedNow = () => {
    if (!existsSync(pinnedFile)) return new Set();
    return new Set(images.map((i) => `quay.io/${REPO.path}@${i.image.reference.digest}`));
  };
  const names = images.map((i) => `quay.io/${REPO.path}@${i.image.reference.digest}`).sort();
  return {
    dir, config, state, store, runtime, names, signKey: key?.keyPath,
    run: (context = {}) => preloadOnce({ config, state, store, cri: runtime as unknown as CriImageService, log: () => undefined, pull: { backoffMs: () => 1 }, ...context }),
  };
}

async function reloads(dir: string): Promise<number> {
  return existsSync(path.join(dir, 'reloads')) ? (await readFile(path.join(dir, 'reloads'), 'utf8')).split('\n').filter(Boolean).length : 0;
}

test('CRI-O: pulls what is missing, then writes the pinned file and records pinned what the runtime reports pinned', async (t) => {
  const f = await fixture(t);
  f.runtime.images.add(f.names[0]!);
  const result = await f.run();
  assert.deepEqual([...f.runtime.pulls].sort(), f.names.slice(1), 'the present image was not pulled');
  assert.deepEqual([...result.pinned].sort(), f.names);
  assert.equal(await readFile(f.config.runtime.pinnedImagesFile, 'utf8'), renderPinnedImages(f.names));
  assert.equal(await reloads(f.dir), 2, 'after the registries drop-in, after the pinned file');
  assert.ok(f.state.images().every((i) => i.state === 'pinned'));
  assert.equal(f.state.status().currentGeneration, 1);
  assert.match(f.state.status().pinning, /CRI-O pinned_images/);

  const again = await f.run();
  assert.deepEqual(again.pulled, []);
  assert.deepEqual(again.changedFiles, []);
  assert.equal(await reloads(f.dir), 2, 'nothing changed, no reload');
  assert.equal(f.state.status().desiredGeneration, 1, 'same bundles, same generation');
});

test('ENOSPC while pulling stops everything, records StorageInsufficient, and writes no pinned file', async (t) => {
  const f = await fixture(t);
  f.runtime.failPull = (ref) => new CriError({ grpcCode: grpc.status.UNKNOWN, operation: 'pull', image: ref, details: 'write /var/lib/containers/storage/overlay: no space left on device' });
  await assert.rejects(f.run(), (err: unknown) => err instanceof PreloadFailedError && err.reason === 'StorageInsufficient');
  assert.ok(f.runtime.pulls.length <= f.config.pull.concurrency, 'no pull started after ENOSPC');
  assert.equal(existsSync(f.config.runtime.pinnedImagesFile), false);
  const status = f.state.status();
  assert.deepEqual([status.conditions[1].status, status.conditions[1].reason], ['True', 'StorageInsufficient']);
  assert.equal(status.lastFailedGeneration, 1);
  assert.equal(status.currentGeneration, 0);
});

test('an image that cannot be pulled fails the sync (PrefetchFailed) with its error, and nothing is pinned', async (t) => {
  const f = await fixture(t);
  const bad = f.names[2]!;
  f.runtime.failPull = (ref) => (ref === bad ? new CriError({ grpcCode: grpc.status.NOT_FOUND, operation: 'pull', image: ref, details: 'manifest unknown' }) : undefined);
  await assert.rejects(f.run(), (err: unknown) => err instanceof PreloadFailedError && err.reason === 'PrefetchFailed' && err.message.includes(bad));
  assert.equal(existsSync(f.config.runtime.pinnedImagesFile), false);
  const record = f.state.image(bad)!;
  assert.deepEqual([record.state, record.attempts], ['failed', 2]);
  assert.match(record.lastError!, /manifest unknown/);
  assert.ok(f.state.images().filter((i) => i.name !== bad).every((i) => i.state === 'present'));
  assert.equal(f.state.status().conditions[1].reason, 'PrefetchFailed');

  // Fixed (e.g. the right bundle arrived): the next sync completes and clears Degraded.
  f.runtime.failPull = () => undefined;
  await f.run();
  assert.deepEqual(f.state.status().conditions.map((c) => [c.status, c.reason]), [['False', 'AsExpected'], ['False', 'AsExpected']]);
  assert.equal(f.state.status().lastFailedGeneration, 1, 'the failure stays on record');
});

test('an image that vanishes between the pull and the re-check fails the sync before the pinned file is written', async (t) => {
  const f = await fixture(t);
  const vanishing = f.names[1]!;
  const original = f.runtime.imageStatus.bind(f.runtime);
  f.runtime.imageStatus = async (ref: string) => {
    if (ref === vanishing && f.runtime.images.has(ref)) f.runtime.images.delete(ref); // GC'd right after its pull
    return original(ref);
  };
  await assert.rejects(f.run(), (err: unknown) => err instanceof PreloadFailedError && err.message.includes(vanishing));
  assert.equal(existsSync(f.config.runtime.pinnedImagesFile), false);
  assert.equal(f.state.image(vanishing)!.state, 'pending');
});

test('containerd 1.6: images recorded present (not pinned) and the status says plainly they are not protected', async (t) => {
  const f = await fixture(t, 'containerd');
  f.runtime.pinnedNow = () => new Set(); // containerd 1.6 never reports pinned
  const result = await f.run();
  assert.deepEqual(result.pinned, []);
  assert.ok(f.state.images().every((i) => i.state === 'present'));
  assert.match(f.state.status().pinning, /^not protected: containerd 1\.6\.20~ds1 never reports an image pinned \(containerd pins from 1\.7\.3 on, at once from 1\.7\.10\)/);
  assert.equal(result.pinning, f.state.status().pinning);
  assert.equal(f.state.status().runtime, 'containerd 1.6.20~ds1');
  assert.ok(existsSync(path.join(f.dir, 'certs.d', 'quay.io', 'hosts.toml')));
});

test('CRI-O: a removed bundle\'s images are unpinned first (the drop-in shrinks, one reload), recorded with a time, never removed', async (t) => {
  const f = await fixture(t);
  const extra = testImage(REPO, 'extra', [randomBytes(500)]);
  const extraName = `quay.io/${REPO.path}@${extra.image.reference.digest}`;
  const extraTar = path.join(f.dir, 'bundles', 'extra.tar');
  await createBundle({ plan: testPlan([extra]), source: new MemorySource(blobContents([extra])), output: extraTar, created: '2026-01-01T00:00:00Z' });
  f.runtime.pinnedNow = () => new Set(existsSync(f.config.runtime.pinnedImagesFile) ? [...f.names, extraName] : []);
  await f.run();
  assert.equal(await readFile(f.config.runtime.pinnedImagesFile, 'utf8'), renderPinnedImages([...f.names, extraName]));
  assert.equal(f.state.image(extraName)!.state, 'pinned');
  const pinnedAt = f.state.image(f.names[0]!)!.pinnedAt;
  assert.ok(pinnedAt, 'the time it was first pinned is recorded');

  for (const file of await readdir(path.join(f.dir, 'bundles'))) if (file.startsWith('extra.tar')) await rm(path.join(f.dir, 'bundles', file));
  const reloadsBefore = await reloads(f.dir);
  const result = await f.run();
  assert.deepEqual(result.released, [extraName]);
  assert.equal(await readFile(f.config.runtime.pinnedImagesFile, 'utf8'), renderPinnedImages(f.names), 'the drop-in lists only what is still bundled');
  assert.equal(await reloads(f.dir), reloadsBefore + 1, 'one reload, for the shrunk drop-in');
  assert.ok(f.runtime.images.has(extraName), 'the image itself stays in the runtime');
  const [unpinned] = f.state.unpinnedImages();
  assert.deepEqual([unpinned?.name, unpinned?.wasPinned], [extraName, true]);
  assert.ok(unpinned?.unpinnedAt && unpinned.unpinnedAt >= unpinned.leftAt, 'unpinned, with a time');
  assert.equal(f.state.image(f.names[0]!)!.pinnedAt, pinnedAt, 'images still pinned keep their first pinned time');

  const again = await f.run();
  assert.deepEqual(again.released, [], 'unpinned once, not on every sync');
});

test('an empty bundle dir is a set with no images: our files are removed (and the runtime reloaded)', async (t) => {
  const f = await fixture(t);
  await f.run();
  await rm(path.join(f.dir, 'bundles'), { recursive: true });
  const result = await f.run();
  assert.equal(result.images, 0);
  assert.equal(existsSync(f.config.runtime.pinnedImagesFile), false);
  assert.equal(existsSync(f.config.runtime.registriesDropin), false);
  assert.equal(f.state.status().desiredGeneration, 2, 'a new set, a new generation');
  assert.deepEqual(f.state.images(), []);
  assert.equal(await reloads(f.dir), 4);
});

/** Counts readFile calls per path while `during` runs (every module's readFile, named imports included). */
async function countingReads<T>(during: () => Promise<T>): Promise<{ result: T; reads: Map<string, number> }> {
  const reads = new Map<string, number>();
  const original = fsp.readFile;
  fsp.readFile = ((file: Parameters<typeof original>[0], ...rest: unknown[]) => {
    const name = String(file);
    reads.set(name, (reads.get(name) ?? 0) + 1);
    return (original as (...args: unknown[]) => unknown)(file, ...rest);
  }) as typeof original;
  syncBuiltinESMExports();
  try {
    return { result: await during(), reads };
  } finally {
    fsp.readFile = original;
    syncBuiltinESMExports();
  }
}

test('one preload opens each bundle once and reads its seal once: the signature check, storage estimate and mirror registration use the open bundle, the verifier its located files and seal', async (t) => {
  const f = await fixture(t, 'crio', { signed: true });
  // A second bundle with a multi-arch image, so the storage estimate reads its index from the bundle too.
  const multi = multiArchImage(REPO);
  await createBundle({ plan: testPlan([multi]), source: new MemorySource(blobContents([multi])), output: path.join(f.dir, 'bundles', 'm.tar'), created: '2026-01-01T00:00:00Z', signKey: f.signKey! });
  f.runtime.pinnedNow = () => new Set(f.runtime.images);
  const seals = ['b.tar', 'm.tar'].map((name) => path.join(f.dir, 'bundles', `${name}.seal.json`));

  for (const round of ['first sync: verifies, estimates and registers', 'second sync: all in place']) {
    const opens: string[] = [];
    const { result, reads } = await countingReads(() => f.run({ openBundle: (seal) => (opens.push(seal), openNodeBundle(seal)) }));
    assert.deepEqual(opens, seals, `${round}: each bundle opened once`);
    for (const seal of seals) assert.equal(reads.get(seal), 1, `${round}: ${path.basename(seal)} read once`);
    assert.equal(result.images, 5);
  }
  assert.deepEqual(f.store.listBundles().map((b) => path.basename(b.path)), ['b.tar', 'm.tar'], 'both registered with the mirror');
  assert.ok(f.state.bundles().every((b) => f.state.isBundleVerified(b.path, b.fingerprint)), 'both verified');
});

test('a delta whose base is removed while the service runs is no longer served by its mirror, and the sync fails naming the base', async (t) => {
  const f = await fixture(t);
  f.runtime.pinnedNow = () => new Set(f.runtime.images);
  const baseSeal = path.join(f.dir, 'bundles', 'b.tar.seal.json');
  const image = testImage(REPO, 'in-delta', [randomBytes(1500)]);
  const plan = deltaPlan(testPlan([image]), await readPrevious(baseSeal));
  await createBundle({ plan, source: new MemorySource(blobContents([image])), output: path.join(f.dir, 'bundles', 'd.tar'), created: '2026-02-01T00:00:00Z' });
  // The service keeps one store (and its mirror) across syncs: so does this test.
  const mirror = await startMirror({ store: f.store, listen: '127.0.0.1:0' });
  t.after(() => mirror.close());
  const manifestStatus = async () => (await fetch(`${mirror.url}/v2/${REPO.path}/manifests/${image.image.reference.digest}?ns=quay.io`, { method: 'HEAD' })).status;

  await f.run();
  assert.equal(await manifestStatus(), 200, 'with its base, the delta is served');

  await removeBundleFromDir(baseSeal);
  await assert.rejects(f.run(), (err: unknown) => {
    assert.ok(err instanceof PreloadFailedError);
    assert.match(err.message, /d\.tar is a delta and its base b\.tar \(sha256:[0-9a-f]{64}\) is not in /);
    assert.deepEqual(err.subject, { kind: 'bundle', name: path.join(f.dir, 'bundles', 'd.tar') }, 'the failure names the delta, as --json reports it');
    return true;
  });
  assert.equal(await manifestStatus(), 404, 'without its base, the delta is not served (no manifest whose layers would 404)');
  const delta = f.store.listBundles().find((b) => path.basename(b.path) === 'd.tar');
  assert.match(delta?.problem ?? '', /base b\.tar/, 'still registered, with the missing base as its problem');
  assert.deepEqual(f.store.listBundles().map((b) => path.basename(b.path)), ['d.tar'], 'the removed base is unregistered');
});

test('how a sync ends on each kind of error: recorded or not, wrapped as PreloadFailedError or thrown as it is', () => {
  const report: StorageReport = { layerCount: 3, layerBytes: 900, reserveBytes: 100, requiredBytes: 1000, mountpoint: '/var/lib/containers', availableBytes: 10, enough: false };
  const rows: Array<[string, unknown, SyncFailure]> = [
    ['a failure already recorded where it was raised', new PreloadFailedError('PrefetchFailed', 'x'), { outcome: 'passed-on' }],
    ['a cancellation (the next run resumes it)', new UserError('PRELOAD_CANCELLED', 'preload was cancelled'), { outcome: 'passed-on' }],
    ['too little space before pulling', new StorageInsufficientError(report), { outcome: 'failed', reason: 'StorageInsufficient', storage: report }],
    ['an error the operator can act on', new UserError('BUNDLE_VERIFY_FAILED', 'bundle b.tar failed verification'), { outcome: 'failed', reason: 'PrefetchFailed' }],
    ['a system error with an errno code', Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' }), { outcome: 'failed', reason: 'PrefetchFailed' }],
    ['a bug (no code)', new TypeError('cannot read properties of undefined'), { outcome: 'bug', reason: 'PrefetchFailed' }],
    ['something thrown that is not an Error', 'oops', { outcome: 'bug', reason: 'PrefetchFailed' }],
  ];
  for (const [what, err, expected] of rows) assert.deepEqual(classifySyncFailure(err), expected, what);
});
