// Delta bundles without a registry: which blobs a delta keeps, what its manifest records and how readers take
// it (format version 2 only with bases), which bases a node is missing along a chain, and the retire hook.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { buildBundleManifest, parseBundleManifest } from '../../src/bundle/bundle-manifest.js';
import type { BundleManifest } from '../../src/bundle/format.js';
import type { Digest } from '../../src/oci/digest.js';
import { createBundle } from '../../src/bundle/writer.js';
import { deltaPlan, readPrevious, type PreviousContent } from '../../src/plan/delta.js';
import { dedupRatio } from '../../src/plan/plan-json.js';
import { missingBases, type NodeBundle } from '../../src/node/bundle-dir.js';
import { bundleDependencies } from '../../src/node/retire.js';
import { INVENTORY_KIND, writeInventory, type NodeInventory } from '../../src/node/inventory.js';
import { UserError } from '../../src/util/errors.js';
import { blobContents, MemorySource, testImage, testPlan } from '../support/bundle-plans.js';
import { withTempDir } from '../support/temp-dir.js';

const repo = { domain: 'quay.io', path: 'example/app' };
const shared = randomBytes(5000);
const plan = testPlan([testImage(repo, 'one', [shared, randomBytes(7000)]), testImage(repo, 'two', [shared, randomBytes(3000)])]);
const created = '2024-01-02T03:04:05Z';
// The layer both images use (its gzip bytes are the same in both).
const sharedLayer = plan.blobs.find((b) => b.role === 'layer' && plan.images.every((i) => i.blobs.includes(b.digest)))!;
const base = { name: 'ocp-1.tar', manifestDigest: `sha256:${'a'.repeat(64)}` as Digest };

function previousHaving(digests: readonly Digest[]): PreviousContent {
  return { since: '/media/ocp-1.tar', kind: 'bundle', bases: [base], blobs: new Set(digests) };
}

test('a delta leaves out only the layers PREV has: every manifest and config stays, and the counts add up', () => {
  const notLayers = plan.blobs.filter((b) => b.role !== 'layer');
  // PREV has the shared layer and every manifest and config: those are carried anyway.
  const delta = deltaPlan(plan, previousHaving([sharedLayer.digest, ...notLayers.map((b) => b.digest)]));
  assert.deepEqual(delta.blobs.map((b) => b.digest), plan.blobs.filter((b) => b !== sharedLayer).map((b) => b.digest));
  assert.deepEqual(delta.delta!.baseBlobs, [{ digest: sharedLayer.digest, size: sharedLayer.size }]);
  assert.equal(delta.delta!.newBytes, plan.blobs.filter((b) => b.role === 'layer' && b !== sharedLayer).reduce((n, b) => n + b.size, 0));
  assert.equal(delta.delta!.carriedBlobs, notLayers.length);
  assert.equal(delta.delta!.newBytes + delta.delta!.carriedBytes, delta.totals.uniqueBytes);
  assert.equal(delta.totals.uniqueBytes + delta.delta!.baseBytes, plan.totals.uniqueBytes);
  assert.deepEqual(delta.images, plan.images, 'the same images: the index stays complete');
});

test('a delta manifest is format version 2 with bases and baseBlobs; a full one stays version 1 without them', () => {
  const manifest = buildBundleManifest(deltaPlan(plan, previousHaving([sharedLayer.digest])), { created });
  assert.equal(manifest.formatVersion, 2);
  assert.deepEqual(manifest.bases, [base]);
  assert.deepEqual(manifest.baseBlobs, [sharedLayer.digest]);
  const full = buildBundleManifest(plan, { created });
  assert.equal(full.formatVersion, 1);
  assert.equal('bases' in full || 'baseBlobs' in full, false);
  assert.deepEqual(parseBundleManifest(Buffer.from(JSON.stringify(manifest)), 'delta'), manifest);
});

test('the manifest reader refuses bases or signatures without version 2, and a base without a digest', () => {
  const full = buildBundleManifest(plan, { created });
  const refuse = (doc: object, why: RegExp) =>
    assert.throws(() => parseBundleManifest(Buffer.from(JSON.stringify(doc)), 'b'), (err: unknown) => err instanceof UserError && err.code === 'BUNDLE_MANIFEST_INVALID' && why.test(err.message));
  refuse({ ...full, bases: [base] }, /bases needs format version 2/);
  refuse({ ...full, images: [{ ...full.images[0]!, origin: 'signature', subject: full.images[0]!.digest }] }, /signatures need format version 2/);
  refuse({ ...full, formatVersion: 2, bases: [{ name: 'x' }] }, /base 1 needs a name and a manifestDigest/);
  refuse({ ...full, baseBlobs: [] }, /baseBlobs needs bases/);
  assert.throws(() => parseBundleManifest(Buffer.from(JSON.stringify({ ...full, formatVersion: 3 })), 'b'), /version 3 is not supported \(this pin-preload reads versions 1, 2\)/);
});

function nodeBundle(name: string, digest: string, bases: Array<{ name: string; manifestDigest: string }> = []): NodeBundle {
  const manifest = { ...buildBundleManifest(plan, { created }), ...(bases.length > 0 ? { formatVersion: 2, bases } : {}) } as BundleManifest;
  return { path: `/b/${name}`, sealPath: `/b/${name}.seal.json`, manifest, manifestDigest: digest, fingerprint: '' };
}

test('missing bases follow a chain: a present base that is a delta needs its own base', () => {
  const d = (c: string) => `sha256:${c.repeat(64)}`;
  const full = nodeBundle('full.tar', d('1'));
  const delta1 = nodeBundle('delta1.tar', d('2'), [{ name: 'full.tar', manifestDigest: d('1') }]);
  const delta2 = nodeBundle('delta2.tar', d('3'), [{ name: 'delta1.tar', manifestDigest: d('2') }]);
  assert.deepEqual(missingBases(delta2.manifest, [full, delta1]), []);
  assert.deepEqual(missingBases(delta2.manifest, [delta1]), [{ name: 'full.tar', manifestDigest: d('1') }]);
  assert.deepEqual(missingBases(delta2.manifest, [full]), [{ name: 'delta1.tar', manifestDigest: d('2') }]);
  assert.deepEqual(missingBases(full.manifest, []), []);
  assert.deepEqual(bundleDependencies(delta2), [d('2')], 'retiring: a delta depends on its bases');
  assert.deepEqual(bundleDependencies(full), []);
});

test('the dedup ratio of a delta is its own: each image counted over what the delta holds', () => {
  const delta = deltaPlan(plan, previousHaving([sharedLayer.digest]));
  // Both images use the shared layer: left to the base, it no longer counts for either of them.
  assert.equal(delta.totals.bytesWithRepeats, plan.totals.bytesWithRepeats - 2 * sharedLayer.size);
  const unchanged = deltaPlan(plan, previousHaving([]));
  assert.equal(unchanged.totals.bytesWithRepeats, plan.totals.bytesWithRepeats, 'nothing in common: the full plan\'s repeats');
  assert.equal(dedupRatio(unchanged), dedupRatio(plan));
});

test('PREV as a split bundle needs only its seal and the volume holding its manifest entry', async () => {
  const images = [testImage(repo, 'big', [randomBytes(150_000), randomBytes(120_000)])];
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-since-'));
  try {
    const output = path.join(dir, 'big.tar');
    const written = await createBundle({ plan: testPlan(images), source: new MemorySource(blobContents(images)), output, created, splitSize: 100_000 });
    assert.ok(written.volumes.length >= 3, 'split into several volumes');
    // Only the small files go back to the bastion: the seal and the first volume.
    for (const v of written.volumes.slice(1)) await rm(v.path);
    const previous = await readPrevious(written.sealPath);
    const seal = JSON.parse(await readFile(written.sealPath, 'utf8')) as { manifestDigest: string };
    assert.deepEqual(previous.bases, [{ name: 'big.tar', manifestDigest: seal.manifestDigest }]);
    assert.deepEqual([...previous.blobs].sort(), testPlan(images).blobs.map((b) => b.digest).sort());
    // Given by its first volume, the same.
    assert.deepEqual((await readPrevious(written.volumes[0]!.path)).bases, previous.bases);
    // Without the first volume, the manifest cannot be read: named, as --since.
    await rm(written.volumes[0]!.path);
    await assert.rejects(readPrevious(written.sealPath), (err: unknown) => {
      assert.ok(err instanceof UserError && err.code === 'SINCE_UNREADABLE', String(err));
      assert.match(err.message, /^cannot read --since .*big\.tar\.seal\.json: bundle volume .*big\.tar\.001 is missing/);
      assert.equal(err.hint, 'copy the first volume next to the seal');
      return true;
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a --since that is missing, a directory or neither a bundle nor an inventory is SINCE_UNREADABLE naming it', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-since-'));
  try {
    const garbage = path.join(dir, 'garbage.tar');
    await writeFile(garbage, 'x'.repeat(4096));
    const badInventory = path.join(dir, 'inventory.json');
    await writeFile(badInventory, '{"kind":"something else"}');
    const cases: Array<[string, RegExp]> = [
      [path.join(dir, 'missing.tar'), /no bundle at/],
      [path.join(dir, 'missing.tar.seal.json'), /no bundle at/],
      [dir, /it is a directory/],
      [garbage, /invalid tar header/],
      [badInventory, /kind is "something else"/],
    ];
    for (const [since, why] of cases) {
      await assert.rejects(readPrevious(since), (err: unknown) => {
        assert.ok(err instanceof UserError && err.code === 'SINCE_UNREADABLE', `${since}: ${String(err)}`);
        assert.ok(err.message.startsWith(`cannot read --since ${since}: `), err.message);
        assert.match(err.message, why);
        assert.deepEqual(err.subject, { kind: 'path', name: since });
        return true;
      });
    }
    // Given in a bundle spec, the error names the spec's key instead of the flag.
    await assert.rejects(readPrevious(dir, 'since (ocp.toml)'), (err: unknown) => err instanceof UserError && err.code === 'SINCE_UNREADABLE' && err.message === `cannot read since (ocp.toml) ${dir}: it is a directory`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

/** A node inventory listing `bundles` (oldest first by `created`), each holding the given blobs. */
function inventoryOf(bundles: Array<{ name: string; digest: string; created: string; blobs: readonly Digest[] }>, withHolders = true): NodeInventory {
  const holders = new Map<string, string[]>();
  for (const b of bundles) for (const d of b.blobs) holders.set(d, [...(holders.get(d) ?? []), b.digest]);
  return {
    kind: INVENTORY_KIND,
    schemaVersion: 1,
    tool: { name: 'pin-preload', version: '0.1.0' },
    node: { name: 'worker-0', hostname: 'worker-0' },
    generatedAt: created,
    bundles: bundles.map((b) => ({ path: `/var/lib/pin-preload/bundles/${b.name}`, manifestDigest: b.digest, created: b.created, releases: [], images: 1, blobs: b.blobs.length })),
    blobs: [...holders].sort(([a], [b]) => (a < b ? -1 : 1)).map(([digest, held]) => ({ digest, size: 1, ...(withHolders ? { bundles: held } : {}) })),
    runtime: { name: 'containerd', version: '1.7.24', images: [] },
  };
}

async function deltaAgainst(inventory: NodeInventory): Promise<ReturnType<typeof deltaPlan>> {
  return withTempDir('pin-preload-since-', async (dir) => {
    const file = path.join(dir, 'inventory.json');
    await writeInventory(file, inventory);
    return deltaPlan(plan, await readPrevious(file));
  });
}

const layers = plan.blobs.filter((b) => b.role === 'layer').map((b) => b.digest);
const ownLayers = layers.filter((d) => d !== sharedLayer.digest);
const bundleDigest = (c: string) => `sha256:${c.repeat(64)}` as Digest;
const unrelatedLayer = bundleDigest('9');

test('against an inventory, a delta records as bases only the bundles it leaves layers to', async () => {
  const delta = await deltaAgainst(inventoryOf([
    { name: 'ocp-0.tar', digest: bundleDigest('1'), created: '2026-01-01T00:00:00Z', blobs: [sharedLayer.digest] },
    { name: 'tools.tar', digest: bundleDigest('2'), created: '2026-02-01T00:00:00Z', blobs: [unrelatedLayer] },
  ]));
  assert.deepEqual(delta.delta!.bases, [{ name: 'ocp-0.tar', manifestDigest: bundleDigest('1') }]);
  assert.deepEqual(delta.delta!.baseBlobs.map((b) => b.digest), [sharedLayer.digest]);
  assert.deepEqual(buildBundleManifest(delta, { created }).bases, [{ name: 'ocp-0.tar', manifestDigest: bundleDigest('1') }]);
});

test('a layer several bundles hold goes to a bundle already needed, else to the newest of them', async () => {
  // The shared layer is in all three; the old bundle alone has one of the other layers: it is needed anyway.
  const forced = await deltaAgainst(inventoryOf([
    { name: 'new.tar', digest: bundleDigest('3'), created: '2026-03-01T00:00:00Z', blobs: [sharedLayer.digest] },
    { name: 'old.tar', digest: bundleDigest('1'), created: '2026-01-01T00:00:00Z', blobs: [sharedLayer.digest, ownLayers[0]!] },
    { name: 'mid.tar', digest: bundleDigest('2'), created: '2026-02-01T00:00:00Z', blobs: [sharedLayer.digest] },
  ]));
  assert.deepEqual(forced.delta!.bases.map((b) => b.name), ['old.tar']);
  // No bundle is needed for a layer of its own: the newest by creation time, whatever the inventory's order.
  const newest = await deltaAgainst(inventoryOf([
    { name: 'new.tar', digest: bundleDigest('3'), created: '2026-03-01T00:00:00Z', blobs: [sharedLayer.digest] },
    { name: 'old.tar', digest: bundleDigest('1'), created: '2026-01-01T00:00:00Z', blobs: [sharedLayer.digest] },
    { name: 'mid.tar', digest: bundleDigest('2'), created: '2026-02-01T00:00:00Z', blobs: [sharedLayer.digest] },
  ]));
  assert.deepEqual(newest.delta!.bases.map((b) => b.name), ['new.tar']);
});

test('against an inventory holding none of its layers, a delta has no base and is written as a full bundle', async () => {
  const delta = await deltaAgainst(inventoryOf([{ name: 'tools.tar', digest: bundleDigest('2'), created, blobs: [unrelatedLayer] }]));
  assert.deepEqual(delta.delta!.bases, []);
  const manifest = buildBundleManifest(delta, { created });
  assert.equal(manifest.formatVersion, 1);
  assert.equal('bases' in manifest || 'baseBlobs' in manifest, false);
});

test('an inventory that does not say which bundle holds each blob (older pin-preload) makes every bundle a base', async () => {
  const delta = await deltaAgainst(inventoryOf([
    { name: 'ocp-0.tar', digest: bundleDigest('1'), created: '2026-01-01T00:00:00Z', blobs: [sharedLayer.digest] },
    { name: 'tools.tar', digest: bundleDigest('2'), created: '2026-02-01T00:00:00Z', blobs: [unrelatedLayer] },
  ], false));
  assert.deepEqual(delta.delta!.bases.map((b) => b.name), ['ocp-0.tar', 'tools.tar']);
});
