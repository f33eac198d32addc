// Release signatures end to end: two generated sample releases in a real docker-registry, a local signature
// store (and update graph) on 127.0.0.1 serving signatures made by real gpg, and the built CLI: plan counts them, create carries
// them, verify re-checks them, manifests writes the CVO's ConfigMaps byte for byte; every failure is named.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { openBundle } from '../../src/bundle/reader.js';
import { MANIFEST_ENTRY } from '../../src/bundle/format.js';
import { generateSampleRelease, pushLayout, RELEASE_REPOSITORY, type SampleRelease } from '../../src/sample/index.js';
import { assertNoInternalError, runCli } from '../support/cli.js';
import { startDockerRegistry, writeSampleSourceConfig, type RunningRegistry } from '../support/docker-registry.js';
import { atomicPayload, createTestSigner, type TestSigner } from '../support/gpg.js';

let work: string;
let registry: RunningRegistry;
let store: http.Server;
let storeUrl: string;
let graphUrl: string;
let signer: TestSigner;
let stranger: TestSigner;
let conf: string;
let authfile: string;
const samples: SampleRelease[] = [];
/** Path under the store root (sha256=<hex>/signature-N) → bytes, or a status to answer with. */
const served = new Map<string, Buffer | number>();

const hexOf = (digest: string) => digest.slice('sha256:'.length);

before(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-signatures-'));
  [registry, signer, stranger] = await Promise.all([startDockerRegistry(), createTestSigner(), createTestSigner('Stranger')]);
  for (const version of ['4.16.0-sample', '4.16.1-sample']) {
    const sample = await generateSampleRelease(path.join(work, version), { version, changedShare: 0.2, extraImages: 0, baseLayerSize: 64 * 1024, componentLayerSize: 16 * 1024 });
    await pushLayout(sample.dir, registry.url, { concurrency: 8 });
    samples.push(sample);
  }
  // The update graph of a channel holding both releases, so that one create bundles both (a channel range).
  const graph = {
    nodes: samples.map((s) => ({ version: s.params.version, payload: `${RELEASE_REPOSITORY}@${s.releaseDigest}`, metadata: {} })),
    edges: [[0, 1]],
  };
  store = http.createServer((req, res) => {
    if ((req.url ?? '').startsWith('/graph')) return void res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(graph));
    const entry = served.get((req.url ?? '').replace(/^\/store\//, ''));
    if (entry === undefined) return void res.writeHead(404).end('not found');
    if (typeof entry === 'number') return void res.writeHead(entry).end();
    res.writeHead(200, { 'Content-Type': 'application/octet-stream' }).end(entry);
  });
  await new Promise<void>((resolve) => store.listen(0, '127.0.0.1', resolve));
  storeUrl = `http://127.0.0.1:${(store.address() as AddressInfo).port}/store/`;
  graphUrl = `http://127.0.0.1:${(store.address() as AddressInfo).port}/graph`;
  ({ conf, authfile } = await writeSampleSourceConfig(work, registry));
});

after(async () => {
  if (store) await new Promise<void>((resolve) => store.close(() => resolve()));
  await registry?.stop();
  await signer?.close();
  await stranger?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

/** The store as a good one serves it: two signatures for the first release, one for the second. */
async function serveGoodSignatures(): Promise<Map<string, Buffer[]>> {
  served.clear();
  const byRelease = new Map<string, Buffer[]>();
  for (const [i, sample] of samples.entries()) {
    const sigs = await Promise.all(Array.from({ length: i === 0 ? 2 : 1 }, () => signer.sign(atomicPayload(sample.releaseDigest))));
    sigs.forEach((bytes, n) => served.set(`sha256=${hexOf(sample.releaseDigest)}/signature-${n + 1}`, bytes));
    byRelease.set(sample.releaseDigest, sigs);
  }
  return byRelease;
}

const releases = () => ['--channel', 'stable-4.16', '--min-version', samples[0]!.params.version, '--max-version', samples[1]!.params.version, '--graph-url', graphUrl];
const source = () => ['--registries-conf', conf, '--authfile', authfile];
const create = (output: string, ...args: string[]) => runCli(['bundle', 'create', ...source(), ...releases(), '--output', output, '--quiet', ...args], { timeoutMs: 120_000 });

describe('release signatures', () => {
  test('create --signature-store carries every signature; verify, inspect and manifests read them back byte for byte', async () => {
    const expected = await serveGoodSignatures();
    const planned = await runCli(['bundle', 'plan', ...source(), ...releases(), '--json', '--signature-store', storeUrl]);
    assert.equal(planned.code, 0, planned.stderr);
    assert.deepEqual((JSON.parse(planned.stdout) as { releases: Array<{ signatures: number }> }).releases.map((r) => r.signatures), [2, 1]);
    const human = await runCli(['bundle', 'plan', ...source(), ...releases(), '--signature-store', storeUrl]);
    assert.match(human.stdout, /, 2 signature\(s\)$/m);

    const output = path.join(work, 'signed.tar');
    const created = await create(output, '--signature-store', storeUrl, '--release-keyring', signer.armoredKeyring);
    assert.equal(created.code, 0, created.stderr);
    // The same command again: the store serves the same bytes, so the bundle is already complete.
    const again = await create(output, '--signature-store', storeUrl);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^bundle already complete/);
    const bundle = await openBundle(output);
    await bundle.close();
    for (const release of bundle.manifest.releases ?? []) {
      assert.deepEqual(release.signatures?.map((s) => Buffer.from(s.base64, 'base64')), expected.get(release.digest), `release ${release.version}`);
    }

    const verified = await runCli(['bundle', 'verify', output, '--json']);
    assert.equal(verified.code, 0, verified.stdout);
    assert.equal((JSON.parse(verified.stdout) as { releaseSignatures: number }).releaseSignatures, 3);
    // On the other side of the gap, against the keyring: the signer's passes, another key's names each signature.
    const trusted = await runCli(['bundle', 'verify', output, '--release-keyring', signer.binaryKeyring]);
    assert.equal(trusted.code, 0, trusted.stdout);
    assert.match(trusted.stdout, /^OK .*, 3 release signature\(s\), unsigned$/m);
    const untrusted = await runCli(['bundle', 'verify', output, '--release-keyring', stranger.armoredKeyring]);
    assert.equal(untrusted.code, 1, untrusted.stdout);
    assert.equal(untrusted.stdout.match(/^FAIL release-signature: signature-\d of release 4\.16\.\d-sample .* is not a good signature by a key of the release keyring/gm)?.length, 3);
    const inspected = JSON.parse((await runCli(['bundle', 'inspect', output, '--json'])).stdout) as { releases: Array<{ signatures: number }> };
    assert.deepEqual(inspected.releases.map((r) => r.signatures), [2, 1]);
    assert.match((await runCli(['bundle', 'inspect', output])).stdout, /^Release: +4\.16\.0-sample \(.*\), channel stable-4\.16, \d+ components, 2 release signature\(s\)$/m);

    const dir = path.join(work, 'manifests');
    const written = await runCli(['bundle', 'manifests', output, '--output', dir]);
    assert.equal(written.code, 0, written.stderr);
    for (const sample of samples) {
      const name = `sha256-${hexOf(sample.releaseDigest)}`;
      const doc = parse(await readFile(path.join(dir, `${name}.configmap.yaml`), 'utf8')) as { metadata: { name: string; namespace: string; labels: Record<string, string> }; binaryData: Record<string, string> };
      assert.deepEqual(doc.metadata, { name, namespace: 'openshift-config-managed', labels: { 'release.openshift.io/verification-signatures': '' } });
      const sigs = expected.get(sample.releaseDigest)!;
      assert.deepEqual(Object.keys(doc.binaryData), sigs.map((_, n) => `${name}-${n + 1}`));
      sigs.forEach((bytes, n) => assert.ok(Buffer.from(doc.binaryData[`${name}-${n + 1}`]!, 'base64').equals(bytes), `${name}-${n + 1} decodes to the store's file`));
    }
    assert.equal((await readdir(dir)).filter((f) => f.endsWith('.configmap.yaml')).length, 2);
  });

  test('a spec with the channel range, graph, signature store and keyring carries the same signatures as the flags', async () => {
    const expected = await serveGoodSignatures();
    const specDir = path.join(work, 'spec');
    await mkdir(specDir, { recursive: true });
    // The keyring beside the spec, named relative to it.
    await copyFile(signer.armoredKeyring, path.join(specDir, 'release-keyring.asc'));
    const spec = path.join(specDir, 'signed.toml');
    const keys = [
      'channel = "stable-4.16"',
      `min-version = "${samples[0]!.params.version}"`,
      `max-version = "${samples[1]!.params.version}"`,
      `graph-url = "${graphUrl}"`,
      `signature-store = "${storeUrl}"`,
      'release-keyring = "release-keyring.asc"',
    ];
    await writeFile(spec, `${keys.join('\n')}\n`);
    const planned = await runCli(['bundle', 'plan', ...source(), '--spec', spec, '--json']);
    assert.equal(planned.code, 0, planned.stderr);
    const byFlags = await runCli(['bundle', 'plan', ...source(), ...releases(), '--signature-store', storeUrl, '--release-keyring', signer.armoredKeyring, '--json']);
    assert.deepEqual(JSON.parse(planned.stdout), JSON.parse(byFlags.stdout), 'the same plan as the flags');
    const output = path.join(work, 'signed-by-spec.tar');
    const created = await runCli(['bundle', 'create', ...source(), '--spec', spec, '--output', output, '--quiet'], { timeoutMs: 120_000 });
    assert.equal(created.code, 0, created.stderr);
    const bundle = await openBundle(output);
    await bundle.close();
    assert.deepEqual(bundle.manifest.releases?.map((r) => r.version), samples.map((s) => s.params.version));
    for (const release of bundle.manifest.releases ?? []) {
      assert.deepEqual(release.signatures?.map((sig) => Buffer.from(sig.base64, 'base64')), expected.get(release.digest), `release ${release.version}`);
    }
    // The keyring from the spec is used: a stranger's signature is refused, naming it.
    served.set(`sha256=${hexOf(samples[0]!.releaseDigest)}/signature-1`, await stranger.sign(atomicPayload(samples[0]!.releaseDigest)));
    const untrusted = await runCli(['bundle', 'plan', ...source(), '--spec', spec]);
    assertNoInternalError(untrusted, 'plan --spec with a stranger\'s signature');
    assert.equal(untrusted.code, 1, untrusted.stderr);
    assert.match(untrusted.stderr, /signature-1 of release 4\.16\.0-sample .* is not a good signature by a key of the release keyring/);
    // Named as the spec gave it (its key and file), not as a flag that was never given.
    assert.ok(untrusted.stderr.includes(`the release keyring (release-keyring (${spec}) ${path.join(specDir, 'release-keyring.asc')})`), untrusted.stderr);
    assert.match(untrusted.stderr, new RegExp(`fix release-keyring in ${spec.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}, or give --release-keyring`));
    assert.doesNotMatch(untrusted.stderr, /--release-keyring [^(]/);
    // A store without signatures: refused, unless the spec (or the flag) allows unsigned releases.
    served.clear();
    const refused = await runCli(['bundle', 'plan', ...source(), '--spec', spec, '--json']);
    assert.equal((JSON.parse(refused.stdout) as { error: { code: string } }).error.code, 'RELEASE_UNSIGNED');
    await writeFile(spec, `${keys.join('\n')}\nallow-unsigned-releases = true\n`);
    const allowed = await runCli(['bundle', 'plan', ...source(), '--spec', spec, '--json']);
    assert.equal(allowed.code, 0, allowed.stderr);
    // --signature-store on the command line replaces the spec's: the spec names an empty store, the flag the good one.
    await serveGoodSignatures();
    await writeFile(spec, `${keys.join('\n').replace(`"${storeUrl}"`, `"${storeUrl}empty/"`)}\nallow-unsigned-releases = true\n`);
    const signatureCounts = async (...args: string[]) => {
      const result = await runCli(['bundle', 'plan', ...source(), '--spec', spec, '--json', ...args]);
      assert.equal(result.code, 0, result.stderr);
      return (JSON.parse(result.stdout) as { releases: Array<{ signatures: number }> }).releases.map((r) => r.signatures);
    };
    assert.deepEqual(await signatureCounts(), [0, 0], 'the spec\'s empty store');
    assert.deepEqual(await signatureCounts('--signature-store', storeUrl), [2, 1], 'the flag\'s store');
  });

  test('a carried signature changed by one byte fails verify: the seal pins pin-preload.json, which holds it', async () => {
    await serveGoodSignatures();
    const output = path.join(work, 'tampered.tar');
    assert.equal((await create(output, '--signature-store', storeUrl)).code, 0);
    // One base64 character of the first signature, in place: sizes and offsets stay, only the seal can tell.
    const bytes = await readFile(output);
    const text = bytes.subarray(0, 4096).toString('latin1');
    const at = text.indexOf('"base64": "') + '"base64": "'.length;
    bytes[at + 40] = bytes[at + 40] === 0x41 ? 0x42 : 0x41;
    await writeFile(output, bytes);
    const verified = await runCli(['bundle', 'verify', output]);
    assertNoInternalError(verified, 'verify of a tampered signature');
    assert.equal(verified.code, 1);
    assert.match(verified.stdout, new RegExp(`FAIL manifest: .*${MANIFEST_ENTRY}`));
  });

  test('a wrong-digest signature, an untrusted key, a 500 from the store and a release with none are each a clear error', async () => {
    const first = samples[0]!;
    const key = `sha256=${hexOf(first.releaseDigest)}/signature-1`;
    const cases: Array<[string, () => Promise<void>, string[], number, RegExp]> = [
      ['wrong digest', async () => void served.set(key, await signer.sign(atomicPayload(samples[1]!.releaseDigest))), [], 1, new RegExp(`signature-1 of release 4\\.16\\.0-sample .* signs ${samples[1]!.releaseDigest}, not the release ${first.releaseDigest}`)],
      ['untrusted key', async () => void served.set(key, await stranger.sign(atomicPayload(first.releaseDigest))), ['--release-keyring', signer.binaryKeyring], 1, /signature-1 of release 4\.16\.0-sample .* is not a good signature by a key of the release keyring \(--release-keyring .*keyring\.gpg\)/],
      ['store 500', async () => void served.set(key, 500), [], 1, /release 4\.16\.0-sample .*cannot fetch http:\/\/127\.0\.0\.1:\d+\/store\/sha256=[0-9a-f]{64}\/signature-1: HTTP 500/],
      ['store 403', async () => void served.set(key, 403), [], 1, /answered HTTP 403 for http:\/\/127\.0\.0\.1:\d+\/store\/sha256=/],
      ['no signature', async () => {
        served.delete(key);
        served.delete(`sha256=${hexOf(first.releaseDigest)}/signature-2`);
      }, [], 1, /release 4\.16\.0-sample .* has no signature in the store/],
      ['garbage', async () => void served.set(key, Buffer.from('<html>not a signature</html>')), [], 1, /signature-1 of release 4\.16\.0-sample .* is not an OpenPGP signed message/],
    ];
    for (const [name, arrange, extra, code, message] of cases) {
      await serveGoodSignatures();
      await arrange();
      const output = path.join(work, `bad-${name.replace(/ /g, '-')}.tar`);
      const result = await create(output, '--signature-store', storeUrl, ...extra);
      assertNoInternalError(result, name);
      assert.equal(result.code, code, `${name}: ${result.stderr}`);
      assert.match(result.stderr, message, name);
      await assert.rejects(readFile(output), `${name}: no bundle is written`);
    }
    // The opt-out: a release without signatures is bundled, with none carried.
    served.clear();
    const unsignedPlan = await runCli(['bundle', 'plan', ...source(), ...releases(), '--signature-store', storeUrl, '--json']);
    assert.equal(unsignedPlan.code, 1, unsignedPlan.stderr);
    const { error } = JSON.parse(unsignedPlan.stdout) as { error: { code: string; subject?: { kind: string; name: string } } };
    assert.deepEqual([error.code, error.subject], ['RELEASE_UNSIGNED', { kind: 'image', name: `${RELEASE_REPOSITORY}@${samples[0]!.releaseDigest}` }]);
    const output = path.join(work, 'unsigned.tar');
    const allowed = await create(output, '--signature-store', storeUrl, '--allow-unsigned-releases');
    assert.equal(allowed.code, 0, allowed.stderr);
    const bundle = await openBundle(output);
    await bundle.close();
    assert.deepEqual(bundle.manifest.releases?.map((r) => r.signatures), [[], []]);
    // Checked against a keyring before the ConfigMaps are applied: carrying none is a failure naming each release,
    // and a keyring that cannot be read is a usage error, not an OK.
    const keyringOnUnsigned = await runCli(['bundle', 'verify', output, '--release-keyring', signer.binaryKeyring]);
    assert.equal(keyringOnUnsigned.code, 1, keyringOnUnsigned.stdout);
    assert.equal(keyringOnUnsigned.stdout.match(/^FAIL release-signature: release 4\.16\.\d-sample .* carries no release signature to verify with --release-keyring/gm)?.length, 2, keyringOnUnsigned.stdout);
    const absentKeyring = await runCli(['bundle', 'verify', output, '--release-keyring', path.join(work, 'absent.gpg')]);
    assertNoInternalError(absentKeyring, 'verify with an absent keyring');
    assert.equal(absentKeyring.code, 2, absentKeyring.stderr);
    assert.match(absentKeyring.stderr, /--release-keyring .*absent\.gpg cannot be read/);
    assert.equal((await runCli(['bundle', 'verify', output])).code, 0, 'without --release-keyring an unsigned release is not a failure');
    // Options that need the store are refused without it.
    const stray = await create(path.join(work, 'stray.tar'), '--release-keyring', signer.armoredKeyring);
    assert.equal(stray.code, 2);
    assert.match(stray.stderr, /--release-keyring goes with --signature-store URL/);
    for (const [args, message] of [[['--signature-store', 'ftp://example.com/sigs'], /--signature-store "ftp:\/\/example\.com\/sigs" is not an http\(s\) URL/], [['--signature-store', storeUrl, '--release-keyring', path.join(work, 'absent.gpg')], /--release-keyring .*absent\.gpg cannot be read/]] as const) {
      const refused = await runCli(['bundle', 'plan', ...source(), ...releases(), ...args]);
      assert.equal(refused.code, 2, refused.stderr);
      assert.match(refused.stderr, message);
    }
  });
});
