// Cluster objects for a bundle: PinnedImageSet names checked against the CRD's CEL rules, sets split at the
// CRD's 500, mirror sets of the right shape, and the files written (and an earlier run's leftovers removed).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import type { BundleImage, BundleManifest } from '../../src/bundle/format.js';
import { buildClusterManifests, checkPoolName, objectBaseName, writeClusterManifests } from '../../src/cluster/manifests.js';
import { isMirrorLocation, mirrorRules, parseMirrorHost } from '../../src/cluster/mirror-sets.js';
import { pinnedImageSetsForPool, pinnedNameProblem, MAX_PINNED_IMAGES } from '../../src/cluster/pinned-image-set.js';
import type { Digest } from '../../src/oci/digest.js';
import { exitStatusOf } from '../../src/cli/exit-status.js';
import { UserError } from '../../src/util/errors.js';

const hex = (n: number) => n.toString(16).padStart(64, '0');
const digest = (n: number) => `sha256:${hex(n)}` as Digest;

test('PinnedImageSet names follow the CRD rules: digest suffix, dotted host, at most one namespace, 447 chars', () => {
  assert.equal(pinnedNameProblem(`quay.io/openshift-release-dev/ocp-v4.0-art-dev@${digest(1)}`), undefined);
  assert.equal(pinnedNameProblem(`registry.example.com:5000/tools@${digest(1)}`), undefined);
  assert.equal(pinnedNameProblem(`127.0.0.1:5000/a/b@${digest(1)}`), undefined);
  assert.match(pinnedNameProblem(`quay.io/a/b:1`)!, /@sha256:<64 hex>/);
  assert.match(pinnedNameProblem(`quay.io/a/b@sha256:${hex(0xabcdef).toUpperCase()}`)!, /@sha256:<64 hex>/);
  assert.match(pinnedNameProblem(`localhost/a/b@${digest(1)}`)!, /host "localhost" without a dot/);
  assert.match(pinnedNameProblem(`registry.example.com/team/sub/app@${digest(1)}`)!, /2 namespace levels/);
  const long = `registry.example.com/ns/${'a'.repeat(400)}@${digest(1)}`;
  assert.match(pinnedNameProblem(long)!, /is 496 characters long; a PinnedImageSet name has 1 to 447/);
});

test('a pool gets one set of up to 500 images, more are split into numbered sets of at most 500, sorted', () => {
  const names = Array.from({ length: 1001 }, (_, i) => `quay.io/ns/img@${digest(1001 - i)}`);
  const sets = pinnedImageSetsForPool('pin-preload-ocp', 'worker', [...names, names[0]!]);
  assert.deepEqual(sets.map((s) => [s.metadata.name, s.spec.pinnedImages.length]), [['pin-preload-ocp-worker-1', 500], ['pin-preload-ocp-worker-2', 500], ['pin-preload-ocp-worker-3', 1]]);
  assert.equal(sets[0]!.spec.pinnedImages[0]!.name, `quay.io/ns/img@${digest(1)}`);
  assert.deepEqual(sets[2]!.metadata.labels, { 'machineconfiguration.openshift.io/role': 'worker' });
  const one = pinnedImageSetsForPool('pin-preload-ocp', 'master', names.slice(0, MAX_PINNED_IMAGES));
  assert.deepEqual(one.map((s) => s.metadata.name), ['pin-preload-ocp-master']);
});

test('mirror rules send each repository to HOST/path, qualified by registry when two share a path', () => {
  const rules = mirrorRules(
    [
      { domain: 'quay.io', path: 'openshift-release-dev/ocp-v4.0-art-dev' },
      { domain: 'quay.io', path: 'acme/tool' },
      { domain: 'registry.example.com', path: 'acme/tool' },
    ],
    'mirror.example.com:5000',
  );
  assert.deepEqual(rules, [
    { source: 'quay.io/acme/tool', mirrors: ['mirror.example.com:5000/quay.io/acme/tool'] },
    { source: 'quay.io/openshift-release-dev/ocp-v4.0-art-dev', mirrors: ['mirror.example.com:5000/openshift-release-dev/ocp-v4.0-art-dev'] },
    { source: 'registry.example.com/acme/tool', mirrors: ['mirror.example.com:5000/registry.example.com/acme/tool'] },
  ]);
  assert.ok(rules.every((r) => isMirrorLocation(r.source) && r.mirrors.every(isMirrorLocation)));
  assert.equal(parseMirrorHost('mirror.example.com:5000'), 'mirror.example.com:5000');
  for (const bad of ['https://mirror', 'mirror/x', 'mir ror', '-bad.example.com']) assert.throws(() => parseMirrorHost(bad), (e: unknown) => e instanceof UserError && exitStatusOf(e) === 2);
  assert.throws(() => checkPoolName('Worker'), (e: unknown) => e instanceof UserError && /--pool "Worker"/.test(e.message));
  assert.equal(objectBaseName('OCP 4.16.3 + extras.tar'), 'pin-preload-ocp-4-16-3-extras-tar');
});

function bundleImage(name: string, over: Partial<BundleImage> = {}): BundleImage {
  const at = name.lastIndexOf('@');
  return { name, repository: name.slice(0, at), digest: name.slice(at + 1) as Digest, mediaType: 'application/vnd.oci.image.manifest.v1+json', origin: 'extra', platforms: ['linux/amd64'], manifests: [], blobs: [], ...over };
}

const MANIFEST: BundleManifest = {
  format: 'pin-preload.bundle',
  formatVersion: 1,
  tool: { name: 'pin-preload', version: 'test' },
  created: '2026-01-01T00:00:00Z',
  platforms: ['linux/amd64'],
  images: [
    bundleImage(`quay.io/openshift-release-dev/ocp-release@${digest(1)}`, { origin: 'release', tag: '4.16.3-x86_64' }),
    bundleImage(`quay.io/openshift-release-dev/ocp-v4.0-art-dev@${digest(2)}`, { origin: 'component', component: 'etcd' }),
    bundleImage(`registry.example.com/sample/tools@${digest(3)}`, { tag: '1.0' }),
    bundleImage(`registry.example.com/team/sub/app@${digest(4)}`),
  ],
  blobs: [],
};

test('a bundle gives sets per pool, an IDMS for every repository and an ITMS for tag-resolved ones; unnameable images are reported', () => {
  const built = buildClusterManifests(MANIFEST, { name: 'pin-preload-ocp', pools: ['master', 'worker'], mirrorHost: 'mirror.example.com:5000' });
  assert.deepEqual(built.objects.map((o) => [o.kind, o.metadata.name]), [
    ['PinnedImageSet', 'pin-preload-ocp-master'],
    ['PinnedImageSet', 'pin-preload-ocp-worker'],
    ['ImageDigestMirrorSet', 'pin-preload-ocp'],
    ['ImageTagMirrorSet', 'pin-preload-ocp'],
  ]);
  assert.equal(built.pinnedImages, 3);
  assert.deepEqual(built.unexpressible.map((u) => [u.image, u.object]), [[`registry.example.com/team/sub/app@${digest(4)}`, 'PinnedImageSet']]);
  const idms = built.objects[2]!;
  assert.deepEqual(idms, {
    apiVersion: 'config.openshift.io/v1',
    kind: 'ImageDigestMirrorSet',
    metadata: { name: 'pin-preload-ocp' },
    spec: {
      imageDigestMirrors: [
        { source: 'quay.io/openshift-release-dev/ocp-release', mirrors: ['mirror.example.com:5000/openshift-release-dev/ocp-release'] },
        { source: 'quay.io/openshift-release-dev/ocp-v4.0-art-dev', mirrors: ['mirror.example.com:5000/openshift-release-dev/ocp-v4.0-art-dev'] },
        { source: 'registry.example.com/sample/tools', mirrors: ['mirror.example.com:5000/sample/tools'] },
        { source: 'registry.example.com/team/sub/app', mirrors: ['mirror.example.com:5000/team/sub/app'] },
      ],
    },
  });
  assert.deepEqual(((built.objects[3] as { spec: unknown }).spec as { imageTagMirrors: unknown }).imageTagMirrors, [
    { source: 'quay.io/openshift-release-dev/ocp-release', mirrors: ['mirror.example.com:5000/openshift-release-dev/ocp-release'] },
    { source: 'registry.example.com/sample/tools', mirrors: ['mirror.example.com:5000/sample/tools'] },
  ]);
  // Without a mirror host: pinning only (nodes running pin-preload get their mirror from its drop-in).
  assert.deepEqual(buildClusterManifests(MANIFEST, { name: 'x', pools: ['worker'] }).objects.map((o) => o.kind), ['PinnedImageSet']);
});

test('one YAML object per file with the CRD fields; a rerun removes only its own files it no longer produces', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-manifests-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(path.join(dir, 'pin-preload-other-worker.pinnedimageset.yaml'), 'kept: true\n');
  const first = buildClusterManifests(MANIFEST, { name: 'pin-preload-ocp', pools: ['worker'], mirrorHost: 'mirror.example.com', perSet: 2 });
  const written = await writeClusterManifests(dir, first, { name: 'pin-preload-ocp', pools: ['worker'] });
  assert.deepEqual(written.files.map((f) => path.basename(f)), [
    'pin-preload-ocp-worker-1.pinnedimageset.yaml',
    'pin-preload-ocp-worker-2.pinnedimageset.yaml',
    'pin-preload-ocp.imagedigestmirrorset.yaml',
    'pin-preload-ocp.imagetagmirrorset.yaml',
  ]);
  const set = parse(await readFile(written.files[0]!, 'utf8')) as Record<string, unknown>;
  assert.deepEqual(Object.keys(set), ['apiVersion', 'kind', 'metadata', 'spec']);
  assert.equal(set.apiVersion, 'machineconfiguration.openshift.io/v1');
  const items = (set.spec as { pinnedImages: Array<{ name: string }> }).pinnedImages;
  assert.ok(items.length >= 1 && items.length <= 2 && items.every((i) => Object.keys(i).join() === 'name' && pinnedNameProblem(i.name) === undefined));

  const second = buildClusterManifests(MANIFEST, { name: 'pin-preload-ocp', pools: ['worker'] });
  const again = await writeClusterManifests(dir, second, { name: 'pin-preload-ocp', pools: ['worker'] });
  assert.deepEqual(again.removed.map((f) => path.basename(f)).sort(), [
    'pin-preload-ocp-worker-1.pinnedimageset.yaml',
    'pin-preload-ocp-worker-2.pinnedimageset.yaml',
    'pin-preload-ocp.imagedigestmirrorset.yaml',
    'pin-preload-ocp.imagetagmirrorset.yaml',
  ]);
  assert.deepEqual((await readdir(dir)).sort(), ['pin-preload-ocp-worker.pinnedimageset.yaml', 'pin-preload-other-worker.pinnedimageset.yaml']);
});

test('signatures and referrers carried in a bundle are never pinned and add no tag mirror', () => {
  const subject = digest(1);
  const withSignature: BundleManifest = {
    ...MANIFEST,
    formatVersion: 2,
    images: [...MANIFEST.images, bundleImage(`quay.io/openshift-release-dev/ocp-release@${digest(9)}`, { origin: 'signature', subject, tag: `sha256-${subject.slice(7)}.sig`, platforms: [] })],
  };
  const plain = buildClusterManifests(MANIFEST, { name: 'pin-preload-ocp', pools: ['worker'], mirrorHost: 'mirror.example.com:5000' });
  const signed = buildClusterManifests(withSignature, { name: 'pin-preload-ocp', pools: ['worker'], mirrorHost: 'mirror.example.com:5000' });
  assert.equal(signed.pinnedImages, plain.pinnedImages);
  assert.deepEqual(signed.objects, plain.objects);
});
