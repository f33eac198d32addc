// The bundle layout is a pure function of the plan: entry order and offsets, 512-byte alignment, total
// size, volume boundaries, and a manifest reservation that fits any uncompressed size learned later.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { placeEntries, planLayout } from '../../src/bundle/layout.js';
import { buildBundleManifest, serializeManifest } from '../../src/bundle/bundle-manifest.js';
import { volumeRanges, VolumeSet } from '../../src/bundle/volumes.js';
import { BLOCK } from '../../src/bundle/tar-header.js';
import { testImage, testPlan } from '../support/bundle-plans.js';

const repo = { domain: 'quay.io', path: 'example/app' };
const plan = testPlan([testImage(repo, 'one', [randomBytes(5000), randomBytes(700)]), testImage(repo, 'two', [randomBytes(1)])]);

test('entries come in format order: manifest, oci-layout, index.json, directories, then manifests, configs, layers by digest', () => {
  const { layout } = planLayout(plan, { name: 'b.tar', created: '2024-01-01T00:00:00Z' });
  const names = layout.entries.map((e) => e.name);
  assert.deepEqual(names.slice(0, 5), ['pin-preload.json', 'oci-layout', 'index.json', 'blobs/', 'blobs/sha256/']);
  const blobs = layout.entries.slice(5);
  const roles = blobs.map((e) => plan.blobs.find((b) => b.digest === e.digest)!.role);
  assert.deepEqual(roles, [...roles].sort((a, b) => ['manifest', 'config', 'layer'].indexOf(a) - ['manifest', 'config', 'layer'].indexOf(b)));
  for (const role of ['manifest', 'config', 'layer']) {
    const digests = blobs.filter((_, i) => roles[i] === role).map((e) => e.digest!);
    assert.deepEqual(digests, [...digests].sort());
  }
  assert.equal(blobs.length, plan.blobs.length);
});

test('every header is block aligned, data follows its header, and the archive ends with two zero blocks', () => {
  fc.assert(
    fc.property(fc.array(fc.nat({ max: 5000 }), { minLength: 1, maxLength: 20 }), (sizes) => {
      const layout = placeEntries(sizes.map((size, i) => ({ name: `f${i}`, type: 'file' as const, size, kind: 'blob' as const })), { name: 'x' });
      let expected = 0;
      for (const e of layout.entries) {
        assert.equal(e.headerOffset, expected);
        assert.equal(e.headerOffset % BLOCK, 0);
        assert.equal(e.dataOffset, e.headerOffset + BLOCK);
        expected = e.dataOffset + Math.ceil(e.size / BLOCK) * BLOCK;
      }
      assert.equal(layout.totalSize, expected + 2 * BLOCK);
    }),
  );
});

test('volumes cover the tar exactly, each at most the split size, named NAME.001…; unsplit is NAME', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 100_000 }), fc.integer({ min: 1, max: 30_000 }), (total, split) => {
      const ranges = volumeRanges(total, split);
      assert.equal(ranges.reduce((s, r) => s + r.size, 0), total);
      ranges.forEach((r, i) => {
        assert.ok(r.size > 0 && r.size <= split);
        assert.equal(r.offset, i * split);
      });
    }),
  );
  const split = planLayout(plan, { name: 'b.tar', created: '2024-01-01T00:00:00Z', splitSize: 4096 });
  assert.deepEqual(split.layout.volumes.slice(0, 2).map((v) => v.name), ['b.tar.001', 'b.tar.002']);
  assert.deepEqual(planLayout(plan, { name: 'b.tar', created: '2024-01-01T00:00:00Z' }).layout.volumes.map((v) => v.name), ['b.tar']);
});

test('a byte of a volume maps to its bundle offset, the inverse of splitting a range into volume pieces', () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: 1, maxLength: 6 }), fc.nat(), (sizes, pick) => {
      const volumes = new VolumeSet(sizes.map((size, i) => ({ path: `b.tar.00${i + 1}`, size })));
      const offset = pick % volumes.totalSize;
      const [piece] = volumes.pieces(offset, 1);
      assert.equal(volumes.bundleOffset(piece!.volume, piece!.localOffset), offset);
    }),
  );
});

test('the same plan gives the same layout, whatever the creation time', () => {
  const a = planLayout(plan, { name: 'b.tar', created: '2024-01-01T00:00:00Z' });
  const b = planLayout(plan, { name: 'b.tar', created: '2031-12-31T23:59:59Z' });
  assert.deepEqual(a.layout, b.layout);
});

test('the reserved manifest size holds any uncompressed sizes learned later, padded with spaces to the byte', () => {
  const { manifest, manifestReservedSize } = planLayout(plan, { name: 'b.tar', created: '2024-01-01T00:00:00Z' });
  const learned = new Map(plan.blobs.map((b) => [b.digest, { size: Number.MAX_SAFE_INTEGER, estimated: false }]));
  const widest = buildBundleManifest(plan, { created: manifest.created, uncompressed: learned });
  for (const m of [manifest, widest]) {
    const bytes = serializeManifest(m, manifestReservedSize);
    assert.equal(bytes.length, manifestReservedSize);
    assert.deepEqual(JSON.parse(bytes.toString()), JSON.parse(JSON.stringify(m)));
  }
});
