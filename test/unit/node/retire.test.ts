// Retirement planning ([pins] keep_releases): which releases are kept (newest N by semver, else by import
// order), which images belong only to retired ones, which bundles may go, and that a kept bundle depending on
// another (a delta's base) holds it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { BundleImage, BundleManifest } from '../../../src/bundle/format.js';
import type { NodeBundle } from '../../../src/node/bundle-dir.js';
import { applyRetirement, desiredSet, planRetirement, retiredImages } from '../../../src/node/retire.js';
import type { NodeState } from '../../../src/state/node-state.js';
import type { Digest } from '../../../src/oci/digest.js';

const digest = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}` as Digest;
const payload = (n: number) => `quay.io/openshift-release-dev/ocp-release@${digest(n)}`;
const component = (n: number) => `quay.io/openshift-release-dev/ocp-v4.0-art-dev@${digest(n)}`;
const extra = (n: number) => `registry.example.com/tools/t@${digest(n)}`;

function image(name: string, origin: BundleImage['origin']): BundleImage {
  return { name, repository: name.slice(0, name.indexOf('@')), digest: name.slice(name.indexOf('@') + 1) as Digest, mediaType: 'application/vnd.oci.image.manifest.v1+json', origin, platforms: ['linux/amd64'], manifests: [], blobs: [] };
}

/** A bundle with `releases` ([version, payload n, component ns]) and extra images. */
function bundle(name: string, releases: Array<[string, number, number[]]>, extras: number[] = [], legacy = false): NodeBundle {
  const images = new Map<string, BundleImage>();
  for (const [, p, cs] of releases) {
    images.set(payload(p), image(payload(p), 'release'));
    for (const c of cs) images.set(component(c), image(component(c), 'component'));
  }
  for (const e of extras) images.set(extra(e), image(extra(e), 'extra'));
  const list = releases.map(([version, p, cs]) => ({ name: payload(p), digest: digest(p), version, components: cs.map((c) => ({ name: `c${c}`, image: component(c) })) }));
  const newest = list.at(-1);
  const manifest = {
    format: 'pin-preload.bundle',
    formatVersion: 1,
    tool: { name: 'pin-preload', version: '0' },
    created: '2026-01-01T00:00:00Z',
    ...(newest ? { release: { name: newest.name, digest: newest.digest, version: newest.version } } : {}),
    ...(legacy || list.length === 0 ? {} : { releases: list }),
    platforms: ['linux/amd64'],
    images: [...images.values()],
    blobs: [],
  } as BundleManifest;
  return { path: `/b/${name}`, sealPath: `/b/${name}.seal.json`, manifest, manifestDigest: digest(name.length * 1000 + name.charCodeAt(0)), fingerprint: '' };
}

const imported = (...names: string[]) => new Map(names.map((n, i) => [`/b/${n}`, `2026-01-0${i + 1}T00:00:00Z`]));

test('the newest N releases by semver are kept; images only older releases use are retired, shared ones stay', () => {
  // Three z-streams, each its own bundle, imported out of version order: semver decides, not import order.
  const a = bundle('a', [['4.16.0', 1, [10, 11, 12]]], [90]);
  const b = bundle('b', [['4.16.10', 2, [10, 11, 22]]]);
  const c = bundle('c', [['4.16.9', 3, [10, 31, 12]]]);
  const plan = planRetirement([a, b, c], 2, imported('a', 'b', 'c'));
  assert.equal(plan.orderedBy, 'version');
  assert.deepEqual(plan.kept.map((r) => r.version), ['4.16.10', '4.16.9']);
  assert.deepEqual(plan.retired.map((r) => [r.version, r.bundles]), [['4.16.0', ['/b/a']]]);
  assert.deepEqual(plan.newestImages, [payload(2), component(10), component(11), component(22)].sort());
  assert.deepEqual(plan.removableBundles.map((x) => x.path), ['/b/a']);
  // Once applied only 4.16.0's payload is its own: component 11 is shared with 4.16.10, 12 with 4.16.9. The
  // extra image of bundle a belongs to bundle a: it leaves with the bundle, not through this list.
  assert.deepEqual([...retiredImages(plan, new Set([payload(1)]))].sort(), [payload(1)]);
  assert.deepEqual([...retiredImages(plan, new Set())], [], 'nothing is left out before the retirement is applied');
});

test('keep 1 retires every older release; a bundle still holding a kept release stays, its old release retired', () => {
  const both = bundle('both', [['4.16.1', 1, [10, 11]], ['4.16.2', 2, [10, 21]]], [90]);
  const plan = planRetirement([both], 1, imported('both'));
  assert.deepEqual(plan.kept.map((r) => r.version), ['4.16.2']);
  assert.deepEqual(plan.retired.map((r) => r.version), ['4.16.1']);
  assert.deepEqual(plan.removableBundles, [], 'the bundle holds the kept release');
  assert.deepEqual([...retiredImages(plan, new Set([payload(1)]))].sort(), [payload(1), component(11)].sort(), 'the extra image belongs to the kept bundle');
});

test('without semver versions the releases are ordered by bundle import order, later imports newer', () => {
  const old = bundle('old', [['', 1, [10]]]);
  const mid = bundle('mid', [['nightly', 2, [20]]]);
  const now = bundle('now', [['4.16.3', 3, [30]]]);
  const plan = planRetirement([now, old, mid], 2, imported('old', 'mid', 'now'));
  assert.equal(plan.orderedBy, 'import order');
  assert.deepEqual(plan.kept.map((r) => r.name), [payload(3), payload(2)]);
  assert.deepEqual(plan.removableBundles.map((x) => x.path), ['/b/old']);
});

test('a bundle without releases is never removed; a legacy bundle (no components listed) owns its non-extra images through its release', () => {
  const extras = bundle('extras', [], [90, 91]);
  const legacy = bundle('legacy', [['4.15.0', 1, [10, 11]]], [92], true);
  const current = bundle('current', [['4.16.0', 2, [20]]]);
  const plan = planRetirement([extras, legacy, current], 1, imported('extras', 'legacy', 'current'));
  assert.deepEqual(plan.removableBundles.map((x) => x.path), ['/b/legacy']);
  assert.deepEqual([...retiredImages(plan, new Set([payload(1)]))].sort(), [payload(1), component(10), component(11)].sort());
});

test('a bundle that a kept bundle depends on (a delta base) is held, transitively, never removed', () => {
  const base = bundle('base', [['4.16.0', 1, [10]]]);
  const mid = bundle('mid', [['4.16.1', 2, [20]]]);
  const top = bundle('top', [['4.16.2', 3, [30]]]);
  const dependsOn = (b: NodeBundle) => (b === top ? [mid.manifestDigest] : b === mid ? [base.manifestDigest] : []);
  const plan = planRetirement([base, mid, top], 1, imported('base', 'mid', 'top'), dependsOn);
  assert.deepEqual(plan.retired.map((r) => r.version), ['4.16.1', '4.16.0']);
  assert.deepEqual(plan.removableBundles, []);
  assert.deepEqual(plan.heldBundles.map((x) => x.path).sort(), ['/b/base', '/b/mid']);
  const free = planRetirement([base, mid, top], 1, imported('base', 'mid', 'top'));
  assert.deepEqual(free.removableBundles.map((x) => x.path).sort(), ['/b/base', '/b/mid'], 'without the dependency both go');
});

test('retirement waits while any image of the newest release is not pinned (a sync on a runtime that did not pin)', async () => {
  const a = bundle('a', [['4.16.0', 1, [10]]]);
  const b = bundle('b', [['4.16.1', 2, [10, 20]]]);
  const plan = planRetirement([a, b], 1, imported('a', 'b'));
  const calls: string[] = [];
  const io = { recordReleases: () => void calls.push('record'), recordRemovedBundle: () => void calls.push('remove'), log: (line: string) => void calls.push(line) };
  const notAll = new Set([payload(2), component(10)]);
  assert.equal(await applyRetirement(plan, new Set(), notAll, io), undefined);
  assert.deepEqual(calls, ['retirement waits: 1 image(s) of the newest release 4.16.1 are not pinned yet']);
});

test('the desired set leaves out the images of releases already retired, even in a bundle that stays', () => {
  // Bundle ab holds 4.16.0 and 4.16.1; with 4.16.2 beside it and keep_releases = 2, 4.16.0 is retired but
  // bundle ab stays (it holds a kept release). Import and preload both take the set from here.
  const ab = bundle('ab', [['4.16.0', 1, [10, 11]], ['4.16.1', 2, [10, 21]]]);
  const c = bundle('c', [['4.16.2', 3, [10, 21, 31]]]);
  const state = (retired: string[]): Pick<NodeState, 'bundles' | 'retiredReleases'> => ({
    bundles: () => [],
    retiredReleases: () => retired.map((name) => ({ name, version: '4.16.0', bundles: [], retiredAt: '2026-01-04T00:00:00Z' })),
  });
  const before = desiredSet([ab, c], 2, state([]));
  assert.ok(before.images.some((i) => i.name === payload(1)), 'not retired yet: still desired');
  const after = desiredSet([ab, c], 2, state([payload(1)]));
  assert.deepEqual(after.images.filter((i) => [payload(1), component(11)].includes(i.name)), [], "4.16.0's own images are left out");
  assert.ok(after.images.some((i) => i.name === component(10)), 'shared images stay');
  assert.notEqual(after.setKey, before.setKey, 'a new desired set, so a new generation');
  assert.match(after.setKey, / retired:/);
});
