// Signatures carried and served, end to end with real peers: a docker-registry (no referrers API, so the
// fallback tag path) holding a cosign signature and two OCI 1.1 referrers built in their documented layouts;
// `bundle plan/create --signatures`, verify and inspect of the bundle; our mirror serving the .sig and
// fallback tags byte for byte (checked with skopeo against both) and the referrers API with filtering; and
// a second create reading from our mirror, which does implement the referrers API.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { openBundle } from '../../src/bundle/reader.js';
import { serveBundles, type ServingBundles } from '../../src/mirror/serve.js';
import { MediaType } from '../../src/oci/media-types.js';
import { cosignSignatureTag, referrersFallbackTag } from '../../src/oci/referrers.js';
import { assertNoInternalError, runCli } from '../support/cli.js';
import { startDockerRegistry, writeSampleSourceConfig, type RunningRegistry } from '../support/docker-registry.js';
import { freePort } from '../support/ports.js';
import { startRegistryProxy } from '../support/registry-proxy.js';
import { pushCosignSignature, pushReferrer, pushReferrersFallbackTag, pushSmallImage, type PushedManifest } from '../support/signed-artifacts.js';

const run = promisify(execFile);
const SIGNED = 'app/signed';
const PLAIN = 'app/plain';
const SBOM_TYPE = 'application/vnd.example.sbom.v1+json';
const ATTESTATION_TYPE = 'application/vnd.example.attestation.v1+json';

let work: string;
let registry: RunningRegistry;
let conf: string;
let authfile: string;
let signed: PushedManifest;
let plain: PushedManifest;
let signature: PushedManifest;
let sbom: PushedManifest;
let attestation: PushedManifest;
let fallbackIndex: PushedManifest;
let output: string;
let serving: ServingBundles | undefined;

const imageArgs = () => ['--image', `registry.example.com/${SIGNED}:v1`, '--image', `registry.example.com/${PLAIN}:v1`];
const hexOf = (digest: string) => digest.slice('sha256:'.length);

function get(port: number, target: string, accept = `${MediaType.ociManifest}, ${MediaType.ociIndex}`): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: target, headers: { accept } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

before(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-signature-artifacts-'));
  registry = await startDockerRegistry();
  ({ conf, authfile } = await writeSampleSourceConfig(work, registry));
  signed = await pushSmallImage(registry.url, SIGNED, 'v1', 's');
  plain = await pushSmallImage(registry.url, PLAIN, 'v1', 'p');
  signature = await pushCosignSignature(registry.url, SIGNED, `registry.example.com/${SIGNED}:v1`, signed.digest);
  sbom = await pushReferrer(registry.url, SIGNED, signed, SBOM_TYPE, '{"sbom":"yes"}');
  attestation = await pushReferrer(registry.url, SIGNED, signed, ATTESTATION_TYPE, '{"attested":"yes"}');
  fallbackIndex = await pushReferrersFallbackTag(registry.url, SIGNED, signed.digest, [sbom, attestation]);
  output = path.join(work, 'signed.tar');
});

after(async () => {
  await serving?.close();
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('signatures carried in a bundle', () => {
  test('plan --signatures lists the .sig and the fallback tag of the signed image, and nothing for the unsigned one', async () => {
    const planned = await runCli(['bundle', 'plan', '--registries-conf', conf, '--authfile', authfile, ...imageArgs(), '--signatures', '--json']);
    assertNoInternalError(planned, 'plan');
    assert.equal(planned.code, 0, planned.stderr);
    const plan = JSON.parse(planned.stdout) as { signatures: { artifacts: number; subjects: number }; images: Array<{ digest: string; origin: string; tag: string | null; subject: string | null; manifests: string[] }> };
    assert.deepEqual(plan.signatures, { artifacts: 2, subjects: 1 });
    const carried = plan.images.filter((i) => i.origin === 'signature');
    assert.deepEqual(carried.map((i) => [i.tag, i.digest, i.subject]), [
      [cosignSignatureTag(signed.digest), signature.digest, signed.digest],
      [referrersFallbackTag(signed.digest), fallbackIndex.digest, signed.digest],
    ]);
    assert.deepEqual(carried[1]!.manifests, [fallbackIndex.digest, sbom.digest, attestation.digest]);
    const human = await runCli(['bundle', 'plan', '--registries-conf', conf, '--authfile', authfile, ...imageArgs(), '--signatures']);
    assert.match(human.stdout, /Signatures: 2 signature\(s\) and referrer\(s\) of 1 image\(s\)/);
    assert.match(human.stdout, new RegExp(`signature\\s+registry\\.example\\.com/${SIGNED}:${cosignSignatureTag(signed.digest).replace('.', '\\.')}`));
    const without = JSON.parse((await runCli(['bundle', 'plan', '--registries-conf', conf, '--authfile', authfile, ...imageArgs(), '--json'])).stdout) as { signatures: unknown; images: unknown[] };
    assert.equal(without.signatures, null);
    assert.equal(without.images.length, 2);
  });

  test('create --signatures carries them as manifests, blobs and tags; verify covers them and inspect shows them', async () => {
    const created = await runCli(['bundle', 'create', '--registries-conf', conf, '--authfile', authfile, ...imageArgs(), '--signatures', '--output', output, '--quiet'], { timeoutMs: 120_000 });
    assertNoInternalError(created, 'create');
    assert.equal(created.code, 0, created.stderr);
    const opened = await openBundle(output);
    try {
      assert.equal(opened.manifest.formatVersion, 2, 'a bundle carrying signatures is format version 2');
      const sig = opened.manifest.images.find((i) => i.tag === cosignSignatureTag(signed.digest));
      assert.equal(sig?.origin, 'signature');
      assert.equal(sig?.subject, signed.digest);
      const digests = new Set(opened.manifest.blobs.map((b) => b.digest));
      for (const d of [signature.digest, fallbackIndex.digest, sbom.digest, attestation.digest]) assert.ok(digests.has(d), `bundle holds ${d}`);
    } finally {
      await opened.close();
    }
    const verified = await runCli(['bundle', 'verify', output, '--json']);
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
    const inspected = JSON.parse((await runCli(['bundle', 'inspect', output, '--json'])).stdout) as { images: Array<{ origin: string; tag?: string; subject?: string }> };
    assert.deepEqual(
      inspected.images.filter((i) => i.origin === 'signature').map((i) => [i.tag, i.subject]),
      [[cosignSignatureTag(signed.digest), signed.digest], [referrersFallbackTag(signed.digest), signed.digest]],
    );
    const manifests = await runCli(['bundle', 'manifests', output, '--output', path.join(work, 'cluster'), '--pool', 'worker']);
    assert.equal(manifests.code, 0, manifests.stderr);
  });
});

describe('signatures served by the mirror', () => {
  let port: number;
  before(async () => {
    serving = await serveBundles({ state: path.join(work, 'state.db'), bundles: [output], listen: `127.0.0.1:${await freePort()}` });
    port = serving.mirror.port;
  });

  test('the .sig and fallback tags come back byte for byte from skopeo against docker-registry and our mirror', async () => {
    for (const [tag, pushed] of [[cosignSignatureTag(signed.digest), signature], [referrersFallbackTag(signed.digest), fallbackIndex]] as const) {
      for (const host of [registry.host, `127.0.0.1:${port}/registry.example.com`]) {
        const { stdout } = await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${host}/${SIGNED}:${tag}`], { encoding: 'buffer', maxBuffer: 1 << 20 });
        assert.ok(Buffer.compare(stdout, pushed.bytes) === 0, `skopeo reads ${tag} from ${host} byte for byte`);
      }
      const res = await get(port, `/v2/registry.example.com/${SIGNED}/manifests/${tag}`);
      assert.equal(res.status, 200);
      assert.equal(res.headers['docker-content-digest'], pushed.digest);
      assert.ok(res.body.equals(pushed.bytes));
    }
    const tags = JSON.parse((await get(port, `/v2/registry.example.com/${SIGNED}/tags/list`, 'application/json')).body.toString()) as { tags: string[] };
    assert.deepEqual(tags.tags, [referrersFallbackTag(signed.digest), cosignSignatureTag(signed.digest), 'v1']);
  });

  test('the referrers API lists both referrers with artifactType and annotations, filters by artifactType, and answers an empty index for none', async () => {
    const all = await get(port, `/v2/registry.example.com/${SIGNED}/referrers/${signed.digest}`);
    assert.equal(all.status, 200);
    assert.equal(all.headers['content-type'], MediaType.ociIndex);
    const index = JSON.parse(all.body.toString()) as { mediaType: string; manifests: Array<{ digest: string; size: number; artifactType: string; annotations: Record<string, string> }> };
    assert.equal(index.mediaType, MediaType.ociIndex);
    assert.deepEqual(index.manifests.map((m) => [m.digest, m.size, m.artifactType]).sort(), [
      [sbom.digest, sbom.bytes.length, SBOM_TYPE],
      [attestation.digest, attestation.bytes.length, ATTESTATION_TYPE],
    ].sort());
    assert.equal(index.manifests.find((m) => m.digest === sbom.digest)?.annotations['io.pin-preload.test.content'], '{"sbom":"yes"}');
    const filtered = await get(port, `/v2/registry.example.com/${SIGNED}/referrers/${signed.digest}?artifactType=${encodeURIComponent(SBOM_TYPE)}`);
    assert.equal(filtered.headers['oci-filters-applied'], 'artifactType');
    assert.deepEqual((JSON.parse(filtered.body.toString()) as { manifests: Array<{ digest: string }> }).manifests.map((m) => m.digest), [sbom.digest]);
    const none = await get(port, `/v2/registry.example.com/${PLAIN}/referrers/${plain.digest}`);
    assert.equal(none.status, 200);
    assert.deepEqual((JSON.parse(none.body.toString()) as { manifests: unknown[] }).manifests, []);
    const bad = await get(port, `/v2/registry.example.com/${SIGNED}/referrers/sha256:nothex`);
    assert.equal(bad.status, 400);
  });

  test('create --signatures from a registry with the referrers API (our mirror) takes each referrer by the API, not the fallback tag', async () => {
    const mirrorConf = path.join(work, 'mirror-registries.conf');
    await writeFile(mirrorConf, `[[registry]]\nprefix = "registry.example.com"\nlocation = "127.0.0.1:${port}/registry.example.com"\ninsecure = true\n`);
    const planned = await runCli(['bundle', 'plan', '--registries-conf', mirrorConf, '--authfile', authfile, '--image', `registry.example.com/${SIGNED}:v1`, '--signatures', '--json']);
    assert.equal(planned.code, 0, planned.stderr);
    const plan = JSON.parse(planned.stdout) as { images: Array<{ digest: string; origin: string; tag: string | null; artifactType: string | null }> };
    assert.deepEqual(
      plan.images.filter((i) => i.origin === 'signature').map((i) => [i.digest, i.tag, i.artifactType]),
      [
        [signature.digest, cosignSignatureTag(signed.digest), null],
        ...[[sbom.digest, null, SBOM_TYPE], [attestation.digest, null, ATTESTATION_TYPE]].sort((a, b) => (a[0]! < b[0]! ? -1 : 1)),
      ],
    );
  });
});

test('a registry error other than 404 while looking for signatures names the image and fails the plan', async () => {
  const proxy = await startRegistryProxy(registry.url, { fault: (req) => (req.path.includes(`/manifests/${cosignSignatureTag(plain.digest)}`) ? { kind: 'status', status: 403 } : undefined) });
  try {
    const proxied = path.join(work, 'proxied-registries.conf');
    await writeFile(proxied, `[[registry]]\nprefix = "registry.example.com"\nlocation = "${proxy.host}"\ninsecure = true\n`);
    const planned = await runCli(['bundle', 'plan', '--registries-conf', proxied, '--authfile', authfile, '--image', `registry.example.com/${PLAIN}:v1`, '--signatures']);
    assertNoInternalError(planned, 'plan');
    assert.notEqual(planned.code, 0);
    assert.match(planned.stderr, new RegExp(`signatures of image registry\\.example\\.com/${PLAIN}@${plain.digest}`));
    assert.ok(!planned.stderr.includes(hexOf(signed.digest)));
  } finally {
    await proxy.stop();
  }
});
