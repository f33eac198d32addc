// Several releases in one bundle manifest: `releases` lists each with its components, `release` stays the
// newest for older readers, bundles written before `releases` still read as one release, bad lists are refused.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildBundleManifest, bundleReleases, parseBundleManifest } from '../../src/bundle/bundle-manifest.js';
import type { Digest } from '../../src/oci/digest.js';
import type { DigestReference } from '../../src/oci/reference.js';
import type { PlannedRelease } from '../../src/plan/plan.js';
import { UserError } from '../../src/util/errors.js';
import { testPlan } from '../support/bundle-plans.js';

const digest = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}` as Digest;
const ref = (path: string, n: number): DigestReference => ({ domain: 'quay.io', path, digest: digest(n) });

function release(version: string, n: number, components: number[], channel?: string): PlannedRelease {
  return {
    reference: ref('openshift-release-dev/ocp-release', n),
    requestedAs: `quay.io/openshift-release-dev/ocp-release@${digest(n)}`,
    version,
    componentCount: components.length,
    components: components.map((c) => ({ name: `component-${c}`, reference: ref('openshift-release-dev/ocp-v4.0-art-dev', c) })),
    ...(channel !== undefined ? { channel } : {}),
  };
}

test('the manifest lists every release with its components; release is the newest by version', () => {
  const plan = { ...testPlan([]), releases: [release('4.16.10', 1, [11, 12], 'stable-4.16'), release('4.16.9', 2, [11, 13])] };
  const manifest = buildBundleManifest(plan, { created: '2026-01-01T00:00:00Z' });
  assert.deepEqual(manifest.release, { name: `quay.io/openshift-release-dev/ocp-release@${digest(1)}`, digest: digest(1), version: '4.16.10' });
  assert.deepEqual(manifest.releases?.map((r) => [r.version, r.channel ?? null, r.components.map((c) => c.image)]), [
    ['4.16.10', 'stable-4.16', [`quay.io/openshift-release-dev/ocp-v4.0-art-dev@${digest(11)}`, `quay.io/openshift-release-dev/ocp-v4.0-art-dev@${digest(12)}`]],
    ['4.16.9', null, [`quay.io/openshift-release-dev/ocp-v4.0-art-dev@${digest(11)}`, `quay.io/openshift-release-dev/ocp-v4.0-art-dev@${digest(13)}`]],
  ]);
  const parsed = parseBundleManifest(Buffer.from(JSON.stringify(manifest)), 'b.tar');
  assert.equal(bundleReleases(parsed).length, 2);
  assert.equal(buildBundleManifest(testPlan([]), { created: '2026-01-01T00:00:00Z' }).releases, undefined, 'no release, no list');
});

test('a manifest written before releases existed reads as its one release; a malformed list is refused', () => {
  const old = { ...buildBundleManifest(testPlan([]), { created: '2026-01-01T00:00:00Z' }), release: { name: `quay.io/r/r@${digest(1)}`, digest: digest(1), version: '4.15.2' } };
  assert.deepEqual(bundleReleases(parseBundleManifest(Buffer.from(JSON.stringify(old)), 'old.tar')), [{ name: `quay.io/r/r@${digest(1)}`, digest: digest(1), version: '4.15.2', components: [] }]);
  const bad = { ...old, releases: [{ name: 'x', version: '1.0.0', digest: digest(1), components: [{ name: 'a' }] }] };
  assert.throws(() => parseBundleManifest(Buffer.from(JSON.stringify(bad)), 'bad.tar'), (e: unknown) => e instanceof UserError && e.code === 'BUNDLE_MANIFEST_INVALID' && /release x: components must be a list of \{name, image\}/.test(e.message));
});

test('a bundle carrying signatures is format version 2 (readers of version 1 refuse it by name); version 3 is refused here', () => {
  const plain = buildBundleManifest(testPlan([]), { created: '2026-01-01T00:00:00Z' });
  assert.equal(plain.formatVersion, 1);
  const subject = digest(1);
  const signature = { reference: ref('team/app', 2), requestedAs: 'quay.io/team/app:sig', tag: `sha256-${subject.slice(7)}.sig`, origin: 'signature' as const, subject, mediaType: 'application/vnd.oci.image.manifest.v1+json', platforms: [], manifests: [digest(2)], blobs: [] };
  const signed = buildBundleManifest({ ...testPlan([]), images: [signature] }, { created: '2026-01-01T00:00:00Z' });
  assert.equal(signed.formatVersion, 2);
  assert.equal(signed.images[0]?.subject, subject);
  assert.equal(parseBundleManifest(Buffer.from(JSON.stringify(signed)), 'b.tar').formatVersion, 2);
  const { subject: _dropped, ...noSubject } = signed.images[0]!;
  assert.throws(() => parseBundleManifest(Buffer.from(JSON.stringify({ ...signed, images: [noSubject] })), 'b.tar'), /signature .* has no subject digest/);
  assert.throws(() => parseBundleManifest(Buffer.from(JSON.stringify({ ...signed, formatVersion: 3 })), 'b.tar'), (err: UserError) => err.code === 'BUNDLE_FORMAT_UNSUPPORTED' && /version 3 is not supported \(this pin-preload reads versions 1, 2\)/.test(err.message));
});
