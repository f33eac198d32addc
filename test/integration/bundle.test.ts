// `pin-preload bundle create/verify/inspect` end to end: the built CLI against a real docker-registry with a
// generated release behind a recording proxy, real skopeo reading the bundle, kill -9 and resume, a full disk.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, open, readFile, readdir, rm, stat, truncate, writeFile, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { generateSampleRelease, pushLayout, type SampleRelease } from '../../src/sample/index.js';
import { startDockerRegistry, type RunningRegistry } from '../support/docker-registry.js';
import { startRegistryProxy, type RunningProxy } from '../support/registry-proxy.js';
import { openBundle } from '../../src/bundle/reader.js';
import { runCli, startCli } from '../support/cli.js';

const RELEASE = 'quay.io/openshift-release-dev/ocp-release:4.16.0-sample-x86_64';
const run = promisify(execFile);
const cli = (args: readonly string[]) => runCli(args);

let work: string;
let registry: RunningRegistry;
let proxy: RunningProxy;
let sample: SampleRelease;
let conf: string;
let authfile: string;
let reference: string; // the release bundle, made once and shared by the read-only tests

const source = () => ['--registries-conf', conf, '--authfile', authfile];
/** Extra images and two components by digest: a selection whose planning fetches no blob. */
const extrasOnly = () => [...sample.extraImages.flatMap((e) => ['--image', e.reference]), '--image', sample.components[0]!.reference, '--image', sample.components[1]!.reference];

function blobBytesSent(): Map<string, number> {
  const sent = new Map<string, number>();
  for (const r of proxy.requests) {
    const m = /\/blobs\/(sha256:[a-f0-9]{64})/.exec(r.path);
    if (r.method === 'GET' && m) sent.set(m[1]!, (sent.get(m[1]!) ?? 0) + r.bytesSent);
  }
  return sent;
}

before(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-bundle-'));
  registry = await startDockerRegistry();
  sample = await generateSampleRelease(path.join(work, 'sample'), { baseLayerSize: 512 * 1024 });
  await pushLayout(sample.dir, registry.url, { concurrency: 8 });
  proxy = await startRegistryProxy(registry.url);
  conf = path.join(work, 'registries.conf');
  await writeFile(conf, ['quay.io', 'registry.example.com'].map((p) => `[[registry]]\nprefix = "${p}"\nlocation = "${proxy.host}"\ninsecure = true\n`).join('\n'));
  authfile = path.join(work, 'auth.json');
  await writeFile(authfile, '{"auths":{}}');
  reference = path.join(work, 'ref', 'release.tar');
  const made = await cli(['bundle', 'create', ...source(), '--release', RELEASE, '--image', sample.extraImages[0]!.reference, '--output', reference, '--quiet']);
  assert.equal(made.code, 0, made.stderr);
});

after(async () => {
  await proxy?.stop();
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

test('a bundle of a release verifies, and inspect shows its release and images from the manifest alone', async () => {
  assert.deepEqual((await readdir(path.dirname(reference))).sort(), ['release.tar', 'release.tar.seal.json']);
  const verified = await cli(['bundle', 'verify', reference]);
  assert.equal(verified.code, 0, verified.stdout + verified.stderr);
  assert.match(verified.stdout, /^OK .*release\.tar: 1 volume\(s\), \d+ images, \d+ blobs verified, unsigned$/m);
  const inspected = await cli(['bundle', 'inspect', reference, '--json']);
  assert.equal(inspected.code, 0, inspected.stderr);
  const doc = JSON.parse(inspected.stdout) as { release: { version: string }; images: Array<{ name: string; origin: string }>; sealed: boolean; created: string };
  assert.equal(doc.release.version, '4.16.0-sample');
  assert.equal(doc.sealed, true);
  assert.equal(doc.created, '2023-11-14T22:13:20Z');
  assert.equal(doc.images.filter((i) => i.origin === 'component').length, sample.components.length);
});

test('skopeo copies an OCI image out of the bundle as oci-archive:BUNDLE:NAME, NAME being its reference by digest', async () => {
  // skopeo 1.9 (containers/image) matches ref.name only on index.json entries of the OCI manifest type.
  const component = sample.components.find((c) => c.mediaType === 'application/vnd.oci.image.manifest.v1+json')!;
  const out = path.join(work, 'skopeo-out');
  await run('skopeo', ['copy', '--quiet', `oci-archive:${reference}:${component.reference}`, `dir:${out}`], { timeout: 30_000 });
  const manifest = await readFile(path.join(out, 'manifest.json'));
  const digest = `sha256:${(await import('node:crypto')).createHash('sha256').update(manifest).digest('hex')}`;
  assert.equal(digest, component.digest);
  await rm(out, { recursive: true, force: true });
});

test('split volumes are at most --split-size each and concatenate to the unsplit tar byte for byte', async () => {
  const output = path.join(work, 'split', 'release.tar');
  const made = await cli(['bundle', 'create', ...source(), '--release', RELEASE, '--image', sample.extraImages[0]!.reference, '--output', output, '--split-size', '1MiB', '--quiet']);
  assert.equal(made.code, 0, made.stderr);
  const names = (await readdir(path.dirname(output))).sort();
  assert.ok(names.length >= 3, names.join(' '));
  assert.deepEqual(names.slice(0, 2), ['release.tar.001', 'release.tar.002']);
  assert.equal(names.at(-1), 'release.tar.seal.json');
  const volumes = names.filter((n) => /\.\d{3}$/.test(n));
  const parts = await Promise.all(volumes.map((n) => readFile(path.join(path.dirname(output), n))));
  for (const p of parts) assert.ok(p.length <= 1024 * 1024);
  assert.ok(Buffer.concat(parts).equals(await readFile(reference)));
  const verified = await cli(['bundle', 'verify', `${output}.002`]);
  assert.equal(verified.code, 0, verified.stdout);
  await rm(path.dirname(output), { recursive: true, force: true });
});

test('verify names a flipped blob byte, a truncated, a missing and a stale volume, and exits 1', async () => {
  const dir = path.join(work, 'damaged');
  const output = path.join(dir, 'b.tar');
  const made = await cli(['bundle', 'create', ...source(), ...extrasOnly(), '--output', output, '--split-size', '1MiB', '--quiet']);
  assert.equal(made.code, 0, made.stderr);
  const names = (await readdir(dir)).filter((n) => /\.\d{3}$/.test(n)).sort();
  assert.ok(names.length >= 2);
  // One flipped byte in the middle of the largest blob, wherever that falls.
  const bundle = await openBundle(output);
  const [damaged, at] = [...(await bundle.locateBlobs())].sort((a, b) => b[1].size - a[1].size)[0]!;
  await bundle.close();
  const middle = at.offset + Math.floor(at.size / 2);
  const volumeIndex = Math.floor(middle / (1024 * 1024));
  const handle = await open(path.join(dir, names[volumeIndex]!), 'r+');
  const byte = Buffer.alloc(1);
  await handle.read(byte, 0, 1, middle % (1024 * 1024));
  byte[0] = byte[0]! ^ 0x20;
  await handle.write(byte, 0, 1, middle % (1024 * 1024));
  await handle.close();
  let result = await cli(['bundle', 'verify', output]);
  assert.equal(result.code, 1);
  assert.match(result.stdout, new RegExp(`FAIL blob-digest: blob ${damaged} is damaged: .*\\(expected ${damaged}, found sha256:[a-f0-9]{64}\\)`));
  assert.match(result.stdout, new RegExp(`FAIL blob-digest: blob ${damaged} is damaged: .*volume \\S*${names[volumeIndex]} bytes \\d+`));
  assert.doesNotMatch(result.stdout, /FAIL volume-sha256/);
  result = await cli(['bundle', 'verify', output, '--volume-checksums']);
  assert.equal(result.code, 1);
  assert.match(result.stdout, new RegExp(`FAIL volume-sha256: volume .*${names[volumeIndex]} does not match`));
  const last = names.at(-1)!;
  await truncate(path.join(dir, last), 100);
  result = await cli(['bundle', 'verify', output, '--json']);
  assert.equal(result.code, 1);
  const report = JSON.parse(result.stdout) as { ok: boolean; problems: Array<{ kind: string; subject: string; found?: string }> };
  assert.deepEqual(report.problems.find((p) => p.kind === 'volume-size')?.found, '100 bytes');
  await rm(path.join(dir, last));
  await writeFile(path.join(dir, `b.tar.${String(names.length + 1).padStart(3, '0')}`), 'stale');
  result = await cli(['bundle', 'verify', output, '--json']);
  const kinds = new Set((JSON.parse(result.stdout) as typeof report).problems.map((p) => p.kind));
  assert.ok(kinds.has('volume-missing') && kinds.has('volume-stale'), [...kinds].join(' '));
  assert.equal(result.code, 1);
  await rm(dir, { recursive: true, force: true });
});

test('a signed bundle verifies with its public key; another key or no signature fails', async () => {
  const dir = path.join(work, 'signed');
  await mkdir(dir);
  const key = path.join(dir, 'bastion.key');
  const keygen = await cli(['keygen', '--output', key]);
  assert.equal(keygen.code, 0, keygen.stderr);
  assert.equal((await stat(key)).mode & 0o777, 0o600);
  const output = path.join(dir, 'b.tar');
  const made = await cli(['bundle', 'create', ...source(), ...extrasOnly(), '--output', output, '--sign-key', key, '--quiet']);
  assert.equal(made.code, 0, made.stderr);
  const good = await cli(['bundle', 'verify', output, '--trusted-key', `${key}.pub`]);
  assert.equal(good.code, 0, good.stdout);
  assert.match(good.stdout, /signature valid/);
  await cli(['keygen', '--output', path.join(dir, 'other.key')]);
  const wrong = await cli(['bundle', 'verify', output, '--trusted-key', path.join(dir, 'other.key.pub')]);
  assert.equal(wrong.code, 1);
  assert.match(wrong.stdout, /FAIL signature: bad signature: signed by key sha256:[a-f0-9]+, not by the trusted key/);
  await rm(`${output}.sig`);
  const unsigned = await cli(['bundle', 'verify', output, '--trusted-key', `${key}.pub`]);
  assert.equal(unsigned.code, 1);
  assert.match(unsigned.stdout, /FAIL signature: the bundle is not signed/);
  await rm(dir, { recursive: true, force: true });
});

test('kill -9 in the middle of a blob, then a re-run: completes byte-identical and fetches no blob byte twice', async () => {
  const dir = path.join(work, 'resume');
  const uninterrupted = path.join(dir, 'clean.tar');
  proxy.requests.length = 0;
  const made = await cli(['bundle', 'create', ...source(), ...extrasOnly(), '--output', uninterrupted, '--quiet']);
  assert.equal(made.code, 0, made.stderr);

  // The largest layer stalls after 100000 bytes; with one download at a time, blobs before it are complete.
  const layerSizes = new Map<string, number>();
  for (const [digest, n] of blobBytesSent()) layerSizes.set(digest, n);
  const [stalled, size] = [...layerSizes].sort((a, b) => b[1] - a[1])[0]!;
  assert.ok(size > 200_000);
  proxy.requests.length = 0;
  proxy.setFault((req) => (req.method === 'GET' && req.path.endsWith(`/blobs/${stalled}`) ? { kind: 'stall-after-bytes', bytes: 100_000 } : undefined));
  const output = path.join(dir, 'b.tar');
  const first = startCli(['bundle', 'create', ...source(), ...extrasOnly(), '--output', output, '--concurrency', '1', '--quiet']);
  try {
    // Wait until the journal records the 100000 bytes of the stalled blob, then kill -9.
    const progressFile = path.join(`${output}.partial`, 'progress.bin');
    const deadline = Date.now() + 20_000;
    for (;;) {
      assert.ok(Date.now() < deadline, 'the stalled blob never reached 100000 bytes in the journal');
      const slots = await readFile(progressFile).catch(() => Buffer.alloc(0));
      const values = Array.from({ length: slots.length / 8 }, (_, i) => Number(slots.readBigUInt64LE(i * 8)));
      if (values.includes(100_000)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    first.child.kill('SIGKILL');
    await first.done;
  }
  proxy.setFault(undefined);
  await assert.rejects(stat(output));
  const second = await cli(['bundle', 'create', ...source(), ...extrasOnly(), '--output', output, '--concurrency', '1']);
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stderr, /resuming: \d+ blobs and .* already written are kept/);
  const resumed = proxy.requests.filter((r) => r.path.endsWith(`/blobs/${stalled}`) && r.method === 'GET');
  assert.deepEqual(resumed.map((r) => r.range ?? 'whole'), ['whole', 'bytes=100000-']);
  for (const [digest, sent] of blobBytesSent()) assert.equal(sent, layerSizes.get(digest), `bytes of ${digest} fetched over both runs`);
  assert.ok((await readFile(output)).equals(await readFile(uninterrupted)));
  await assert.rejects(stat(`${output}.partial`));
  await rm(dir, { recursive: true, force: true });
});

test('a filesystem too small for the bundle is refused before any blob is fetched, with the numbers', async (t) => {
  if (process.getuid?.() !== 0) {
    t.skip('mounting a 2 MiB tmpfs needs root');
    return;
  }
  const dir = path.join(work, 'small-disk');
  await mkdir(dir);
  await run('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', dir]);
  t.after(async () => {
    await run('umount', [dir]);
    await rm(dir, { recursive: true, force: true });
  });
  proxy.requests.length = 0;
  const refused = await cli(['bundle', 'create', ...source(), ...extrasOnly(), '--output', path.join(dir, 'b.tar')]);
  assert.equal(refused.code, 1, refused.stderr);
  assert.match(refused.stderr, new RegExp(`error: not enough free space in ${dir}: the bundle needs .* more \\(\\d+ bytes\\), the filesystem has .* \\(\\d+ bytes\\) available`));
  assert.match(refused.stderr, /hint: .*nothing was downloaded/);
  assert.equal(blobBytesSent().size, 0);
  assert.deepEqual(await readdir(dir), []);
  // With room for the bundle, the same command goes through: the check asks for what is needed, no more.
  await run('mount', ['-o', 'remount,size=8m', dir]);
  const fits = await cli(['bundle', 'create', ...source(), ...extrasOnly(), '--output', path.join(dir, 'b.tar'), '--quiet']);
  assert.equal(fits.code, 0, fits.stderr);
  assert.deepEqual((await readdir(dir)).sort(), ['b.tar', 'b.tar.seal.json']);
});
