// Real clients against `pin-preload serve` on a bundle made by the real planner and writer from the
// sample release: skopeo inspect/copy by tag and digest, containerd pulling quay.io names through a
// hosts.toml mirror via CRI, the read-only checks of distribution-spec's conformance suite, clean SIGTERM.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { CriImageService } from '../../src/cri/image-service.js';
import { sha256Of } from '../../src/oci/digest.js';
import { MediaType } from '../../src/oci/media-types.js';
import { parseManifest } from '../../src/oci/manifest.js';
import { desiredImages, readNodeBundle } from '../../src/node/bundle-dir.js';
import { resolveConfig } from '../../src/node/config.js';
import { applyHostsTomls, applyMirrorConfig } from '../../src/node/runtime-files.js';
import { startContainerd, writeHostsToml } from '../support/containerd.js';
import { freePort, waitFor } from '../support/ports.js';
import { buildSampleBundle, EXTRA_IMAGES, RELEASE_TAG, type SampleBundle } from '../support/mirror-fixture.js';

const run = promisify(execFile);
const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');
const RELEASE = 'openshift-release-dev/ocp-release';
const COMPONENTS = 'openshift-release-dev/ocp-v4.0-art-dev';

let work: string;
let bundle: SampleBundle;
let serve: ChildProcess;
let serveExit: Promise<number | null>;
let stdout = '';
let stderr = '';
let host: string;
let url: string;

before(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-mirror-clients-'));
  bundle = await buildSampleBundle(work);
  const port = await freePort();
  host = `127.0.0.1:${port}`;
  url = `http://${host}`;
  serve = spawn(process.execPath, [CLI, 'serve', '--bundle-dir', path.dirname(bundle.sealPath), '--listen', host, '--state', path.join(work, 'state.db')], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  serve.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  serve.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  serveExit = new Promise((resolve) => serve.once('exit', (code) => resolve(code)));
  await waitFor(`pin-preload serve on ${url}`, async () => {
    if (serve.exitCode !== null) throw new Error(`serve exited: ${stderr}`);
    return (await fetch(`${url}/v2/`)).status === 200;
  });
});

after(async () => {
  if (serve && serve.exitCode === null) {
    serve.kill('SIGKILL');
    await serveExit;
  }
  await rm(work, { recursive: true, force: true });
});

function componentOf(kind: 'oci-index' | 'docker-list' | 'single') {
  const c = bundle.sample.components.find((x) =>
    kind === 'single' ? x.platforms.length === 1 : kind === 'oci-index' ? x.mediaType === MediaType.ociIndex : x.mediaType === MediaType.dockerManifestList,
  );
  assert.ok(c, `the sample has a ${kind} component`);
  return c;
}

test('serve prints where it serves and what', () => {
  assert.match(stderr, new RegExp(`serving 1 bundle\\(s\\), \\d+ repositories, at http://${host.replace(/\./g, '\\.')}`));
  assert.match(stderr, /sample\.tar/);
});

test('skopeo inspects the release by tag through the mirror', async () => {
  const { stdout: out } = await run('skopeo', ['inspect', '--tls-verify=false', `docker://${host}/${RELEASE}:${RELEASE_TAG}`]);
  const doc = JSON.parse(out) as { Digest: string; RepoTags: string[]; Labels: Record<string, string> };
  assert.equal(doc.Digest, bundle.sample.releaseDigest);
  assert.deepEqual(doc.RepoTags, [RELEASE_TAG]);
  assert.equal(doc.Labels['io.openshift.release'], bundle.sample.params.version);
});

test('skopeo copies the release by tag and a component by digest from the mirror to dir:', async () => {
  const byTag = path.join(work, 'copy-by-tag');
  await run('skopeo', ['copy', '--src-tls-verify=false', `docker://${host}/${RELEASE}:${RELEASE_TAG}`, `dir:${byTag}`]);
  assert.equal(sha256Of(await readFile(path.join(byTag, 'manifest.json'))), bundle.sample.releaseDigest);
  const single = componentOf('single');
  const byDigest = path.join(work, 'copy-by-digest');
  await run('skopeo', ['copy', '--src-tls-verify=false', `docker://${host}/${COMPONENTS}@${single.digest}`, `dir:${byDigest}`]);
  assert.equal(sha256Of(await readFile(path.join(byDigest, 'manifest.json'))), single.digest);
  // Every blob skopeo wrote is named by its digest and hashes to it.
  for (const name of (await readdir(byDigest)).filter((n) => /^[a-f0-9]{64}$/.test(n))) {
    assert.equal(sha256Of(await readFile(path.join(byDigest, name))), `sha256:${name}`);
  }
});

test('skopeo copies a multi-arch OCI index by digest under the host-qualified name', async () => {
  const multi = componentOf('oci-index');
  const out = path.join(work, 'copy-index');
  await run('skopeo', ['copy', '--src-tls-verify=false', '--override-arch', 'amd64', `docker://${host}/quay.io/${COMPONENTS}@${multi.digest}`, `dir:${out}`]);
  const manifest = parseManifest(await readFile(path.join(out, 'manifest.json')), undefined, 'copied');
  assert.equal(manifest.kind, 'image', 'skopeo picked the linux/amd64 image of the index');
});

test('skopeo pulls quay.io names by digest through a registries.conf mirror, as CRI-O does, with quay.io blocked', async () => {
  const conf = path.join(work, 'registries-mirror.conf');
  await writeFile(conf, [RELEASE, COMPONENTS].map((repo) => [
    '[[registry]]',
    `prefix = "quay.io/${repo}"`,
    `location = "quay.io/${repo}"`,
    'blocked = true',
    '[[registry.mirror]]',
    `location = "${host}/${repo}"`,
    'insecure = true',
    'pull-from-mirror = "digest-only"',
    '',
  ].join('\n')).join('\n'));
  const single = componentOf('single');
  const out = path.join(work, 'copy-via-registries-conf');
  await run('skopeo', ['copy', '--registries-conf', conf, `docker://quay.io/${COMPONENTS}@${single.digest}`, `dir:${out}`]);
  assert.equal(sha256Of(await readFile(path.join(out, 'manifest.json'))), single.digest);
  await assert.rejects(
    run('skopeo', ['inspect', '--registries-conf', conf, `docker://quay.io/${RELEASE}:${RELEASE_TAG}`]),
    /blocked/,
    'a tag is not pulled from a digest-only mirror, and the blocked source is never contacted',
  );
});

test('CRI-O\'s view through our drop-in: an extra image pulls by its tag from the mirror, a release image only by digest (skopeo, private /etc/containers)', async () => {
  // A private /etc/containers in a mount namespace: the main registries.conf blocks both source hosts (an
  // air-gapped node) and our drop-in is written by the same code preload runs.
  const etc = path.join(work, 'etc-containers');
  await mkdir(path.join(etc, 'registries.conf.d'), { recursive: true });
  await writeFile(path.join(etc, 'registries.conf'), ['quay.io', 'registry.example.com'].map((p) => `[[registry]]\nlocation = "${p}"\nblocked = true\n`).join('\n'));
  await writeFile(path.join(etc, 'policy.json'), '{"default":[{"type":"insecureAcceptAnything"}]}\n');
  const config = resolveConfig(new Map<string, unknown>([
    ['mirror.listen', host],
    ['runtime.registries_conf', path.join(etc, 'registries.conf')],
    ['runtime.registries_dropin', path.join(etc, 'registries.conf.d', '50-pin-preload.conf')],
  ]), new Map(), undefined);
  const images = desiredImages([await readNodeBundle(bundle.sealPath)]);
  await applyMirrorConfig(config, images.map((i) => i.repository), images.filter((i) => i.servedByTag).map((i) => i.repository));
  const home = path.join(work, 'home');
  await mkdir(home, { recursive: true });
  const skopeo = (ref: string) => run('unshare', ['-m', '--propagation', 'private', 'sh', '-c', 'mount --bind "$1" /etc/containers && exec skopeo inspect --raw "$2"', 'sh', etc, `docker://${ref}`], {
    env: { ...process.env, HOME: home },
  });

  const tools = images.find((i) => i.name.startsWith('registry.example.com/sample/tools@'));
  assert.ok(tools?.servedByTag, 'the extra image is recorded as served by its tag');
  const { stdout: raw } = await skopeo(EXTRA_IMAGES[0]!);
  assert.equal(sha256Of(Buffer.from(raw)), tools.name.split('@')[1], 'registry.example.com/sample/tools:1.0 resolved through the mirror');
  const single = componentOf('single');
  const { stdout: byDigest } = await skopeo(`quay.io/${COMPONENTS}@${single.digest}`);
  assert.equal(sha256Of(Buffer.from(byDigest)), single.digest);
  await assert.rejects(skopeo(`quay.io/${RELEASE}:${RELEASE_TAG}`), /blocked/, 'the release by tag is not taken from the mirror');
});

test('containerd pulls quay.io images by digest, and an extra image by its tag, through the mirror via the CRI ImageService', async (t) => {
  const hostsDir = path.join(work, 'certs.d');
  await writeHostsToml(hostsDir, 'quay.io', url);
  // registry.example.com's file as the node writes it: containerd resolves tags through a mirror with "resolve".
  await applyHostsTomls(hostsDir, ['registry.example.com'], { listen: host, tls: false });
  const hostsToml = await readFile(path.join(hostsDir, 'quay.io', 'hosts.toml'), 'utf8');
  assert.match(hostsToml, /server = "https:\/\/quay\.io"/);
  const containerd = await startContainerd({ registryHostsDir: hostsDir });
  t.after(() => containerd.stop());
  const cri = await CriImageService.connect(containerd.endpoint, { timeoutMs: 10_000 });
  t.after(() => cri.close());
  const refs = [
    `quay.io/${COMPONENTS}@${componentOf('single').digest}`,
    `quay.io/${COMPONENTS}@${componentOf('oci-index').digest}`,
    `quay.io/${RELEASE}@${bundle.sample.releaseDigest}`,
  ];
  for (const ref of refs) {
    assert.equal(await cri.imageStatus(ref), undefined, `${ref} is absent before the pull`);
    const imageRef = await cri.pullImage(ref, { timeoutMs: 30_000 });
    assert.match(imageRef, /^sha256:[a-f0-9]{64}$/);
    const image = await cri.imageStatus(ref);
    assert.ok(image?.repoDigests.includes(ref), `${ref} is present after the pull`);
  }
  const byTag = EXTRA_IMAGES[0]!;
  await cri.pullImage(byTag, { timeoutMs: 30_000 });
  assert.ok((await cri.imageStatus(byTag))?.repoTags.includes(byTag), `${byTag} is present by its tag after the pull`);
  // quay.io is unreachable here, so the content can only have come from the mirror; its log says so.
  const log = stdout.trim().split('\n').map((l) => JSON.parse(l) as { method: string; path: string; status: number });
  const fromContainerd = log.filter((l) => l.path.endsWith('?ns=quay.io'));
  assert.ok(fromContainerd.some((l) => l.path === `/v2/${COMPONENTS}/manifests/${componentOf('single').digest}?ns=quay.io` && l.status === 200));
  assert.ok(fromContainerd.some((l) => l.path.includes('/blobs/') && l.status === 200));
});

interface Check {
  readonly what: string;
  readonly method?: string;
  readonly target: string | (() => Promise<string>);
  readonly headers?: Record<string, string>;
  readonly status: number | readonly number[];
  readonly check?: (res: Response, body: Buffer) => void | Promise<void>;
}

async function releaseLayer(): Promise<{ digest: string; size: number }> {
  const res = await fetch(`${url}/v2/${RELEASE}/manifests/${RELEASE_TAG}`);
  const m = parseManifest(Buffer.from(await res.arrayBuffer()), MediaType.dockerManifest, 'release');
  assert.equal(m.kind, 'image');
  return m.kind === 'image' ? m.layers[0]! : { digest: '', size: 0 };
}

// The read-only ("pull" and "content discovery") checks of opencontainers/distribution-spec's conformance
// suite, reimplemented: the suite itself needs Go modules that cannot be fetched here.
const CONFORMANCE: readonly Check[] = [
  { what: 'GET /v2/ is 200', target: '/v2/', status: 200 },
  { what: 'HEAD a manifest by tag is 200 with Docker-Content-Digest', method: 'HEAD', target: `/v2/${RELEASE}/manifests/${RELEASE_TAG}`, status: 200,
    check: (res) => assert.ok(res.headers.get('docker-content-digest')) },
  { what: 'GET a manifest by tag matches its digest', target: `/v2/${RELEASE}/manifests/${RELEASE_TAG}`, status: 200,
    check: (res, body) => assert.equal(sha256Of(body), res.headers.get('docker-content-digest')) },
  { what: 'GET a manifest by digest is 200', target: async () => `/v2/${RELEASE}/manifests/${bundle.sample.releaseDigest}`, status: 200 },
  { what: 'HEAD a nonexistent manifest is 404', method: 'HEAD', target: `/v2/${RELEASE}/manifests/sha256:${'f'.repeat(64)}`, status: 404 },
  { what: 'GET a nonexistent manifest by an odd but valid tag is exactly 404', target: `/v2/${RELEASE}/manifests/_INVALID_MANIFEST_NAME`, status: 404,
    check: async (_res, body) => assert.equal(JSON.parse(body.toString()).errors[0].code, 'MANIFEST_UNKNOWN') },
  { what: 'HEAD a blob is 200 with Content-Length', method: 'HEAD', target: async () => `/v2/${RELEASE}/blobs/${(await releaseLayer()).digest}`, status: 200,
    check: async (res) => assert.equal(Number(res.headers.get('content-length')), (await releaseLayer()).size) },
  { what: 'GET a blob matches its digest', target: async () => `/v2/${RELEASE}/blobs/${(await releaseLayer()).digest}`, status: 200,
    check: async (_res, body) => assert.equal(sha256Of(body), (await releaseLayer()).digest) },
  { what: 'GET a blob range is 206 with exactly those bytes', target: async () => `/v2/${RELEASE}/blobs/${(await releaseLayer()).digest}`, headers: { range: 'bytes=0-9' }, status: 206,
    check: (_res, body) => assert.equal(body.length, 10) },
  { what: 'GET a nonexistent blob is 404 BLOB_UNKNOWN', target: `/v2/${RELEASE}/blobs/sha256:${'e'.repeat(64)}`, status: 404,
    check: (_res, body) => assert.equal(JSON.parse(body.toString()).errors[0].code, 'BLOB_UNKNOWN') },
  { what: 'GET a manifest by a malformed digest is 400 or 404', target: `/v2/${RELEASE}/manifests/sha256:totallywrong`, status: [400, 404] },
  { what: 'GET a blob by a malformed digest is 400 or 404', target: `/v2/${RELEASE}/blobs/sha256:totallywrong`, status: [400, 404] },
  { what: 'GET the tag list', target: `/v2/${RELEASE}/tags/list`, status: 200,
    check: (_res, body) => assert.deepEqual(JSON.parse(body.toString()), { name: RELEASE, tags: [RELEASE_TAG] }) },
  { what: 'GET the tag list with n=0 is empty', target: `/v2/${RELEASE}/tags/list?n=0`, status: 200,
    check: (_res, body) => assert.deepEqual(JSON.parse(body.toString()).tags, []) },
  { what: 'GET the tag list with last past every tag is empty', target: `/v2/${RELEASE}/tags/list?last=${RELEASE_TAG}`, status: 200,
    check: (_res, body) => assert.deepEqual(JSON.parse(body.toString()).tags, []) },
  { what: 'GET referrers of a manifest is an OCI index', target: async () => `/v2/${RELEASE}/referrers/${bundle.sample.releaseDigest}`, status: 200,
    check: (res, body) => {
      assert.equal(res.headers.get('content-type'), MediaType.ociIndex);
      assert.deepEqual(JSON.parse(body.toString()).manifests, []);
    } },
  { what: 'GET referrers filtered by artifactType says the filter was applied', target: async () => `/v2/${RELEASE}/referrers/${bundle.sample.releaseDigest}?artifactType=application%2Fvnd.example`, status: 200,
    check: (res) => assert.equal(res.headers.get('oci-filters-applied'), 'artifactType') },
  { what: 'PUT a manifest is refused', method: 'PUT', target: `/v2/${RELEASE}/manifests/new`, status: 405 },
  { what: 'POST a blob upload is refused', method: 'POST', target: `/v2/${RELEASE}/blobs/uploads/`, status: 405 },
  { what: 'DELETE a manifest is refused', method: 'DELETE', target: async () => `/v2/${RELEASE}/manifests/${bundle.sample.releaseDigest}`, status: 405 },
];

test('the read-only checks of the distribution-spec conformance suite pass', async (t) => {
  for (const c of CONFORMANCE) {
    await t.test(c.what, async () => {
      const target = typeof c.target === 'string' ? c.target : await c.target();
      const res = await fetch(`${url}${target}`, { method: c.method ?? 'GET', ...(c.headers ? { headers: c.headers } : {}) });
      const body = Buffer.from(await res.arrayBuffer());
      const allowed = typeof c.status === 'number' ? [c.status] : c.status;
      assert.ok(allowed.includes(res.status), `${c.method ?? 'GET'} ${target}: status ${res.status}, expected ${allowed.join(' or ')}: ${body.toString().slice(0, 200)}`);
      assert.equal(res.headers.get('docker-distribution-api-version'), 'registry/2.0');
      await c.check?.(res, body);
    });
  }
});

test('serve takes listen, bundle dir and state from --config, and stops cleanly on SIGINT', async (t) => {
  const port = await freePort();
  const config = path.join(work, 'config.toml');
  await writeFile(config, [
    '[paths]',
    `bundles = ${JSON.stringify(path.dirname(bundle.sealPath))}`,
    `state = ${JSON.stringify(path.join(work, 'config-state.db'))}`,
    '[mirror]',
    `listen = "127.0.0.1:${port}"`,
    '',
  ].join('\n'));
  const child = spawn(process.execPath, [CLI, 'serve', '--config', config, '--no-access-log'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  await waitFor('serve --config', async () => (await fetch(`http://127.0.0.1:${port}/v2/${RELEASE}/tags/list`)).status === 200);
  child.kill('SIGINT');
  assert.equal(await exited, 0);
  assert.equal(out, '', '--no-access-log writes nothing to stdout');
});

test('serve stops cleanly on SIGTERM', async () => {
  serve.kill('SIGTERM');
  const code = await serveExit;
  assert.equal(code, 0);
  assert.match(stderr, /SIGTERM: closing the mirror/);
});
