import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { sha256Of, type Digest } from '../../src/oci/digest.js';
import { MediaType } from '../../src/oci/media-types.js';
import { formatReference, repositoryName, type Reference, type Repository } from '../../src/oci/reference.js';
import { COMPRESSED_LAYER_RATIO, planBundle } from '../../src/plan/resolve.js';
import { requestImage, type Selection } from '../../src/plan/selection.js';
import type { FetchedManifest, ImageSource } from '../../src/registry/source.js';
import { UserError } from '../../src/util/errors.js';

interface Desc { mediaType: string; digest: Digest; size: number; platform?: { os: string; architecture: string } }

/** A registry in memory: manifests by repository and tag or digest, blobs by digest; counts what is asked. */
class MemoryRegistry implements ImageSource {
  readonly blobs = new Map<Digest, Buffer>();
  readonly manifests = new Map<string, { bytes: Buffer; mediaType: string }>();
  readonly tags = new Map<string, Digest>();
  readonly blobGets: Digest[] = [];
  manifestGets = 0;
  inFlight = 0;
  maxInFlight = 0;

  blob(bytes: Buffer | string, mediaType: string): Desc {
    const b = Buffer.from(bytes);
    const digest = sha256Of(b);
    this.blobs.set(digest, b);
    return { mediaType, digest, size: b.length };
  }

  manifest(repo: string, doc: object, tag?: string): Desc {
    const bytes = Buffer.from(JSON.stringify(doc));
    const digest = sha256Of(bytes);
    const mediaType = (doc as { mediaType: string }).mediaType;
    this.manifests.set(`${repo}@${digest}`, { bytes, mediaType });
    if (tag) this.tags.set(`${repo}:${tag}`, digest);
    return { mediaType, digest, size: bytes.length };
  }

  image(repo: string, config: Desc, layers: Desc[], tag?: string): Desc {
    return this.manifest(repo, { schemaVersion: 2, mediaType: MediaType.ociManifest, config, layers }, tag);
  }

  index(repo: string, children: Desc[], tag?: string): Desc {
    return this.manifest(repo, { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: children }, tag);
  }

  async getManifest(ref: Reference): Promise<FetchedManifest> {
    this.manifestGets++;
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    await new Promise((r) => setTimeout(r, 2));
    this.inFlight--;
    const repo = repositoryName(ref);
    const digest = ref.digest ?? this.tags.get(`${repo}:${ref.tag}`);
    const m = digest && this.manifests.get(`${repo}@${digest}`);
    if (!m || !digest) throw new UserError('MANIFEST_UNKNOWN', `manifest ${formatReference(ref)} not found`);
    return { bytes: m.bytes, mediaType: m.mediaType, digest };
  }

  blobStream(_repo: Repository, blob: { digest: Digest }): Readable {
    this.blobGets.push(blob.digest);
    return Readable.from([this.blobs.get(blob.digest)!]);
  }
}

const ART = 'quay.io/openshift-release-dev/ocp-v4.0-art-dev';
const REL = 'quay.io/openshift-release-dev/ocp-release';
const amd64 = { os: 'linux', architecture: 'amd64' };
const arm64 = { os: 'linux', architecture: 'arm64' };

async function releaseLayer(stream: object): Promise<Buffer> {
  const pack = tar.pack();
  pack.entry({ name: 'release-manifests/image-references' }, JSON.stringify(stream));
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return gzipSync(Buffer.concat(chunks));
}

/** A release of `components` single-arch images plus one multi-arch index, all over one shared base layer. */
async function fixture(components: number) {
  const reg = new MemoryRegistry();
  const base = reg.blob(gzipSync(Buffer.alloc(5000, 1)), MediaType.ociLayerGzip);
  const plainTar = reg.blob(Buffer.alloc(1024, 2), MediaType.ociLayerTar);
  const tags: Array<{ name: string; digest: Digest }> = [];
  for (let i = 0; i < components; i++) {
    const config = reg.blob(JSON.stringify({ architecture: 'amd64', os: 'linux', n: i }), MediaType.ociConfig);
    const own = reg.blob(gzipSync(Buffer.from(`component ${i}`)), MediaType.ociLayerGzip);
    tags.push({ name: `component-${i}`, digest: reg.image(ART, config, [base, own]).digest });
  }
  const children = [amd64, arm64].map((p) => ({ ...reg.image(ART, reg.blob(JSON.stringify(p), MediaType.ociConfig), [base, plainTar]), platform: p }));
  const attestation = { ...reg.image(ART, reg.blob('{"att":1}', MediaType.ociConfig), [reg.blob('{}', 'application/vnd.in-toto+json')]), platform: { os: 'unknown', architecture: 'unknown' } };
  const multi = reg.index(ART, [...children, attestation]);
  tags.push({ name: 'multi', digest: multi.digest });
  const stream = {
    kind: 'ImageStream', apiVersion: 'image.openshift.io/v1', metadata: { name: '4.16.9' },
    spec: { tags: tags.map((t) => ({ name: t.name, from: { kind: 'DockerImage', name: `${ART}@${t.digest}` } })) },
  };
  const top = reg.blob(await releaseLayer(stream), MediaType.ociLayerGzip);
  const payload = reg.image(REL, reg.blob('{"payload":1}', MediaType.ociConfig), [base, top], '4.16.9-x86_64');
  return { reg, base, top, payload, tags, children };
}

const selection = (over: Partial<Selection> = {}): Selection => ({
  releases: [requestImage(`${REL}:4.16.9-x86_64`, '--release')],
  channels: [],
  blocked: [],
  images: [],
  platforms: [amd64],
  ...over,
});

test('plans the payload and every component by digest, fetching no blob but the payload top layer', async () => {
  const { reg, top, payload, tags } = await fixture(5);
  const plan = await planBundle(reg, selection());
  assert.equal(plan.releases[0]?.version, '4.16.9');
  assert.equal(plan.releases[0]?.reference.digest, payload.digest);
  assert.deepEqual(plan.images.map((i) => [i.origin, i.component ?? null, i.reference.digest]), [
    ['release', null, payload.digest],
    ...tags.map((t) => ['component', t.name, t.digest]),
  ]);
  assert.equal(plan.images[0]!.tag, '4.16.9-x86_64');
  assert.deepEqual(reg.blobGets, [top.digest]);
});

test('blobs are listed once across images with the repositories they come from; totals count repeats separately', async () => {
  const { reg, base, children } = await fixture(3);
  const plan = await planBundle(reg, selection());
  const baseBlob = plan.blobs.filter((b) => b.digest === base.digest);
  assert.equal(baseBlob.length, 1);
  assert.deepEqual(baseBlob[0]!.repositories, [REL, ART]);
  assert.equal(new Set(plan.blobs.map((b) => b.digest)).size, plan.blobs.length);
  assert.deepEqual(plan.blobs.map((b) => b.digest), [...plan.blobs.map((b) => b.digest)].sort());
  // payload + 3 components + the amd64 child use the base layer: 5 images, stored once.
  assert.equal(plan.totals.bytesWithRepeats - plan.totals.uniqueBytes, 4 * base.size);
  assert.ok(!plan.blobs.some((b) => b.digest === children[1]!.digest), 'the arm64 child is not planned for linux/amd64');
  for (const b of plan.blobs) {
    if (b.role === 'manifest') assert.equal(b.bytes?.length, b.size, 'manifest bytes are kept');
    else assert.equal(b.bytes, undefined, 'no config or layer data is held');
  }
});

test('uncompressed sizes: exact for JSON and plain tar, an estimate for gzip layers', async () => {
  const { reg, base } = await fixture(1);
  const plan = await planBundle(reg, selection());
  const gz = plan.blobs.find((b) => b.digest === base.digest)!;
  assert.deepEqual([gz.uncompressedSize, gz.uncompressedEstimated], [base.size * COMPRESSED_LAYER_RATIO, true]);
  const plain = plan.blobs.find((b) => b.mediaType === MediaType.ociLayerTar)!;
  assert.deepEqual([plain.uncompressedSize, plain.uncompressedEstimated], [plain.size, false]);
  for (const b of plan.blobs.filter((x) => x.role !== 'layer')) assert.deepEqual([b.uncompressedSize, b.uncompressedEstimated], [b.size, false]);
  assert.equal(plan.totals.uncompressedBytes, plan.blobs.reduce((n, b) => n + b.uncompressedSize, 0));
});

test('"all" platforms takes every runnable child of an index, leaving attestations out', async () => {
  const { reg, tags, children } = await fixture(1);
  const plan = await planBundle(reg, selection({ platforms: 'all' }));
  const multi = plan.images.find((i) => i.reference.digest === tags.at(-1)!.digest)!;
  assert.deepEqual(multi.platforms, [amd64, arm64]);
  assert.deepEqual(multi.manifests.slice(1), children.map((c) => c.digest));
  assert.deepEqual(plan.platforms, [amd64, arm64]);
});

test('a component index without a child for a wanted platform fails naming the component', async () => {
  const { reg } = await fixture(1);
  await assert.rejects(planBundle(reg, selection({ platforms: [{ os: 'linux', architecture: 's390x' }] })), (err: unknown) =>
    err instanceof UserError && err.code === 'PLATFORM_NOT_FOUND' && /release component "multi"/.test(err.message) && /available linux\/amd64, linux\/arm64/.test(err.message));
});

test('extras by tag resolve to digests; one already in the release is planned once; unknown tags name the image', async () => {
  const { reg, tags } = await fixture(2);
  const tool = reg.image('registry.example.com/tools/debug', reg.blob('{"t":1}', MediaType.ociConfig), [], '1.0');
  const plan = await planBundle(reg, selection({
    images: [requestImage('registry.example.com/tools/debug:1.0', 'list.txt:1'), requestImage(`${ART}@${tags[0]!.digest}`, 'list.txt:2')],
  }));
  const extras = plan.images.filter((i) => i.origin === 'extra');
  assert.deepEqual(extras.map((i) => [formatReference(i.reference), i.tag]), [[`registry.example.com/tools/debug@${tool.digest}`, '1.0']]);
  assert.equal(plan.images.length, 1 + tags.length + 1);
  await assert.rejects(planBundle(reg, selection({ releases: [], images: [requestImage('registry.example.com/tools/debug:2.0', 'list.txt:7')] })), (err: unknown) =>
    err instanceof UserError && err.code === 'MANIFEST_UNKNOWN' && /image registry\.example\.com\/tools\/debug:2\.0 \(from list\.txt:7\)/.test(err.message));
});

test('manifest fetches stay within the concurrency bound, and each manifest is fetched once', async () => {
  const { reg } = await fixture(40);
  const plan = await planBundle(reg, selection(), { concurrency: 4 });
  assert.ok(reg.maxInFlight <= 4, `at most 4 in flight, saw ${reg.maxInFlight}`);
  assert.ok(reg.maxInFlight >= 2, 'fetches did run in parallel');
  // payload by tag (its digest form is then cached) + 41 components + the amd64 child of the index.
  assert.equal(reg.manifestGets, 1 + 41 + 1);
  assert.equal(plan.images.length, 42);
});


test('a release asked for twice (by tag and by digest) is planned once; blockedImages leave out matching components', async () => {
  const { reg, payload, tags } = await fixture(3);
  const plan = await planBundle(reg, selection({
    releases: [requestImage(`${REL}:4.16.9-x86_64`, '--release'), requestImage(`${REL}@${payload.digest}`, 'isc.yaml:5')],
    blocked: [{ pattern: new RegExp(tags[1]!.digest.slice(7, 30)), text: 'by-digest', origin: 'isc.yaml:9' }],
  }));
  assert.equal(plan.releases.length, 1);
  assert.deepEqual(plan.releases[0]!.components.map((c) => c.name), tags.filter((_, i) => i !== 1).map((t) => t.name));
  assert.equal(plan.releases[0]!.componentCount, tags.length);
  assert.deepEqual(plan.blocked, [{ requestedAs: `${ART}@${tags[1]!.digest}`, pattern: 'by-digest', patternOrigin: 'isc.yaml:9' }]);
  assert.ok(!plan.images.some((i) => i.reference.digest === tags[1]!.digest));
});

// ---- --signatures ----

/** A MemoryRegistry that also implements the referrers API (by scanning its manifests' subject), or fails it. */
class ReferrersRegistry extends MemoryRegistry {
  referrersStatus: 'serve' | 'fail' = 'serve';
  async getReferrers(repo: Repository, digest: Digest): Promise<FetchedManifest> {
    if (this.referrersStatus === 'fail') throw new UserError('REGISTRY_ERROR', `registry answered HTTP 500 for referrers of ${repositoryName(repo)}@${digest}`);
    const manifests: Desc[] = [];
    for (const [key, m] of this.manifests) {
      const doc = JSON.parse(m.bytes.toString()) as { subject?: { digest: string } };
      if (key.startsWith(`${repositoryName(repo)}@`) && doc.subject?.digest === digest) manifests.push({ mediaType: m.mediaType, digest: sha256Of(m.bytes), size: m.bytes.length });
    }
    const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests }));
    return { bytes, mediaType: MediaType.ociIndex, digest: sha256Of(bytes) };
  }
}

function signedFixture(reg: MemoryRegistry) {
  const extra = 'registry.example.com/team/app';
  const children = [amd64, arm64].map((p) => ({ ...reg.image(extra, reg.blob(JSON.stringify(p), MediaType.ociConfig), [reg.blob(`layer ${p.architecture}`, MediaType.ociLayerTar)]), platform: p }));
  const top = reg.index(extra, children, 'v1');
  const payload = reg.blob('{"critical":{}}', 'application/vnd.dev.cosign.simplesigning.v1+json');
  const sig = reg.image(extra, reg.blob('{"sig":1}', MediaType.ociConfig), [payload], `sha256-${top.digest.slice(7)}.sig`);
  // A signature of a child: not looked for (only top-level digests are), so it must stay out of the plan.
  reg.image(extra, reg.blob('{"sig":2}', MediaType.ociConfig), [payload], `sha256-${children[0]!.digest.slice(7)}.sig`);
  const empty = reg.blob('{}', 'application/vnd.oci.empty.v1+json');
  const sbom = reg.manifest(extra, { schemaVersion: 2, mediaType: MediaType.ociManifest, artifactType: 'application/spdx+json', config: empty, layers: [reg.blob('{"spdx":1}', 'application/spdx+json')], subject: top });
  const fallback = reg.index(extra, [{ ...sbom }], `sha256-${top.digest.slice(7)}`);
  return { extra, top, sig, sbom, fallback, selection: selection({ releases: [], images: [requestImage(`${extra}:v1`, '--image')] }) };
}

test('--signatures plans the top digest\'s .sig and, without a referrers API, its fallback tag index with the referrers in it', async () => {
  const reg = new MemoryRegistry();
  const f = signedFixture(reg);
  const plan = await planBundle(reg, { ...f.selection, platforms: 'all' }, { signatures: true });
  assert.deepEqual(plan.images.map((i) => [i.origin, i.tag ?? null, i.reference.digest, i.subject ?? null]), [
    ['extra', 'v1', f.top.digest, null],
    ['signature', `sha256-${f.top.digest.slice(7)}.sig`, f.sig.digest, f.top.digest],
    ['signature', `sha256-${f.top.digest.slice(7)}`, f.fallback.digest, f.top.digest],
  ]);
  assert.deepEqual(plan.images[2]!.manifests, [f.fallback.digest, f.sbom.digest]);
  assert.deepEqual(plan.signatures, { artifacts: 2, subjects: 1 });
  assert.ok(plan.blobs.some((b) => b.digest === f.sbom.digest && b.role === 'manifest'));
  const without = await planBundle(reg, { ...f.selection, platforms: 'all' });
  assert.equal(without.signatures, undefined);
  assert.deepEqual(without.images.map((i) => i.origin), ['extra']);
});

test('--signatures takes referrers from the referrers API when the registry has one, each with its artifactType', async () => {
  const reg = new ReferrersRegistry();
  const f = signedFixture(reg);
  const plan = await planBundle(reg, { ...f.selection, platforms: 'all' }, { signatures: true });
  assert.deepEqual(plan.images.filter((i) => i.origin === 'signature').map((i) => [i.tag ?? null, i.reference.digest, i.artifactType ?? null]), [
    [`sha256-${f.top.digest.slice(7)}.sig`, f.sig.digest, null],
    [null, f.sbom.digest, 'application/spdx+json'],
  ]);
});

test('--signatures: an image with none plans nothing more; a registry error other than 404 fails naming the image', async () => {
  const reg = new ReferrersRegistry();
  const f = signedFixture(reg);
  const lone = reg.image('registry.example.com/team/lone', reg.blob('{"lone":1}', MediaType.ociConfig), [], 'v2');
  const plan = await planBundle(reg, selection({ releases: [], images: [requestImage('registry.example.com/team/lone:v2', '--image')] }), { signatures: true });
  assert.deepEqual(plan.images.map((i) => i.reference.digest), [lone.digest]);
  reg.referrersStatus = 'fail';
  await assert.rejects(planBundle(reg, { ...f.selection, platforms: 'all' }, { signatures: true }), (err: UserError) => {
    assert.equal(err.code, 'REGISTRY_ERROR');
    assert.match(err.message, new RegExp(`^signatures of image ${f.extra}@${f.top.digest}: `));
    return true;
  });
});
