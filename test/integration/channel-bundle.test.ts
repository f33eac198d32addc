// Releases by channel end to end: the built CLI against a local update-graph server (the real API's shape)
// whose payloads are generated sample releases in a real docker-registry; plan shows the path, create
// bundles the releases with blobs shared once, and `bundle manifests` writes the cluster objects.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { openBundle } from '../../src/bundle/reader.js';
import { pinnedNameProblem } from '../../src/cluster/pinned-image-set.js';
import { generateSampleRelease, pushLayout, RELEASE_REPOSITORY, type SampleRelease } from '../../src/sample/index.js';
import { assertNoInternalError, runCli } from '../support/cli.js';
import { startDockerRegistry, type RunningRegistry } from '../support/docker-registry.js';
import { freePort } from '../support/ports.js';

const VERSIONS = ['4.16.0-sample', '4.16.1-sample', '4.16.2-sample'] as const;
/** In the channel, but no update leads to it. */
const ISLAND = '4.16.3-sample';

interface PlanJson {
  release: { version: string } | null;
  releases: Array<{ version: string; digest: string; componentCount: number; channel: string | null; components: Array<{ name: string; image: string }> }>;
  channels: Array<{ name: string; arch: string; mode: string; minVersion: string; maxVersion: string; versions: string[] }>;
  blocked: Array<{ requestedAs: string; pattern: string; patternOrigin: string }>;
  images: Array<{ name: string; origin: string }>;
  blobs: Array<{ digest: string; size: number }>;
  totals: { uniqueBytes: number; bytesWithRepeats: number };
}

let work: string;
let registry: RunningRegistry;
let graphServer: http.Server;
let graphUrl: string;
let conf: string;
let authfile: string;
const samples: SampleRelease[] = [];
const graphRequests: string[] = [];

before(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-channel-'));
  registry = await startDockerRegistry();
  // Z-streams of one seed: a fifth of the components is rebuilt in each, the rest is shared byte for byte.
  for (const version of VERSIONS) samples.push(await generateSampleRelease(path.join(work, version), { version, changedShare: 0.2, extraImages: 1 }));
  for (const s of samples) await pushLayout(s.dir, registry.url, { concurrency: 8 });
  const nodes = [
    ...samples.map((s) => ({ version: s.params.version, payload: `${RELEASE_REPOSITORY}@${s.releaseDigest}`, metadata: { 'io.openshift.upgrades.graph.release.channels': 'stable-4.16' } })),
    { version: ISLAND, payload: `${RELEASE_REPOSITORY}@sha256:${'e'.repeat(64)}`, metadata: {} },
  ];
  // Listed newest first, as the update service often does; edges are indexes into this list.
  const listed = [...nodes].reverse();
  const at = (v: string) => listed.findIndex((n) => n.version === v);
  const graph = { nodes: listed, edges: [[at(VERSIONS[0]), at(VERSIONS[1])], [at(VERSIONS[1]), at(VERSIONS[2])]], conditionalEdges: [] };
  graphServer = http.createServer((req, res) => {
    graphRequests.push(req.url ?? '');
    const url = new URL(req.url ?? '/', 'http://graph');
    if (url.pathname !== '/api/upgrades_info/v1/graph' || req.headers.accept !== 'application/json') return void res.writeHead(404).end();
    if (url.searchParams.get('channel') !== 'stable-4.16' || url.searchParams.get('arch') !== 'amd64') {
      return void res.writeHead(400, { 'Content-Type': 'application/json' }).end('{"kind":"invalid_params","value":"channel not found"}');
    }
    res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(graph));
  });
  await new Promise<void>((resolve) => graphServer.listen(0, '127.0.0.1', resolve));
  graphUrl = `http://127.0.0.1:${(graphServer.address() as AddressInfo).port}/api/upgrades_info/v1/graph`;
  conf = path.join(work, 'registries.conf');
  await writeFile(conf, ['quay.io', 'registry.example.com'].map((p) => `[[registry]]\nprefix = "${p}"\nlocation = "${registry.host}"\ninsecure = true\n`).join('\n'));
  authfile = path.join(work, 'auth.json');
  await writeFile(authfile, '{"auths":{}}');
});

after(async () => {
  if (graphServer) await new Promise<void>((resolve) => graphServer.close(() => resolve()));
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

const source = () => ['--registries-conf', conf, '--authfile', authfile];
const plan = async (...args: string[]): Promise<PlanJson> => {
  const result = await runCli(['bundle', 'plan', ...source(), '--json', ...args]);
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout) as PlanJson;
};

describe('releases by channel', () => {
  test('plan of a range lists every release on the update path, each with its components, blobs shared once', async () => {
    const range = await plan('--channel', 'stable-4.16', '--min-version', VERSIONS[0], '--max-version', VERSIONS[2], '--graph-url', graphUrl);
    assert.deepEqual(range.channels, [{ name: 'stable-4.16', arch: 'amd64', graphUrl, mode: 'shortest-path', minVersion: VERSIONS[0], maxVersion: VERSIONS[2], versions: [...VERSIONS] }]);
    assert.deepEqual(range.releases.map((r) => [r.version, r.digest, r.componentCount, r.channel]), samples.map((s) => [s.params.version, s.releaseDigest, s.components.length, 'stable-4.16']));
    for (const [i, r] of range.releases.entries()) assert.deepEqual(r.components.map((c) => [c.name, c.image]), samples[i]!.components.map((c) => [c.name, c.reference]));
    assert.equal(range.release?.version, VERSIONS[2], 'the single release field is the newest');
    const components = new Set(samples.flatMap((s) => s.components.map((c) => c.reference)));
    assert.ok(components.size < 3 * samples[0]!.components.length, 'z-streams share most components');
    assert.equal(range.images.length, 3 + components.size);
    assert.ok(graphRequests.includes(`/api/upgrades_info/v1/graph?channel=stable-4.16&arch=amd64`));

    // The union of the releases planned one by one, each blob once.
    const singles = await Promise.all(samples.map((s) => plan('--release', `${RELEASE_REPOSITORY}@${s.releaseDigest}`)));
    const union = new Map(singles.flatMap((p) => p.blobs.map((b) => [b.digest, b.size] as const)));
    assert.deepEqual(range.blobs.map((b) => b.digest).sort(), [...union.keys()].sort());
    assert.equal(range.totals.uniqueBytes, [...union.values()].reduce((a, b) => a + b, 0));
    assert.ok(range.totals.uniqueBytes < singles.reduce((n, p) => n + p.totals.uniqueBytes, 0));
  });

  test('the human plan shows the channel and the path A → … → B', async () => {
    const result = await runCli(['bundle', 'plan', ...source(), '--channel', 'stable-4.16', '--min-version', VERSIONS[0], '--max-version', VERSIONS[2], '--graph-url', graphUrl]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^Channel: +stable-4\.16 \(arch amd64\): shortest update path 4\.16\.0-sample → 4\.16\.2-sample$/m);
    assert.match(result.stdout, /^ +4\.16\.0-sample → 4\.16\.1-sample → 4\.16\.2-sample$/m);
    assert.equal(result.stdout.match(/^Release: /gm)?.length, 3);
  });

  test('an unknown channel, a version outside it, no path and an unreachable service are refused by name', async () => {
    const cases: Array<[string[], number, RegExp]> = [
      [['--channel', 'stable-9.99', '--version', VERSIONS[0]], 2, /does not know channel "stable-9\.99" for arch amd64 \(HTTP 400/],
      [['--channel', 'stable-4.16', '--version', '4.16.7'], 2, /version 4\.16\.7 is not in channel stable-4\.16 \(arch amd64\); the channel has 4 releases/],
      [['--channel', 'stable-4.16', '--min-version', VERSIONS[2], '--max-version', ISLAND], 2, /no update path from 4\.16\.2-sample to 4\.16\.3-sample in channel stable-4\.16/],
      [['--channel', 'stable-4.16', '--version', '4.16.x'], 2, /--version "4\.16\.x" is not a release version/],
      [['--version', VERSIONS[0]], 2, /--version needs --channel NAME/],
    ];
    for (const [args, code, message] of cases) {
      const result = await runCli(['bundle', 'plan', ...source(), '--graph-url', graphUrl, ...args]);
      assertNoInternalError(result, args.join(' '));
      assert.equal(result.code, code, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, message);
    }
    const stray = await runCli(['bundle', 'create', ...source(), '--release', `${RELEASE_REPOSITORY}@${samples[0]!.releaseDigest}`, '--output', path.join(work, 'stray.tar'), '--pool', 'worker']);
    assert.equal(stray.code, 2, stray.stderr);
    assert.match(stray.stderr, /--pool, --mirror-host and --name go with --manifests DIR/);
    // A free port: nothing listens there.
    const closed = `http://127.0.0.1:${await freePort()}/api/upgrades_info/v1/graph`;
    const unreachable = await runCli(['bundle', 'plan', ...source(), '--graph-url', closed, '--channel', 'stable-4.16']);
    assert.equal(unreachable.code, 1, unreachable.stderr);
    assert.match(unreachable.stderr, /cannot reach the update service at http:\/\/127\.0\.0\.1:\d+\/api\/upgrades_info\/v1\/graph: ECONNREFUSED/);
  });

  test('an ImageSetConfiguration chooses the releases, adds images and blocks matching ones', async () => {
    const blockedComponent = samples[1]!.components.find((c) => !samples[0]!.components.some((o) => o.digest === c.digest))!;
    const isc = path.join(work, 'imageset-config.yaml');
    await writeFile(isc, [
      'kind: ImageSetConfiguration',
      'apiVersion: mirror.openshift.io/v2alpha1',
      'mirror:',
      '  platform:',
      '    architectures: [amd64]',
      '    channels:',
      '      - name: stable-4.16',
      `        minVersion: ${VERSIONS[0]}`,
      `        maxVersion: ${VERSIONS[1]}`,
      '        type: ocp',
      '  additionalImages:',
      '    - name: registry.example.com/sample/tools:1.0',
      '  blockedImages:',
      `    - name: "${blockedComponent.digest.slice('sha256:'.length, 20)}"`,
      '',
    ].join('\n'));
    // The endpoint from oc-mirror's environment variable this time.
    const run = await runCli(['bundle', 'plan', ...source(), '--json', '--config', isc], { env: { UPDATE_URL_OVERRIDE: graphUrl } });
    assert.equal(run.code, 0, run.stderr);
    const result = JSON.parse(run.stdout) as PlanJson;
    assert.deepEqual(result.channels.map((c) => [c.mode, c.versions]), [['range', [VERSIONS[0], VERSIONS[1]]]]);
    assert.deepEqual(result.blocked.map((b) => [b.requestedAs, b.patternOrigin]), [[blockedComponent.reference, `${isc}:14`]]);
    assert.ok(!result.images.some((i) => i.name === blockedComponent.reference));
    assert.equal(result.releases[1]!.components.length, result.releases[1]!.componentCount - 1);
    assert.ok(result.images.some((i) => i.origin === 'extra'));

    await writeFile(isc, `kind: ImageSetConfiguration\napiVersion: mirror.openshift.io/v1alpha2\nmirror:\n  operators:\n    - catalog: registry.redhat.io/redhat/redhat-operator-index:v4.16\n`);
    const refused = await runCli(['bundle', 'plan', ...source(), '--config', isc]);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /imageset-config\.yaml:4: mirror\.operators is not supported yet/);
  });

  test('create bundles a two-release range once per blob, lists each release, and writes the cluster manifests', async () => {
    const output = path.join(work, 'media', 'ocp-range.tar');
    const manifestsDir = path.join(work, 'manifests');
    const result = await runCli([
      'bundle', 'create', ...source(), '--quiet', '--output', output,
      '--channel', 'stable-4.16', '--min-version', VERSIONS[0], '--max-version', VERSIONS[1], '--graph-url', graphUrl,
      '--manifests', manifestsDir, '--pool', 'worker', '--mirror-host', 'mirror.example.com:5000',
    ], { timeoutMs: 120_000 });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /cluster manifests for .*ocp-range\.tar written to .*manifests:/);

    const bundle = await openBundle(output);
    await bundle.close();
    const releases = bundle.manifest.releases ?? [];
    assert.deepEqual(releases.map((r) => [r.version, r.digest, r.channel, r.components.length]), samples.slice(0, 2).map((s) => [s.params.version, s.releaseDigest, 'stable-4.16', s.components.length]));
    assert.equal(bundle.manifest.release?.version, VERSIONS[1]);
    const digests = bundle.manifest.blobs.map((b) => b.digest);
    assert.equal(new Set(digests).size, digests.length);
    for (const r of releases) for (const c of r.components) assert.ok(bundle.manifest.images.some((i) => i.name === c.image), `${c.image} of ${r.version} is an image of the bundle`);

    const files = (await readdir(manifestsDir)).sort();
    assert.deepEqual(files, ['pin-preload-ocp-range-worker.pinnedimageset.yaml', 'pin-preload-ocp-range.imagedigestmirrorset.yaml']);
    const set = parse(await readFile(path.join(manifestsDir, files[0]!), 'utf8')) as { metadata: { labels: Record<string, string> }; spec: { pinnedImages: Array<{ name: string }> } };
    assert.deepEqual(set.metadata.labels, { 'machineconfiguration.openshift.io/role': 'worker' });
    assert.deepEqual(set.spec.pinnedImages.map((p) => p.name), bundle.manifest.images.map((i) => i.name).sort());
    assert.ok(set.spec.pinnedImages.every((p) => pinnedNameProblem(p.name) === undefined));
    const idms = parse(await readFile(path.join(manifestsDir, files[1]!), 'utf8')) as { spec: { imageDigestMirrors: Array<{ source: string; mirrors: string[] }> } };
    assert.deepEqual(idms.spec.imageDigestMirrors, [
      { source: 'quay.io/openshift-release-dev/ocp-release', mirrors: ['mirror.example.com:5000/openshift-release-dev/ocp-release'] },
      { source: 'quay.io/openshift-release-dev/ocp-v4.0-art-dev', mirrors: ['mirror.example.com:5000/openshift-release-dev/ocp-v4.0-art-dev'] },
    ]);

    // The command on its own, as JSON; the payloads were resolved from digests, so no tag mirror set.
    const again = await runCli(['bundle', 'manifests', output, '--output', path.join(work, 'manifests-2'), '--json']);
    assert.equal(again.code, 0, again.stderr);
    const summary = JSON.parse(again.stdout) as { pools: string[]; pinnedImages: number; objects: Array<{ kind: string; name: string; entries: number }>; unexpressible: unknown[] };
    assert.deepEqual(summary.pools, ['master', 'worker']);
    assert.deepEqual(summary.objects.map((o) => [o.kind, o.name, o.entries]), [
      ['PinnedImageSet', 'pin-preload-ocp-range-master', bundle.manifest.images.length],
      ['PinnedImageSet', 'pin-preload-ocp-range-worker', bundle.manifest.images.length],
    ]);
    assert.deepEqual(summary.unexpressible, []);

    const verify = await runCli(['bundle', 'verify', output]);
    assert.equal(verify.code, 0, verify.stderr);
    const inspect = await runCli(['bundle', 'inspect', output]);
    assert.equal(inspect.code, 0, inspect.stderr);
    assert.match(inspect.stdout, /^Release: +4\.16\.0-sample \(.*\), channel stable-4\.16, 12 components\nRelease: +4\.16\.1-sample /m);
  });
});
