// Delta bundles without a registry: which blobs a delta keeps, what its manifest records and how readers take
// it (format version 2 only with bases), which bases a node is missing along a chain, and the retire hook.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { buildBundleManifest, parseBundleManifest } from '../../src/bundle/bundle-manifest.js';
import type { BundleManifest } from '../../src/bundle/format.js';
import type { Digest } from '../../src/oci/digest.js';
import { deltaPlan, type PreviousContent } from '../../src/plan/delta.js';
import { missingBases, type NodeBundle } from '../../src/node/bundle-dir.js';
import { bundleDependencies } from '../../src/node/retire.js';
import { UserError } from '../../src/util/errors.js';
import { testImage, testPlan } from '../support/bundle-plans.js';

const repo = { domain: 'quay.io', path: 'example/app' };
const shared = randomBytes(5000);
const plan = testPlan([testImage(repo, 'one', [shared, randomBytes(7000)]), testImage(repo, 'two', [shared, randomBytes(3000)])]);
const created = '2024-01-02T03:04:05Z';
// The layer both images use (its gzip bytes are the same in both).
const sharedLayer = plan.blobs.find((b) => b.role === 'layer' && plan.images.every((i) => i.blobs.includes(b.digest)))!;
const base = { name: 'ocp-1.tar', manifestDigest: `sha256:${'a'.repeat(64)}` as Digest };

function previousHaving(digests: readonly string[]): PreviousContent {
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
