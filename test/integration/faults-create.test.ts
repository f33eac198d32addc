// Fault suite for `bundle create`: a real docker-registry holding a generated release behind a loopback
// proxy that injects 429/500, resets, short and corrupt bodies, expired tokens, a full disk and kill -9.
// The rule each time: success with a bundle byte-identical to a clean run, or a clear error naming the
// blob and a non-zero exit; then a clean re-run completes with the identical bundle. Never an internal error.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, statfs, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { generateSampleRelease, pushLayout, type SampleRelease } from '../../src/sample/index.js';
import { isVolumeNameOf } from '../../src/bundle/seal.js';
import { publishInterrupted } from '../../src/bundle/publish.js';
import { verifyBundle } from '../../src/bundle/verify.js';
import { UserError } from '../../src/util/errors.js';
import { KILL_AT_ENV } from '../../src/util/kill-point.js';
import { assertNoInternalError, faultSeed, killRounds, runCli, seededRandom, sha256File, startCli, type CliResult } from '../support/cli.js';
import { startDockerRegistry, type RunningRegistry } from '../support/docker-registry.js';
import { startRegistryProxy, type Fault, type ProxiedRequest, type RunningProxy } from '../support/registry-proxy.js';

const run = promisify(execFile);

let work: string;
let registry: RunningRegistry;
let proxy: RunningProxy;
let sample: SampleRelease;
let conf: string;
let authfile: string;
/** sha256 of the clean run's tar and seal: every successful or re-run bundle must match them. */
let clean: { tar: string; seal: string; ms: number };
/** Blob digests with their sizes as the proxy saw them in the clean run, largest first. */
let blobs: Array<{ digest: string; size: number }>;

const selection = () => ['--release', sample.releaseReference, '--image', sample.extraImages[0]!.reference];
const createArgs = (output: string, extra: readonly string[] = []) => ['bundle', 'create', '--registries-conf', conf, '--authfile', authfile, ...selection(), '--output', output, '--quiet', ...extra];

const isBlobGet = (digest: string) => (req: ProxiedRequest) => req.method === 'GET' && req.path.split('?')[0]!.endsWith(`/blobs/${digest}`);
const isManifestGet = (req: ProxiedRequest) => req.method === 'GET' && req.path.includes('/manifests/');

before(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-faults-'));
  registry = await startDockerRegistry();
  // Big enough that downloads take a while (kill points, a disk filling up), small enough to be quick.
  sample = await generateSampleRelease(path.join(work, 'sample'), { baseLayerSize: 1024 * 1024, componentLayerSize: 96 * 1024, compressionLevel: 0 });
  await pushLayout(sample.dir, registry.url, { concurrency: 8 });
  proxy = await startRegistryProxy(registry.url);
  conf = path.join(work, 'registries.conf');
  await writeFile(conf, ['quay.io', 'registry.example.com'].map((p) => `[[registry]]\nprefix = "${p}"\nlocation = "${proxy.host}"\ninsecure = true\n`).join('\n'));
  authfile = path.join(work, 'auth.json');
  await writeFile(authfile, '{"auths":{}}');

  const output = path.join(work, 'clean', 'bundle.tar');
  const made = await runCli(createArgs(output));
  assert.equal(made.code, 0, made.stderr);
  const verified = await runCli(['bundle', 'verify', output]);
  assert.equal(verified.code, 0, `the clean bundle does not verify:\n${verified.stdout}${verified.stderr}`);
  clean = { tar: await sha256File(output), seal: await sha256File(`${output}.seal.json`), ms: made.ms };
  const sizes = new Map<string, number>();
  for (const r of proxy.requests) {
    const m = /\/blobs\/(sha256:[a-f0-9]{64})/.exec(r.path);
    if (r.method === 'GET' && m && r.status === 200) sizes.set(m[1]!, Math.max(sizes.get(m[1]!) ?? 0, r.bytesSent));
  }
  blobs = [...sizes].map(([digest, size]) => ({ digest, size })).sort((a, b) => b.size - a.size);
  assert.ok(blobs.length > 10 && blobs[0]!.size >= 1024 * 1024, 'the clean run fetched the blobs through the proxy');
});

after(async () => {
  await proxy?.stop();
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

async function exists(file: string): Promise<boolean> {
  return stat(file).then(() => true, () => false);
}

/** The bundle at `output` is byte-identical to the clean run's (which `bundle verify` passed in before()). */
async function assertIdenticalToClean(output: string, what: string): Promise<void> {
  assert.equal(await sha256File(output), clean.tar, `${what}: the tar differs from a clean run`);
  assert.equal(await sha256File(`${output}.seal.json`), clean.seal, `${what}: the seal differs from a clean run`);
}

/** After a failed run nothing looks complete: no tar, no seal (a .partial work dir for resuming is fine). */
async function assertNothingComplete(output: string, what: string): Promise<void> {
  assert.equal(await exists(output), false, `${what}: ${output} exists after a failure`);
  assert.equal(await exists(`${output}.seal.json`), false, `${what}: a seal exists after a failure`);
}

/** One faulty run, judged by the rule, then (if it failed) a clean re-run that must match the clean bundle. */
async function createUnderFault(name: string, fault: (req: ProxiedRequest) => Fault | undefined, blob?: string): Promise<CliResult> {
  const output = path.join(work, name, 'bundle.tar');
  proxy.setFault(fault);
  let result: CliResult;
  try {
    result = await runCli(createArgs(output));
  } finally {
    proxy.setFault(undefined);
  }
  assertNoInternalError(result, name);
  if (result.code === 0) {
    await assertIdenticalToClean(output, name);
  } else {
    assert.ok(result.code !== null && result.code > 0, `${name}: non-zero exit`);
    assert.match(result.stderr, /^pin-preload: error: /m, `${name}: one clear error line`);
    if (blob !== undefined) assert.ok(result.stderr.includes(blob), `${name}: the error names the blob ${blob}:\n${result.stderr}`);
    await assertNothingComplete(output, name);
    const rerun = await runCli(createArgs(output));
    assert.equal(rerun.code, 0, `${name}: the clean re-run failed:\n${rerun.stderr}`);
    await assertIdenticalToClean(output, `${name} re-run`);
  }
  await rm(path.dirname(output), { recursive: true, force: true });
  return result;
}

/** Fires `fault` for the first `times` requests matching `match`. */
function times(match: (req: ProxiedRequest) => boolean, fault: Fault, n = 1): (req: ProxiedRequest) => Fault | undefined {
  let left = n;
  return (req) => (left > 0 && match(req) ? (left--, fault) : undefined);
}

test('transient faults are retried and the bundle is identical: 429 with Retry-After, 500, reset mid-blob, short body, 503 on a manifest', async () => {
  const big = blobs[0]!.digest;
  const mid = blobs[Math.floor(blobs.length / 2)]!.digest;
  const cases: Array<[string, (req: ProxiedRequest) => Fault | undefined, string | undefined]> = [
    ['429-retry-after', times(isBlobGet(big), { kind: 'status', status: 429, headers: { 'retry-after': '1' }, body: JSON.stringify({ errors: [{ code: 'TOOMANYREQUESTS', message: 'slow down' }] }) }), big],
    ['500', times(isBlobGet(mid), { kind: 'status', status: 500 }, 2), mid],
    ['reset-mid-blob', times(isBlobGet(big), { kind: 'reset-after-bytes', bytes: 300_000 }), big],
    ['truncated-body', times(isBlobGet(big), { kind: 'truncate', bytes: 400_000 }), big],
    ['503-manifest', times(isManifestGet, { kind: 'status', status: 503, headers: { 'retry-after': '0' } }, 3), undefined],
  ];
  const failed: string[] = [];
  for (const [name, fault, blob] of cases) {
    const result = await createUnderFault(name, fault, blob);
    if (result.code !== 0) failed.push(`${name}: ${result.stderr}`);
  }
  // Overload statuses and broken connections that happen once must not fail the run: they are retried.
  // (A corrupt byte may fail the run instead; see the next test: the rule then is a clear error and a clean re-run.)
  assert.deepEqual(failed, [], failed.join('\n'));
});

test('a blob corrupted once in transit is refetched, or the run fails naming it and a re-run is identical', async () => {
  const big = blobs[0]!.digest;
  await createUnderFault('corrupt-byte', times(isBlobGet(big), { kind: 'corrupt-byte', offset: 700_000 }), big);
});

test('a blob that stays broken (500 every time, or corrupt every time) fails naming the blob, and a clean re-run is identical', async () => {
  const victim = blobs[1]!.digest;
  for (const [name, fault] of [
    ['always-500', { kind: 'status', status: 500 }],
    ['always-corrupt', { kind: 'corrupt-byte', offset: 10 }],
  ] as const) {
    const started = Date.now();
    const result = await createUnderFault(name, (req) => (isBlobGet(victim)(req) ? fault : undefined), victim);
    assert.notEqual(result.code, 0, `${name}: a blob that never arrives intact cannot make a bundle`);
    assert.ok(Date.now() - started < 60_000, `${name}: gave up within bounded retries`);
  }
});

test('a re-run continues a half-written blob with one Range request from where the first run stopped, fetching only the rest', async () => {
  const big = blobs[0]!;
  const output = path.join(work, 'range-resume', 'bundle.tar');
  // The first run gets 300 kB of the blob, then the connection breaks and the registry refuses the rest (404, final).
  let broken = false;
  proxy.setFault((req) => {
    if (!isBlobGet(big.digest)(req)) return undefined;
    if (broken) return { kind: 'status', status: 404 };
    broken = true;
    return { kind: 'reset-after-bytes', bytes: 300_000 };
  });
  let first: CliResult;
  try {
    first = await runCli(createArgs(output));
  } finally {
    proxy.setFault(undefined);
  }
  assertNoInternalError(first, 'range-resume');
  assert.notEqual(first.code, 0);
  assert.ok(first.stderr.includes(big.digest), first.stderr);
  const seen = proxy.requests.length;
  const rerun = await runCli(createArgs(output));
  assert.equal(rerun.code, 0, rerun.stderr);
  const gets = proxy.requests.slice(seen).filter((r) => isBlobGet(big.digest)({ ...r, headers: {} }));
  assert.equal(gets.length, 1, 'one request for the rest of the blob');
  const from = Number(/^bytes=(\d+)-/.exec(gets[0]!.range ?? '')?.[1] ?? 0);
  assert.ok(from > 0 && from <= 300_000, `the re-run asked for the blob from byte ${from} (Range ${gets[0]!.range})`);
  assert.equal(gets[0]!.bytesSent, big.size - from, 'only the bytes after the kept prefix were served');
  await assertIdenticalToClean(output, 'range-resume');
  await rm(path.dirname(output), { recursive: true, force: true });
});

test('every blob that cannot be had is named in one run, and a clean re-run is identical', async () => {
  const victims = [blobs[1]!.digest, blobs[blobs.length - 1]!.digest];
  const result = await createUnderFault('two-missing', (req) => (victims.some((v) => isBlobGet(v)(req)) ? { kind: 'status', status: 404 } : undefined));
  assert.notEqual(result.code, 0);
  assert.match(result.stderr, /BUNDLE_BLOBS_FAILED|2 of \d+ blobs could not be written/);
  for (const v of victims) assert.ok(result.stderr.includes(v), `the error names ${v}:\n${result.stderr}`);
});

/** A manifest of the sample's OCI layout, parsed. */
async function sampleManifest(digest: string): Promise<{ manifests?: Array<{ digest: string; platform?: { architecture: string } }>; layers?: Array<{ digest: string }> }> {
  return JSON.parse(await readFile(path.join(sample.dir, 'blobs', 'sha256', digest.slice('sha256:'.length)), 'utf8')) as never;
}

test('a layer of one platform child that cannot be had leaves its multi-arch image unwritten (no index, no child manifest), names the layer and the image, and a clean re-run completes', async () => {
  const multi = sample.components.find((c) => c.platforms.length > 1)!;
  assert.ok(multi, 'the sample has a multi-arch component');
  const children = (await sampleManifest(multi.digest)).manifests!;
  const arm64 = children.find((c) => c.platform?.architecture === 'arm64')!;
  const victim = (await sampleManifest(arm64.digest)).layers!.at(-1)!.digest;
  const output = path.join(work, 'child-layer', 'bundle.tar');
  const allPlatforms = ['--platform', 'all']; // both children in the bundle, not the default amd64 only
  proxy.setFault((req) => (isBlobGet(victim)(req) ? { kind: 'status', status: 404 } : undefined));
  let result: CliResult;
  try {
    result = await runCli(createArgs(output, allPlatforms));
  } finally {
    proxy.setFault(undefined);
  }
  assertNoInternalError(result, 'child-layer');
  assert.notEqual(result.code, 0);
  assert.match(result.stderr, /BUNDLE_BLOBS_FAILED|could not be written/);
  assert.ok(result.stderr.includes(victim), `the error names the layer ${victim}:\n${result.stderr}`);
  assert.ok(result.stderr.includes(multi.digest), `the error names the image by its index ${multi.digest}:\n${result.stderr}`);
  await assertNothingComplete(output, 'child-layer');
  // The journal's done log lists every blob and manifest written: the image's index and children are not among them.
  const done = await readFile(path.join(`${output}.partial`, 'done.log'), 'utf8');
  for (const manifest of [multi.digest, ...children.map((c) => c.digest)]) assert.ok(!done.includes(manifest), `manifest ${manifest} was not written`);
  assert.ok(done.includes(sample.releaseDigest), 'the other images are written');
  const rerun = await runCli(createArgs(output, allPlatforms));
  assert.equal(rerun.code, 0, `the clean re-run failed:\n${rerun.stderr}`);
  const verified = await runCli(['bundle', 'verify', output]);
  assert.equal(verified.code, 0, `the re-run's bundle does not verify:\n${verified.stdout}${verified.stderr}`);
  await rm(path.dirname(output), { recursive: true, force: true });
});

test('a token that expires mid-run is renewed and the bundle is identical', async () => {
  // The registry's own token harness lives inside registry-client.test.ts; here the proxy plays the
  // registry's part: a 401 Bearer challenge first, then a 401 again on a request that carries the token
  // (as distribution answers an expired JWT), which the client must answer with a fresh token.
  let issued = 0;
  const tokenServer = http.createServer((req, res) => {
    issued++;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token: `t${issued}`, expires_in: 300 }));
  });
  await new Promise<void>((resolve) => tokenServer.listen(0, '127.0.0.1', resolve));
  try {
    const realm = `http://127.0.0.1:${(tokenServer.address() as AddressInfo).port}/token`;
    const challenge = (scope: string): Fault => ({
      kind: 'status',
      status: 401,
      headers: { 'www-authenticate': `Bearer realm="${realm}",service="faults",scope="${scope}"` },
      body: JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }),
    });
    let expiredOnce = false;
    let blobGets = 0;
    const result = await createUnderFault('expiring-token', (req) => {
      if (!req.path.startsWith('/v2/') || req.path === '/v2/') return undefined;
      const repo = /^\/v2\/(.+?)\/(manifests|blobs)\//.exec(req.path)?.[1] ?? '';
      const scope = `repository:${repo}:pull`;
      if (!req.headers.authorization) return challenge(scope);
      if (/\/blobs\//.test(req.path)) blobGets++;
      if (!expiredOnce && blobGets === 5) {
        expiredOnce = true;
        return challenge(scope);
      }
      return undefined;
    });
    assert.equal(result.code, 0, result.stderr);
    assert.ok(expiredOnce, 'the expiry was injected');
    assert.ok(issued >= 2, `a fresh token was fetched after the expiry (${issued} issued)`);
  } finally {
    await new Promise<void>((resolve) => tokenServer.close(() => resolve()));
  }
});

test('kill -9 at random points of bundle create: every re-run completes with a byte-identical bundle', async () => {
  const seed = faultSeed();
  const random = seededRandom(seed);
  const rounds = killRounds();
  const dir = path.join(work, 'kill');
  const output = path.join(dir, 'bundle.tar');
  const points: string[] = [];
  for (let round = 0; round < rounds; round++) {
    // Kill anywhere from process start-up to the end of a clean run (planning, downloads, sealing, rename).
    const killAfterMs = Math.floor(random() * clean.ms * 1.1);
    const first = startCli(createArgs(output, ['--concurrency', String(1 + Math.floor(random() * 8))]));
    const timer = setTimeout(() => first.child.kill('SIGKILL'), killAfterMs);
    const killed = await first.done;
    clearTimeout(timer);
    assertNoInternalError(killed, `round ${round} (seed ${seed})`);
    points.push(`${killAfterMs}ms:${killed.signal ?? `exit ${killed.code}`}`);
    if (killed.signal === 'SIGKILL') await assertNothingCompleteOrComplete(output, `round ${round} (seed ${seed}), killed at ${killAfterMs} ms`);
    const rerun = await runCli(createArgs(output));
    assertNoInternalError(rerun, `round ${round} re-run (seed ${seed})`);
    assert.equal(rerun.code, 0, `round ${round} (seed ${seed}, kill at ${killAfterMs} ms): the re-run failed:\n${rerun.stderr}`);
    await assertIdenticalToClean(output, `round ${round} (seed ${seed}, kill at ${killAfterMs} ms)`);
    await rm(dir, { recursive: true, force: true });
  }
  process.stderr.write(`# kill -9 rounds (seed ${seed}): ${points.join(' ')}\n`);
});

/** Killed mid-run, the output is absent, already whole, or a publish in progress that readers refuse. */
async function assertNothingCompleteOrComplete(output: string, what: string): Promise<void> {
  if (!(await exists(output))) return;
  assert.ok(await exists(`${output}.seal.json`), `${what}: the tar exists without its seal`);
  if (await publishInterrupted(path.dirname(output), path.basename(output))) await assertRefusedWhilePublishing(output, what);
  else await assertIdenticalToClean(output, `${what} (killed after publishing)`);
}

/** A reader (verify, and so import and serve, which locate a bundle the same way) refuses a publish in progress. */
async function assertRefusedWhilePublishing(output: string, what: string): Promise<void> {
  await assert.rejects(verifyBundle(output), (err: unknown) => err instanceof UserError && err.code === 'BUNDLE_PUBLISH_INTERRUPTED', `${what}: a reader took a bundle whose publish was cut short`);
}

/** The bundle's own files in `dir` (NAME, NAME.NNN, seal, signature) by name, with their sha256. */
async function bundleFiles(dir: string, name = 'bundle.tar'): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  for (const entry of (await readdir(dir).catch(() => [])).sort()) {
    if (isVolumeNameOf(name, entry) || entry === `${name}.seal.json` || entry === `${name}.sig`) files[entry] = await sha256File(path.join(dir, entry));
  }
  return files;
}

interface PublishVariant {
  readonly split: boolean;
  readonly signed: boolean;
}

/** Where a run was killed: at a named point (PIN_PRELOAD_TEST_KILL_AT) or after a delay. */
type KillAt = { readonly point: string } | { readonly afterMs: number };

test('kill -9 inside the publish window (at every named point, also while a re-run finishes the publish, and at random times; split and signed or neither, over an older bundle or none): readers see the old bundle, nothing or the new one, never a volume without its seal, and a re-run finishes it', async () => {
  const base = path.join(work, 'publish');
  const key = path.join(base, 'key.pem');
  await mkdir(base, { recursive: true });
  assert.equal((await runCli(['keygen', '--output', key])).code, 0);
  // Two variants, each publishing over the other: a split signed bundle replaces a tar (the tar must go,
  // a signature appears), a tar replaces a split signed bundle (stale volumes and the signature must go).
  const tar: PublishVariant = { split: false, signed: false };
  const splitSigned: PublishVariant = { split: true, signed: true };
  const optionsOf = (v: PublishVariant) => [...(v.split ? ['--split-size', '1MiB'] : []), ...(v.signed ? ['--sign-key', key] : [])];
  // Per variant, the work dir of a run stopped just before its commit: every blob downloaded and journaled.
  // Each round restores it, so a round costs the seal and the publish, not the downloads.
  const templates = new Map<PublishVariant, string>();
  for (const v of [tar, splitSigned]) {
    const output = path.join(base, `template-${v.split}`, 'bundle.tar');
    const stopped = await runCli(createArgs(output, optionsOf(v)), { env: { [KILL_AT_ENV]: 'publish:prepared' } });
    assert.equal(stopped.signal, 'SIGKILL', `the template run reached publish:prepared:\n${stopped.stderr}`);
    templates.set(v, `${output}.partial`);
  }
  const restore = async (v: PublishVariant, output: string) => {
    await mkdir(path.dirname(output), { recursive: true });
    await run('cp', ['-a', templates.get(v)!, `${output}.partial`]);
  };
  // The complete bundle of each variant, what every re-run must produce byte for byte: the clean run's tar,
  // and a split signed bundle finished from its template (verified with the key once here).
  const referenceDir = new Map<PublishVariant, string>([[tar, path.dirname(path.join(work, 'clean', 'bundle.tar'))]]);
  referenceDir.set(splitSigned, path.join(base, 'reference'));
  await restore(splitSigned, path.join(referenceDir.get(splitSigned)!, 'bundle.tar'));
  const made = await runCli(createArgs(path.join(referenceDir.get(splitSigned)!, 'bundle.tar'), optionsOf(splitSigned)));
  assert.equal(made.code, 0, made.stderr);
  const resumedMs = made.ms;
  assert.ok((await verifyBundle(path.join(referenceDir.get(splitSigned)!, 'bundle.tar'), { trustedKey: `${key}.pub` })).ok, 'the split signed reference verifies');
  const complete = new Map<PublishVariant, Record<string, string>>();
  for (const v of [tar, splitSigned]) complete.set(v, await bundleFiles(referenceDir.get(v)!));
  assert.equal(complete.get(tar)!['bundle.tar'], clean.tar);
  const volumes = Object.keys(complete.get(splitSigned)!).filter((f) => isVolumeNameOf('bundle.tar', f)).length;
  assert.ok(volumes >= 3, `the split bundle has several volumes (${volumes})`);

  const dir = path.join(base, 'round');
  const output = path.join(dir, 'bundle.tar');
  /** A fresh output dir holding the older bundle `over` (or nothing) and the restored work dir of `v`. */
  const setUp = async (v: PublishVariant, over: PublishVariant | undefined) => {
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir);
    if (over) for (const file of Object.keys(complete.get(over)!)) await run('cp', [path.join(referenceDir.get(over)!, file), path.join(dir, file)]);
    await restore(v, output);
  };
  /** Runs create for `v`, kills it, and checks what a reader finds while the process is dead, before any re-run. */
  const killAndCheck = async (v: PublishVariant, over: PublishVariant | undefined, kill: KillAt, what: string): Promise<boolean> => {
    let killed: CliResult;
    if ('point' in kill) {
      killed = await runCli(createArgs(output, optionsOf(v)), { env: { [KILL_AT_ENV]: kill.point } });
      assert.equal(killed.signal, 'SIGKILL', `${what}: the run never reached the point:\n${killed.stderr}`);
    } else {
      const first = startCli(createArgs(output, optionsOf(v)));
      const timer = setTimeout(() => first.child.kill('SIGKILL'), kill.afterMs);
      killed = await first.done;
      clearTimeout(timer);
    }
    assertNoInternalError(killed, what);
    const found = await bundleFiles(dir);
    if (Object.keys(found).some((f) => isVolumeNameOf('bundle.tar', f))) assert.ok(found['bundle.tar.seal.json'], `${what}: a volume without a seal: ${Object.keys(found).join(' ')}`);
    if (await publishInterrupted(dir, 'bundle.tar')) await assertRefusedWhilePublishing(output, what);
    else {
      const states = [over ? complete.get(over)! : {}, complete.get(v)!];
      assert.ok(states.some((state) => JSON.stringify(state) === JSON.stringify(found)), `${what}: neither the old bundle, nothing, nor the new one:\n${JSON.stringify(found, null, 1)}`);
    }
    return killed.signal === 'SIGKILL';
  };
  /** The re-run finishes: exactly the new bundle's files, byte for byte, and nothing else (no work dir). */
  const finish = async (v: PublishVariant, what: string) => {
    const rerun = await runCli(createArgs(output, optionsOf(v)));
    assertNoInternalError(rerun, `${what} re-run`);
    assert.equal(rerun.code, 0, `${what}: the re-run failed:\n${rerun.stderr}`);
    assert.deepEqual(await bundleFiles(dir), complete.get(v), `${what}: the re-run's bundle differs from a clean one`);
    assert.deepEqual((await readdir(dir)).filter((f) => !(f in complete.get(v)!)), [], `${what}: the re-run left other files behind`);
  };

  // Every named point in publish order, each run killed at the next one: the first run dies before its
  // commit, the second at the commit, every later one while finishing the publish the previous one left.
  for (const [v, over] of [[splitSigned, tar], [tar, splitSigned]] as const) {
    const points = ['publish:prepared', 'publish:committed', 'publish:after-stale', 'publish:after-signature', 'publish:after-seal',
      ...Array.from({ length: v.split ? volumes : 1 }, (_, i) => `publish:after-volume-${i + 1}`), 'publish:after-volumes', 'publish:done'];
    await setUp(v, over);
    for (const point of points) await killAndCheck(v, over, { point }, `${JSON.stringify(v)} over ${JSON.stringify(over)}, killed at ${point}`);
    await finish(v, `${JSON.stringify(v)} over ${JSON.stringify(over)}`);
  }
  // Random rounds: a variant, an older bundle or none, and a kill time within a run resumed from the template
  // (start-up, planning, sealing, publishing).
  const seed = faultSeed();
  const random = seededRandom(seed);
  const killedAt: string[] = [];
  for (let r = 0; r < Math.ceil(killRounds() / 3); r++) {
    const v = random() < 0.5 ? tar : splitSigned;
    const over = random() < 0.3 ? undefined : v === tar ? splitSigned : tar;
    const afterMs = Math.floor(random() * resumedMs * 1.1);
    const what = `random round ${r} (seed ${seed}): ${JSON.stringify(v)} over ${over ? JSON.stringify(over) : 'nothing'}, killed at ${afterMs} ms`;
    await setUp(v, over);
    killedAt.push(`${afterMs}ms:${(await killAndCheck(v, over, { afterMs }, what)) ? 'killed' : 'finished'}`);
    await finish(v, what);
  }
  process.stderr.write(`# publish-window kill rounds (seed ${seed}): ${killedAt.join(' ')}\n`);
});

test('the disk filling up during bundle create fails with a clear error, leaves nothing that looks complete, and a re-run with room is identical', async (t) => {
  const mount = path.join(work, 'small-disk');
  await mkdir(mount);
  // Room for the bundle and its pre-flight margin, so the run starts; then a filler takes the rest mid-download.
  await run('mount', ['-t', 'tmpfs', '-o', `size=${Math.ceil((blobs.reduce((n, b) => n + b.size, 0) + 8 * 1024 * 1024) / 4096) * 4096}`, 'tmpfs', mount]);
  t.after(async () => {
    await run('umount', [mount]).catch(() => run('umount', ['-l', mount]));
    await rm(mount, { recursive: true, force: true });
  });
  const output = path.join(mount, 'bundle.tar');
  // Slow the largest blob down (reset once, so it is fetched again) to leave time to fill the disk.
  proxy.setFault(times(isBlobGet(blobs[0]!.digest), { kind: 'reset-after-bytes', bytes: 200_000 }));
  const creating = startCli(createArgs(output, ['--concurrency', '2']));
  let exited = false;
  void creating.done.then(() => (exited = true));
  const filler = path.join(mount, 'filler');
  try {
    // The journal is opened right after the pre-flight check: fill the disk then, not before.
    const deadline = Date.now() + 30_000;
    while (!exited && Date.now() < deadline && !(await exists(path.join(`${output}.partial`, 'progress.bin')))) await new Promise((r) => setTimeout(r, 5));
    await fillDisk(filler);
  } finally {
    proxy.setFault(undefined);
  }
  const result = await creating.done;
  assertNoInternalError(result, 'disk full');
  assert.notEqual(result.code, 0, `bundle create succeeded on a full disk:\n${result.stdout}`);
  // DISK_FULL whichever write hit it first (a blob's, the journal's): never a list of blobs that "failed" with ENOSPC.
  assert.match(result.stderr, /filled up while writing the bundle \((ENOSPC|EDQUOT)\)/, result.stderr);
  assert.doesNotMatch(result.stderr, /could not be written|BUNDLE_BLOBS_FAILED/, result.stderr);
  process.stderr.write(`# disk full: ${result.stderr.split('\n')[0]}\n`);
  await assertNothingComplete(output, 'disk full');
  await rm(filler);
  const rerun = await runCli(createArgs(output));
  assert.equal(rerun.code, 0, rerun.stderr);
  await assertIdenticalToClean(output, 'disk full re-run');
  assert.deepEqual((await readdir(mount)).sort(), ['bundle.tar', 'bundle.tar.seal.json']);
});

/** Writes zeros into `file` until the filesystem is full (ENOSPC), bounded by the filesystem's size. */
async function fillDisk(file: string): Promise<void> {
  const { bavail, bsize } = await statfs(path.dirname(file));
  const out = createWriteStream(file);
  const chunk = Buffer.alloc(1024 * 1024);
  const ended = new Promise<void>((resolve) => {
    out.on('error', () => resolve());
    out.on('close', () => resolve());
  });
  for (let written = 0; written <= bavail * bsize && !out.destroyed; written += chunk.length) {
    if (!out.write(chunk)) await new Promise<void>((resolve) => {
      const done = () => {
        out.off('drain', done).off('error', done);
        resolve();
      };
      out.on('drain', done).on('error', done);
    });
  }
  out.end();
  await ended;
}
