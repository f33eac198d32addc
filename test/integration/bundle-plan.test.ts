// `pin-preload bundle plan` end to end: the built CLI against a real docker-registry holding a generated
// OpenShift-like release, behind a proxy that records every request.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseManifest, type ImageManifest } from '../../src/oci/manifest.js';
import { generateSampleRelease, pushLayout, type SampleRelease } from '../../src/sample/index.js';
import { startDockerRegistry, type RunningRegistry } from '../support/docker-registry.js';
import { freePort } from '../support/ports.js';
import { startRegistryProxy, type RunningProxy } from '../support/registry-proxy.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const SAMPLE_SPEC = fileURLToPath(new URL('../../../bundles/sample.toml', import.meta.url));
const RELEASE = 'quay.io/openshift-release-dev/ocp-release:4.16.0-sample-x86_64';

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI; under /usr/bin/time -v when `measure`, whose report is appended to stderr. */
function runCli(args: readonly string[], options: { measure?: boolean; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  const [cmd, argv] = options.measure ? ['/usr/bin/time', ['-v', process.execPath, CLI, ...args]] : [process.execPath, [CLI, ...args]];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd as string, argv as string[], { stdio: ['ignore', 'pipe', 'pipe'], ...(options.env ? { env: options.env } : {}) });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

async function writeRegistriesConf(file: string, host: string): Promise<string> {
  const entries = ['quay.io', 'registry.example.com'].map((prefix) => `[[registry]]\nprefix = "${prefix}"\nlocation = "${host}"\ninsecure = true\n`);
  await writeFile(file, entries.join('\n'));
  return file;
}

function blobGets(proxy: RunningProxy): string[] {
  return proxy.requests.filter((r) => r.method === 'GET' && r.path.includes('/blobs/')).map((r) => r.path.split('?')[0]!);
}

interface PlanJson {
  schemaVersion: number;
  release: { digest: string; version: string; componentCount: number; name: string } | null;
  platforms: string[];
  images: Array<{ name: string; digest: string; origin: string; component: string | null; tag: string | null; mediaType: string; platforms: string[]; manifests: string[]; blobs: string[] }>;
  blobs: Array<{ digest: string; size: number; role: string; repositories: string[]; uncompressedEstimated: boolean }>;
  totals: { images: number; uniqueBlobs: number; uniqueBytes: number; bytesWithRepeats: number; dedupRatio: number; uncompressedBytes: number };
}

let work: string;
let registry: RunningRegistry;
let proxy: RunningProxy;
let sample: SampleRelease;
let big: SampleRelease;
let conf: string;
let authfile: string;

before(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-plan-'));
  registry = await startDockerRegistry();
  [sample, big] = await Promise.all([
    generateSampleRelease(path.join(work, 'sample'), { multiPayload: true }),
    // 190 components with tiny layers: what matters is the number of images, not their size.
    generateSampleRelease(path.join(work, 'big'), { version: '4.16.190-sample', components: 190, baseLayers: 1, baseLayerSize: 1024, componentLayerSize: 256, multiArchShare: 0, extraImages: 0, seed: 'big' }),
  ]);
  await Promise.all([pushLayout(sample.dir, registry.url, { concurrency: 8 }), pushLayout(big.dir, registry.url, { concurrency: 16 })]);
  proxy = await startRegistryProxy(registry.url);
  conf = await writeRegistriesConf(path.join(work, 'registries.conf'), proxy.host);
  authfile = path.join(work, 'auth.json');
  await writeFile(authfile, '{"auths":{}}');
});

after(async () => {
  await proxy?.stop();
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

const planArgs = (...rest: string[]) => ['bundle', 'plan', '--registries-conf', conf, '--authfile', authfile, ...rest];

/** The payload image manifest as stored in the generated layout. */
async function payloadManifest(release: SampleRelease): Promise<ImageManifest> {
  const bytes = await readFile(path.join(release.dir, 'blobs', 'sha256', release.releaseDigest.slice('sha256:'.length)));
  const m = parseManifest(bytes, undefined, 'payload');
  assert.equal(m.kind, 'image');
  return m as ImageManifest;
}

describe('bundle plan of a release', () => {
  test('lists exactly the payload and its components by digest, reading only the payload top layer', async () => {
    proxy.requests.length = 0;
    const result = await runCli(planArgs('--release', RELEASE, '--json'));
    assert.equal(result.code, 0, result.stderr);
    const plan = JSON.parse(result.stdout) as PlanJson;
    assert.equal(plan.schemaVersion, 1);
    assert.equal(plan.release?.digest, sample.releaseDigest);
    assert.equal(plan.release?.version, '4.16.0-sample');
    assert.equal(plan.release?.componentCount, sample.components.length);
    const release = plan.images.filter((i) => i.origin === 'release');
    assert.deepEqual(release.map((i) => [i.name, i.tag]), [[`quay.io/openshift-release-dev/ocp-release@${sample.releaseDigest}`, '4.16.0-sample-x86_64']]);
    assert.deepEqual(
      plan.images.filter((i) => i.origin === 'component').map((i) => [i.component, i.name]),
      sample.components.map((c) => [c.name, c.reference]),
    );
    assert.equal(plan.images.length, sample.components.length + 1);

    // Multi-arch components contribute their linux/amd64 child only.
    for (const c of sample.components.filter((x) => x.platforms.length === 2)) {
      const image = plan.images.find((i) => i.digest === c.digest)!;
      assert.deepEqual(image.platforms, ['linux/amd64']);
      assert.equal(image.manifests.length, 2);
    }
    // Every blob any image needs is listed once, with where it comes from.
    const listed = new Set(plan.blobs.map((b) => b.digest));
    assert.equal(listed.size, plan.blobs.length);
    for (const image of plan.images) for (const d of [...image.manifests, ...image.blobs]) assert.ok(listed.has(d), `${d} of ${image.name} is in the plan`);
    assert.ok(plan.totals.bytesWithRepeats > plan.totals.uniqueBytes, 'base layers shared by every image are counted once');
    assert.equal(plan.totals.uniqueBytes, plan.blobs.reduce((n, b) => n + b.size, 0));

    const top = (await payloadManifest(sample)).layers.at(-1)!;
    assert.deepEqual(blobGets(proxy), [`/v2/openshift-release-dev/ocp-release/blobs/${top.digest}`], 'only the payload top layer is downloaded');
  });

  test('the sample bundle spec adds its extra images, resolved from their tags, multi-arch ones for linux/amd64', async () => {
    const result = await runCli(planArgs('--spec', SAMPLE_SPEC, '--json'));
    assert.equal(result.code, 0, result.stderr);
    const plan = JSON.parse(result.stdout) as PlanJson;
    const extras = plan.images.filter((i) => i.origin === 'extra');
    assert.deepEqual(extras.map((i) => i.digest), sample.extraImages.map((e) => e.digest));
    assert.deepEqual(extras.map((i) => i.tag), ['1.0', '2.1']);
    const debug = extras[1]!;
    assert.deepEqual(debug.platforms, ['linux/amd64']);
    assert.equal(plan.images.length, sample.components.length + 1 + sample.extraImages.length);
  });

  test('a multi-arch release is planned by its manifest list digest with the children of each wanted platform', async () => {
    const result = await runCli(planArgs('--release', sample.multiReleaseReference!, '--platform', 'linux/amd64', '--platform', 'linux/arm64', '--json'));
    assert.equal(result.code, 0, result.stderr);
    const plan = JSON.parse(result.stdout) as PlanJson;
    const payload = plan.images.find((i) => i.origin === 'release')!;
    assert.equal(payload.name, plan.release!.name);
    assert.deepEqual(payload.platforms, ['linux/amd64', 'linux/arm64']);
    assert.equal(payload.manifests.length, 3);
    // Single-arch components cannot serve arm64; the plan still lists them as they are.
    for (const c of sample.components.filter((x) => x.platforms.length === 2)) {
      assert.deepEqual(plan.images.find((i) => i.digest === c.digest)!.platforms, ['linux/amd64', 'linux/arm64']);
    }
  });

  test('the human summary shows the release, each image and the totals', async () => {
    const result = await runCli(planArgs('--release', RELEASE));
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^Release: +quay\.io\/openshift-release-dev\/ocp-release:4\.16\.0-sample-x86_64$/m);
    assert.match(result.stdout, /version 4\.16\.0-sample, 12 components/);
    assert.match(result.stdout, new RegExp(`component +${sample.components[0]!.name} +quay\\.io/openshift-release-dev/ocp-v4\\.0-art-dev@${sample.components[0]!.digest}`));
    for (const label of ['Unique blobs:', 'Unique bytes:', 'Bytes with repeats:', 'Dedup ratio:', 'Uncompressed:']) assert.ok(result.stdout.includes(label), label);
  });

  test('a 190-component release: 190 components and the payload, no component layer fetched, modest memory', async () => {
    proxy.requests.length = 0;
    const result = await runCli(planArgs('--release', big.releaseReference, '--json'), { measure: true });
    assert.equal(result.code, 0, result.stderr);
    const plan = JSON.parse(result.stdout) as PlanJson;
    assert.equal(plan.images.filter((i) => i.origin === 'component').length, 190);
    assert.equal(plan.images.length, 191);
    assert.deepEqual(new Set(plan.images.map((i) => i.digest)), new Set([big.releaseDigest, ...big.components.map((c) => c.digest)]));
    const top = (await payloadManifest(big)).layers.at(-1)!;
    assert.deepEqual(blobGets(proxy), [`/v2/openshift-release-dev/ocp-release/blobs/${top.digest}`]);
    const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(result.stderr);
    assert.ok(rss, 'time -v reported the peak RSS');
    assert.ok(Number(rss[1]) < 200 * 1024, `peak RSS ${rss[1]} kB is under 200 MB`);
  });
});

describe('bundle plan errors', () => {
  test('an unknown release tag fails naming the tag', async () => {
    const result = await runCli(planArgs('--release', 'quay.io/openshift-release-dev/ocp-release:4.99.0-x86_64'));
    assert.equal(result.code, 1);
    assert.match(result.stderr, /pin-preload: error: .*ocp-release:4\.99\.0-x86_64.*not found/);
    assert.doesNotMatch(result.stderr, /internal error|\n\s+at /);
  });

  test('an image without release-manifests/image-references is not a release', async () => {
    const result = await runCli(planArgs('--release', 'registry.example.com/sample/tools:1.0'));
    assert.equal(result.code, 1);
    assert.match(result.stderr, /release image registry\.example\.com\/sample\/tools:1\.0 did not contain an image-references file/);
  });

  test('a bad reference in --images-from is reported with file and line (usage error)', async () => {
    const list = path.join(work, 'images.txt');
    await writeFile(list, '# extras\nregistry.example.com/sample/tools:1.0\n\nregistry.example.com/Sample/Bad:1\n');
    const result = await runCli(planArgs('--images-from', list));
    assert.equal(result.code, 2);
    assert.match(result.stderr, new RegExp(`${list.replace(/[.]/g, '\\.')}:4: invalid image reference "registry\\.example\\.com/Sample/Bad:1"`));
  });

  test('a --since that is missing, a directory or not a bundle fails at once as SINCE_UNREADABLE, before any registry request (plan and create)', async () => {
    const dir = path.join(work, 'since-dir');
    await mkdir(dir, { recursive: true });
    const garbage = path.join(work, 'since-garbage.tar');
    await writeFile(garbage, 'not a bundle\n'.repeat(100));
    const cases: Array<[string, RegExp]> = [
      [path.join(work, 'no-such-bundle.tar.seal.json'), /no bundle at/],
      [path.join(work, 'no-such-bundle.tar'), /no bundle at/],
      [dir, /it is a directory/],
      [garbage, /invalid tar header/],
    ];
    for (const [since, why] of cases) {
      const create = ['bundle', 'create', '--registries-conf', conf, '--authfile', authfile, '--release', RELEASE, '--output', path.join(work, 'never.tar'), '--since', since];
      for (const command of [planArgs('--release', RELEASE, '--since', since), create]) {
        const what = `${command[1]} --since ${since}`;
        const requests = proxy.requests.length;
        const result = await runCli(command);
        assert.equal(result.code, 2, `${what}: ${result.stderr}`);
        assert.match(result.stderr, new RegExp(`^pin-preload: error: cannot read --since ${since.replace(/[.]/g, '\\.')}: `, 'm'), what);
        assert.match(result.stderr, why, what);
        assert.doesNotMatch(result.stderr, /internal error|\n\s+at /, what);
        assert.equal(proxy.requests.length, requests, `${what}: PREV is read before the plan asks any registry`);
      }
      const json = await runCli(planArgs('--release', RELEASE, '--since', since, '--json'));
      const error = (JSON.parse(json.stdout) as { error: { code: string; subject: unknown } }).error;
      assert.equal(error.code, 'SINCE_UNREADABLE', since);
      assert.deepEqual(error.subject, { kind: 'path', name: since }, since);
    }
  });

  test('no release and no images is a usage error', async () => {
    const result = await runCli(planArgs());
    assert.equal(result.code, 2);
    assert.match(result.stderr, /nothing to bundle/);
  });

  test('without --registries-conf the user\'s containers configuration is read as skopeo reads it: registries.conf, then its drop-ins', async () => {
    const user = path.join(work, 'home', '.config', 'containers');
    await mkdir(path.join(user, 'registries.conf.d'), { recursive: true });
    // The main file points at a closed port; only the drop-in, read after it, makes the plan work.
    await writeRegistriesConf(path.join(user, 'registries.conf'), `127.0.0.1:${await freePort()}`);
    await writeRegistriesConf(path.join(user, 'registries.conf.d', '50-mirror.conf'), proxy.host);
    const result = await runCli(['bundle', 'plan', '--authfile', authfile, '--release', RELEASE, '--json'], { env: { ...process.env, HOME: path.join(work, 'home') } });
    assert.equal(result.code, 0, result.stderr);
    assert.equal((JSON.parse(result.stdout) as PlanJson).release?.version, '4.16.0-sample');
  });

  test('an unreachable registry is named', async () => {
    const closed = await writeRegistriesConf(path.join(work, 'closed.conf'), `127.0.0.1:${await freePort()}`);
    const started = Date.now();
    const result = await runCli(['bundle', 'plan', '--registries-conf', closed, '--authfile', authfile, '--release', RELEASE]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /cannot reach registry 127\.0\.0\.1:\d+/);
    assert.ok(Date.now() - started < 20_000, 'gives up within seconds');
  });

  test('a registry that refuses access (401) is named with a hint on credentials', async (t) => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-plan-auth-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    // A token server that refuses every token request, as quay.io does for a private repository.
    const realm = http.createServer((_req, res) => {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end('{"details":"authentication required"}');
    });
    await new Promise<void>((resolve) => realm.listen(0, '127.0.0.1', () => resolve()));
    t.after(() => new Promise<void>((resolve) => realm.close(() => resolve())));
    await promisify(execFile)('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'), '-days', '2', '-subj', '/CN=pin-preload plan test']);
    const locked = await startDockerRegistry({
      authYaml: ['auth:', '  token:', `    realm: http://127.0.0.1:${(realm.address() as AddressInfo).port}/token`, '    service: test-registry', '    issuer: test-issuer', `    rootcertbundle: ${path.join(dir, 'cert.pem')}`].join('\n'),
    });
    t.after(() => locked.stop());
    const lockedConf = await writeRegistriesConf(path.join(dir, 'registries.conf'), locked.host);
    const result = await runCli(['bundle', 'plan', '--registries-conf', lockedConf, '--authfile', authfile, '--release', RELEASE]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, new RegExp(`${locked.host.replace(/[.]/g, '\\.')}.*refused.*anonymous access`));
    assert.match(result.stderr, /hint: .*--authfile/);
  });
});
