// Fault suite for the node side: a full disk during `import`, kill -9 at random points of `preload` into a
// real containerd, and many registry clients hammering `serve` while a new bundle is imported and registered.
// The rule: a clear error (or the pre-flight refusal) and nothing that looks complete; re-runs converge to
// the same pinned file and status; the mirror answers every request with success or a spec error.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, statfs, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import TOML from '@iarna/toml';
import { openBundle } from '../../src/bundle/reader.js';
import { CriImageService } from '../../src/cri/image-service.js';
import type { StatusJson } from '../../src/node/status.js';
import { generateSampleRelease, pushLayout, type SampleRelease } from '../../src/sample/index.js';
import { listSealFiles } from '../../src/node/bundle-dir.js';
import { containerd17Binary } from '../../src/cri/private-containerd.js';
import { ContainerdImages, PINNED_LABEL, PINNED_VALUE } from '../../src/cri/containerd-images.js';
import { findBundlesInDirectory } from '../../src/mirror/serve.js';
import { openStateDatabase } from '../../src/state/database.js';
import { NodeState, type ImageRecord } from '../../src/state/node-state.js';
import { KILL_AT_ENV, STOP_AT_ENV } from '../../src/util/kill-point.js';
import { assertNoInternalError, faultSeed, killRounds, runCli, seededRandom, startCli } from '../support/cli.js';
import { startContainerd, type RunningContainerd } from '../support/containerd.js';
import { startDockerRegistry } from '../support/docker-registry.js';
import { freePort, waitFor } from '../support/ports.js';

const run = promisify(execFile);

let work: string;
let sample: SampleRelease;
/**
 * Bundle A: a release with big (8 MiB) base layers and an extra image, so copies take long enough to
 * fill a disk under them; B: another extra image (imported later); C: a small release for preload rounds.
 */
const media = { a: '', b: '', c: '' };
let containerd: RunningContainerd;
let cri: CriImageService;
let configFile: string;
const node = { bundles: '', state: '', pinned: '', certs: '', listen: '' };

before(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-node-faults-'));
  const registry = await startDockerRegistry();
  try {
    sample = await generateSampleRelease(path.join(work, 'sample'), { baseLayerSize: 8 * 1024 * 1024, compressionLevel: 0 });
    await pushLayout(sample.dir, registry.url, { concurrency: 8 });
    const conf = path.join(work, 'registries.conf');
    await writeFile(conf, ['quay.io', 'registry.example.com'].map((p) => `[[registry]]\nprefix = "${p}"\nlocation = "${registry.host}"\ninsecure = true\n`).join('\n'));
    const authfile = path.join(work, 'auth.json');
    await writeFile(authfile, '{"auths":{}}');
    media.a = path.join(work, 'media', 'a', 'release.tar');
    media.b = path.join(work, 'media', 'b', 'extras.tar');
    const source = ['--registries-conf', conf, '--authfile', authfile, '--quiet'];
    const [a, b] = await Promise.all([
      runCli(['bundle', 'create', ...source, '--release', sample.releaseReference, '--image', sample.extraImages[0]!.reference, '--output', media.a]),
      runCli(['bundle', 'create', ...source, '--image', sample.extraImages[1]!.reference, '--output', media.b]),
    ]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    // A small release of its own (another version) for the preload rounds: pulls of seconds, not tens.
    const small = await generateSampleRelease(path.join(work, 'small'), { version: '4.16.1-small', extraImages: 0 });
    await pushLayout(small.dir, registry.url, { concurrency: 8 });
    media.c = path.join(work, 'media', 'c', 'small.tar');
    const c = await runCli(['bundle', 'create', ...source, '--release', small.releaseReference, '--output', media.c]);
    assert.equal(c.code, 0, c.stderr);
  } finally {
    await registry.stop(); // the node is offline from here on
  }

  Object.assign(node, {
    bundles: path.join(work, 'node', 'bundles'),
    state: path.join(work, 'node', 'state.db'),
    pinned: path.join(work, 'node', 'crio.conf.d', '50-pinned-images'),
    certs: path.join(work, 'node', 'certs.d'),
    listen: `127.0.0.1:${await freePort()}`,
  });
  await mkdir(node.certs, { recursive: true });
  containerd = await startContainerd({ registryHostsDir: node.certs });
  cri = await CriImageService.connect(containerd.endpoint);
  configFile = path.join(work, 'node', 'config.toml');
  await writeFile(
    configFile,
    TOML.stringify({
      paths: { bundles: node.bundles, state: node.state },
      mirror: { listen: node.listen },
      runtime: {
        kind: 'containerd',
        endpoint: containerd.endpoint,
        reload: [],
        hosts_dir: node.certs,
        pinned_images_file: node.pinned,
        registries_dropin: path.join(work, 'node', 'registries.conf.d', '50-pin-preload.conf'),
        registries_conf: path.join(work, 'node', 'registries.conf'),
      },
      storage: { reserve: '1MiB' },
      pull: { concurrency: 3, retries: 3, timeout: '60s' },
    } as TOML.JsonMap),
  );
});

after(async () => {
  cri?.close();
  await containerd?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

/** A tmpfs at a fresh directory, unmounted (lazily if busy) and removed by the test's cleanup. */
async function tmpfs(t: { after: (fn: () => Promise<void>) => void }, name: string, bytes: number): Promise<string> {
  const dir = path.join(work, name);
  await mkdir(dir, { recursive: true });
  await run('mount', ['-t', 'tmpfs', '-o', `size=${Math.ceil(bytes / 4096) * 4096}`, 'tmpfs', dir]);
  t.after(async () => {
    await run('umount', [dir]).catch(() => run('umount', ['-l', dir]));
    await rm(dir, { recursive: true, force: true });
  });
  return dir;
}

async function bundleBytes(tar: string): Promise<number> {
  const opened = await openBundle(tar);
  try {
    return opened.seal?.totalSize ?? 0;
  } finally {
    await opened.close();
  }
}

/** What may stay in a bundles dir after a failed import: nothing that names a bundle, no temp dirs. */
async function assertNoBundleLeft(dir: string, what: string): Promise<void> {
  const left = (await readdir(dir)).filter((n) => n !== 'lost+found' && n !== 'filler');
  assert.deepEqual(left, [], `${what}: left behind in ${dir}`);
}

describe('node faults', { concurrency: false }, () => {
  test('import into a filesystem too small for the bundle is refused up front and copies nothing', async (t) => {
    const dir = await tmpfs(t, 'tiny-bundles', 1024 * 1024);
    const result = await runCli(['import', '--config', configFile, '--bundles', dir, '--state', path.join(work, 'tiny.db'), media.a]);
    assertNoInternalError(result, 'import on a tiny disk');
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, /not enough space in .* for bundle release\.tar: needs .* available/);
    await assertNoBundleLeft(dir, 'refused import');
  });

  test('the disk filling up during import fails with IMPORT_NO_SPACE, leaves no bundle behind, and a retry with room imports it', async (t) => {
    const size = await bundleBytes(media.a);
    // Room for the pre-flight (bundle + 64 MiB margin); the import stops itself (SIGSTOP) at its first copy,
    // the filler takes the rest, and it continues (SIGCONT): the disk fills under the copy every time.
    const dir = await tmpfs(t, 'filling-bundles', size + 80 * 1024 * 1024);
    const state = path.join(work, 'filling.db');
    const importing = startCli(['import', '--config', configFile, '--bundles', dir, '--state', state, media.a], { env: { [STOP_AT_ENV]: 'import:copying' } });
    try {
      await waitFor('the import to stop at its first copy', async () => (await readFile(`/proc/${importing.child.pid}/stat`, 'utf8').catch(() => '')).split(' ')[2] === 'T');
      await fillDisk(path.join(dir, 'filler'));
    } finally {
      importing.child.kill('SIGCONT');
    }
    const result = await importing.done;
    assertNoInternalError(result, 'import on a filling disk');
    assert.equal(result.code, 1, result.stderr);
    // IMPORT_NO_SPACE's message (the CLI prints the message, not the code).
    assert.match(result.stderr, /^pin-preload: error: .* filled up while importing bundle release\.tar \(ENOSPC\); the import did not complete/m);
    await assertNoBundleLeft(dir, 'import on a full disk');
    await rm(path.join(dir, 'filler'), { force: true });
    const retry = await runCli(['import', '--config', configFile, '--bundles', dir, '--state', state, media.a]);
    assert.equal(retry.code, 0, retry.stderr);
    assert.deepEqual((await readdir(dir)).sort(), ['release.tar', 'release.tar.seal.json']);
  });

  test('an import interrupted (SIGINT) while it copies ends with IMPORT_CANCELLED and leaves no bundle behind', async () => {
    const dir = path.join(work, 'cancelled-bundles');
    const importing = startCli(['import', '--config', configFile, '--bundles', dir, '--state', path.join(work, 'cancelled.db'), media.a, '--json'], { env: { [STOP_AT_ENV]: 'import:copying' } });
    try {
      await waitFor('the import to stop at its first copy', async () => (await readFile(`/proc/${importing.child.pid}/stat`, 'utf8').catch(() => '')).split(' ')[2] === 'T');
      importing.child.kill('SIGINT'); // delivered when it continues
    } finally {
      importing.child.kill('SIGCONT');
    }
    const result = await importing.done;
    assertNoInternalError(result, 'an interrupted import');
    assert.notEqual(result.code, 0, result.stderr);
    const { error } = JSON.parse(result.stdout) as { error: { code: string; message: string } };
    assert.equal(error.code, 'IMPORT_CANCELLED');
    assert.match(error.message, /the import of bundle release\.tar was cancelled; nothing was imported/);
    await assertNoBundleLeft(dir, 'interrupted import');
  });

  test('kill -9 of import at every step of putting the bundle in place: serve and preload see no partial bundle, and the next import removes the leftovers', async () => {
    const points = ['import:verified', 'import:claimed', 'import:after-volume-1', 'import:before-seal', 'import:after-seal', 'import:placed'];
    for (const point of points) {
      const dir = path.join(work, 'kill-import', point.replace(':', '-'));
      const flags = ['--bundles', dir, '--state', path.join(dir, '..', `${point.replace(':', '-')}.db`)];
      const killed = await runCli(['import', '--config', configFile, ...flags, media.c], { env: { [KILL_AT_ENV]: point } });
      assert.equal(killed.signal, 'SIGKILL', `${point}: the import never reached the point:\n${killed.stderr}`);
      // While it is dead: serve's and preload's views of the dir hold complete bundles only.
      const served = await findBundlesInDirectory(dir);
      const sealed = await listSealFiles(dir);
      assert.deepEqual(served, sealed, `${point}: serve would take files that are not a sealed bundle: ${served.join(' ')}`);
      for (const seal of sealed) await (await openBundle(seal)).close();
      // The next import removes what the dead one left: of another bundle (every other point), or of the same.
      const other = points.indexOf(point) % 2 === 0;
      const next = await runCli(['import', '--config', configFile, ...flags, other ? media.b : media.c]);
      assert.equal(next.code, 0, `${point}: ${next.stderr}`);
      const expected = [...(sealed.length > 0 || !other ? ['small.tar', 'small.tar.seal.json'] : []), ...(other ? ['extras.tar', 'extras.tar.seal.json'] : [])];
      assert.deepEqual((await readdir(dir)).sort(), expected.sort(), `${point}: leftovers after the next import`);
    }
  });

  test('serve answers 16 concurrent clients with success or spec errors, never a 5xx or a hang, while a new bundle is imported and registered', async () => {
    const first = await runCli(['import', '--config', configFile, media.a]);
    assertNoInternalError(first, 'import');
    assert.equal(first.code, 0, first.stderr);
    const port = await freePort();
    const serving = startCli(['serve', '--config', configFile, '--listen', `127.0.0.1:${port}`, '--no-access-log'], { timeoutMs: 120_000 });
    try {
      const base = `http://127.0.0.1:${port}`;
      await waitFor('the mirror', async () => (await fetch(`${base}/v2/`)).status === 200);
      const extraB = sample.extraImages[1]!;
      const targets = [...sample.components.map((c) => c.reference), ...sample.extraImages.map((e) => e.reference)];
      const stats: ClientStats = { requests: 0, byStatus: new Map<number, number>(), bad: [] };
      let importing = true;
      const client = async (id: number) => {
        const random = seededRandom(id + 1);
        while (importing || stats.requests < 400) {
          const ref = targets[Math.floor(random() * targets.length)]!;
          // Bundle A was registered before the clients started: its manifests must always be found.
          await oneClientRound(base, ref, random, stats, ref === extraB.reference);
        }
      };
      const clients = Array.from({ length: 16 }, (_, i) => client(i));
      const imported = await runCli(['import', '--config', configFile, media.b]);
      await new Promise((r) => setTimeout(r, 500)); // keep hammering a little after registration
      importing = false;
      await Promise.all(clients);
      assertNoInternalError(imported, 'import during serve');
      assert.equal(imported.code, 0, imported.stderr);
      assert.deepEqual(stats.bad, [], `bad answers:\n${stats.bad.slice(0, 20).join('\n')}`);
      assert.ok(stats.requests >= 400, `${stats.requests} requests`);
      // The newly registered bundle is served by the running mirror without a restart.
      const b = await fetchManifest(base, extraB.reference);
      assert.equal(b.status, 200, `bundle B's image ${extraB.reference} after its import`);
      process.stderr.write(`# mirror under import: ${stats.requests} requests, statuses ${JSON.stringify(Object.fromEntries(stats.byStatus))}\n`);
    } finally {
      serving.child.kill('SIGTERM');
      const stopped = await serving.done;
      assertNoInternalError(stopped, 'serve');
    }
  });

  test('kill -9 of preload and of run (at named points and at random times): at the moment of the kill the pinned file and the state name only images the runtime has, and every re-run converges to the same pinned file and status', async (t) => {
    // Its own node: containerd 1.7 when fetched (it reports pins; 1.6 never does), its own bundle dir, state,
    // pinned file and mirror port, and a reload command so the reload point is reached.
    const binary = await containerd17Binary();
    const own = path.join(work, 'kill-node');
    const certs = path.join(own, 'certs.d');
    await mkdir(certs, { recursive: true });
    const runtime = await startContainerd({ registryHostsDir: certs, ...(binary ? { binary } : {}) });
    const runtimeCri = await CriImageService.connect(runtime.endpoint);
    const labels = await ContainerdImages.connect(runtime.endpoint);
    t.after(async () => {
      labels.close();
      runtimeCri.close();
      await runtime.stop();
    });
    const pinnedFile = path.join(own, 'crio.conf.d', '50-pinned-images');
    const state = path.join(own, 'state.db');
    const config = path.join(own, 'config.toml');
    await writeFile(config, TOML.stringify({
      paths: { bundles: path.join(own, 'bundles'), state },
      mirror: { listen: `127.0.0.1:${await freePort()}` },
      runtime: {
        kind: 'containerd', endpoint: runtime.endpoint, reload: ['true'], hosts_dir: certs, pinned_images_file: pinnedFile,
        registries_dropin: path.join(own, 'registries.conf.d', '50-pin-preload.conf'), registries_conf: path.join(own, 'registries.conf'),
      },
      storage: { reserve: '1MiB' },
      pull: { concurrency: 3, retries: 3, timeout: '60s' },
    } as TOML.JsonMap));
    const imported = await runCli(['import', '--config', config, media.c]);
    assert.equal(imported.code, 0, imported.stderr);
    const desired = await desiredImages(path.join(own, 'bundles'));
    // The state right after the import (closed, so the WAL is checkpointed): each round starts from it.
    const template = path.join(own, 'state-after-import.db');
    await run('cp', [state, template]);
    /** A node that never pinned: no images, no pinned file, the state of a fresh import. */
    const reset = async () => {
      for (const name of desired) await runtimeCri.removeImage(name).catch(() => undefined);
      await rm(pinnedFile, { force: true });
      for (const suffix of ['-wal', '-shm']) await rm(state + suffix, { force: true });
      await run('cp', [template, state]);
    };
    /** The crash invariants, checked while the killed process is dead and before anything runs again. */
    const assertInvariants = async (what: string) => {
      const pinnedNames = (await readFile(pinnedFile, 'utf8').then((text) => (TOML.parse(text) as { crio: { image: { pinned_images: string[] } } }).crio.image.pinned_images, () => [] as string[]));
      const lacking = async (names: readonly string[]) => (await Promise.all(names.map(async (n) => ((await runtimeCri.imageStatus(n)) ? undefined : n)))).filter((n) => n !== undefined);
      assert.deepEqual(await lacking(pinnedNames), [], `${what}: the pinned file names images the runtime lacks`);
      // The state database as `status` would read it (in-process: no CLI start-up per round).
      const db = openStateDatabase(state);
      let recorded: ImageRecord[];
      try {
        recorded = new NodeState(db).images();
      } finally {
        db.close();
      }
      assert.deepEqual(await lacking(recorded.filter((i) => i.state === 'pinned').map((i) => i.name)), [], `${what}: the state says pinned for images the runtime lacks`);
      assert.deepEqual(await lacking(recorded.filter((i) => i.state === 'present').map((i) => i.name)), [], `${what}: the state says present for images the runtime lacks`);
      // containerd's image records that carry the pinned label (1.7): each names an image the CRI has.
      const records = await labels.recordsFor(desired.map((n) => n.slice(n.lastIndexOf('@') + 1)));
      const labelled = records.filter((r) => r.labels[PINNED_LABEL] === PINNED_VALUE).map((r) => r.name);
      assert.deepEqual(await lacking(labelled), [], `${what}: pinned labels on images the runtime lacks`);
      const reportedPinned = (await runtimeCri.listImages()).filter((i) => i.pinned).flatMap((i) => i.repoDigests);
      assert.deepEqual(reportedPinned.filter((n) => !desired.includes(n)), [], `${what}: the runtime reports images pinned that no bundle asks for`);
    };

    const preloadArgs = ['preload', '--config', config];
    await reset();
    const cleanRun = await runCli(preloadArgs);
    assert.equal(cleanRun.code, 0, cleanRun.stderr);
    const cleanPinned = await readFile(pinnedFile, 'utf8');
    const cleanStatus = stableStatus(await status([], config));
    assert.deepEqual(cleanStatus.images.map((i) => i.name), desired);
    const pinnedByRuntime = cleanStatus.images.filter((i) => i.state === 'pinned').length;
    // containerd 1.7 pins (by label, taken in at once from 1.7.10); 1.6 cannot: the status says which.
    assert.equal(pinnedByRuntime, binary ? desired.length : 0, `images reported pinned on containerd ${binary ? '1.7' : '1.6'}`);
    /** After the check, a plain re-run converges to exactly the clean run's pinned file and status. */
    const assertConverges = async (what: string) => {
      const rerun = await runCli(preloadArgs);
      assertNoInternalError(rerun, `${what} re-run`);
      assert.equal(rerun.code, 0, `${what}: the re-run failed:\n${rerun.stderr}`);
      assert.equal(await readFile(pinnedFile, 'utf8'), cleanPinned, `${what}: pinned file`);
      assert.deepEqual(stableStatus(await status([], config)), cleanStatus, `${what}: status`);
    };

    // Named points: after the first and the last pull, after the pinned file, after the reload, and (where the
    // runtime pins by label) after the first label.
    const points = ['preload:after-pull-1', `preload:after-pull-${desired.length}`, 'preload:after-pinned-file', 'preload:after-reload', ...(pinnedByRuntime > 0 ? ['preload:after-label-1'] : [])];
    // The service (run) syncs through the same code: every other point is taken by it instead of preload.
    for (const [i, point] of points.entries()) {
      const command = i % 2 === 0 ? preloadArgs : ['run', '--config', config];
      await reset();
      const killed = await runCli(command, { env: { [KILL_AT_ENV]: point } });
      assert.equal(killed.signal, 'SIGKILL', `${point}: ${command[0]} never reached it:\n${killed.stderr}`);
      await assertInvariants(`${command[0]} killed at ${point}`);
      await assertConverges(`${command[0]} killed at ${point}`);
    }
    // Random times, alternating preload and the service (run), which serves the mirror and syncs at start.
    const seed = faultSeed();
    const random = seededRandom(seed);
    const killedAt: string[] = [];
    for (let round = 0; round < Math.ceil(killRounds() / 2); round++) {
      const command = round % 2 === 0 ? preloadArgs : ['run', '--config', config];
      await reset();
      const killAfterMs = Math.floor(random() * cleanRun.ms * 1.2);
      const first = startCli([...command, ...(command === preloadArgs ? ['--pull-concurrency', String(1 + Math.floor(random() * 4))] : [])]);
      const timer = setTimeout(() => first.child.kill('SIGKILL'), killAfterMs);
      const killed = await first.done;
      clearTimeout(timer);
      const what = `${command[0]} round ${round} (seed ${seed}) killed at ${killAfterMs} ms`;
      assertNoInternalError(killed, what);
      killedAt.push(`${command[0]}@${killAfterMs}ms:${killed.signal ?? `exit ${killed.code}`}`);
      await assertInvariants(what);
      await assertConverges(what);
    }
    process.stderr.write(`# preload/run kill -9 rounds (containerd ${binary ? '1.7' : '1.6'}, ${pinnedByRuntime} of ${desired.length} images reported pinned by the runtime, seed ${seed}, clean run ${cleanRun.ms} ms): ${killedAt.join(' ')}\n`);
  });
});

async function desiredImages(bundles: string): Promise<string[]> {
  const names: string[] = [];
  for (const seal of (await readdir(bundles)).filter((n) => n.endsWith('.seal.json'))) {
    const opened = await openBundle(path.join(bundles, seal));
    names.push(...opened.manifest.images.map((i) => i.name));
    await opened.close();
  }
  return [...new Set(names)].sort();
}

async function status(flags: readonly string[], config = configFile): Promise<StatusJson> {
  const result = await runCli(['status', '--config', config, ...flags, '--json']);
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout) as StatusJson;
}

/** The parts of the status that must not depend on how often the sync was interrupted. */
function stableStatus(s: StatusJson) {
  return {
    converged: s.currentGeneration === s.desiredGeneration,
    conditions: s.conditions.map((c) => ({ type: c.type, status: c.status, reason: c.reason })),
    bundles: s.bundles.map((b) => ({ path: b.path, manifestDigest: b.manifestDigest, verified: b.verified })),
    images: s.images.map((i) => ({ name: i.name, state: i.state, bundle: i.bundle })),
    summary: s.summary,
  };
}

/** Longer than any answer takes on a loaded 2-core machine; reaching it means the mirror hung. */
const REQUEST_TIMEOUT_MS = 20_000;

const ACCEPT = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

function mirrorPath(reference: string, kind: 'manifests' | 'blobs', ref: string): string {
  const slash = reference.indexOf('/');
  const domain = reference.slice(0, slash);
  const repo = reference.slice(slash + 1).replace(/[@:].*$/, '');
  return `/v2/${repo}/${kind}/${ref}?ns=${domain}`;
}

async function fetchManifest(base: string, reference: string): Promise<{ status: number; body: Buffer; type: string }> {
  const digest = reference.slice(reference.indexOf('@') + 1);
  const tag = reference.includes('@') ? digest : reference.slice(reference.lastIndexOf(':') + 1);
  const res = await fetch(base + mirrorPath(reference, 'manifests', tag), { headers: { accept: ACCEPT }, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  return { status: res.status, body: Buffer.from(await res.arrayBuffer()), type: res.headers.get('content-type') ?? '' };
}

interface ClientStats {
  requests: number;
  byStatus: Map<number, number>;
  bad: string[];
}

/** One client step: a manifest (by digest or tag), then one of its blobs, whole or a range, checked. */
async function oneClientRound(base: string, reference: string, random: () => number, stats: ClientStats, mayBeMissing: boolean): Promise<void> {
  const note = (what: string, status: number, ok: boolean, detail = '') => {
    stats.requests++;
    stats.byStatus.set(status, (stats.byStatus.get(status) ?? 0) + 1);
    if (!ok) stats.bad.push(`${what} → ${status} ${detail}`);
  };
  try {
    const m = await fetchManifest(base, reference);
    note(`GET manifest ${reference}`, m.status, m.status === 200 || (m.status === 404 && mayBeMissing));
    if (m.status !== 200) return;
    let doc = JSON.parse(m.body.toString()) as { manifests?: Array<{ digest: string; platform?: { architecture: string } }>; config?: { digest: string; size: number }; layers?: Array<{ digest: string; size: number }> };
    if (doc.manifests) {
      // The bundle holds the node's platform (linux/amd64) only; other children are rightly unknown.
      const child = doc.manifests.find((d) => d.platform?.architecture === 'amd64')!;
      const c = await fetchManifest(base, `${reference.replace(/@.*$/, '')}@${child.digest}`);
      note(`GET child manifest ${child.digest}`, c.status, c.status === 200);
      if (c.status !== 200) return;
      doc = JSON.parse(c.body.toString()) as typeof doc;
    }
    const blobs = [doc.config!, ...(doc.layers ?? [])];
    const blob = blobs[Math.floor(random() * blobs.length)]!;
    const url = base + mirrorPath(reference, 'blobs', blob.digest);
    // Whole blobs up to 1 MiB (hashed); bigger ones by ranges, so 16 clients stay within the test's budget.
    if ((random() < 0.3 || blob.size > 1024 * 1024) && blob.size > 2) {
      const start = Math.floor(random() * (blob.size - 1));
      const res = await fetch(url, { headers: { range: `bytes=${start}-${start + 99}` }, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
      const body = Buffer.from(await res.arrayBuffer());
      note(`GET blob range ${blob.digest}`, res.status, res.status === 206 && body.length === Math.min(100, blob.size - start));
    } else if (random() < 0.2) {
      const res = await fetch(url, { method: 'HEAD', signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
      note(`HEAD blob ${blob.digest}`, res.status, res.status === 200 && Number(res.headers.get('content-length')) === blob.size);
    } else {
      const res = await fetch(url, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
      const body = Buffer.from(await res.arrayBuffer());
      const actual = `sha256:${createHash('sha256').update(body).digest('hex')}`;
      note(`GET blob ${blob.digest}`, res.status, res.status === 200 && actual === blob.digest, actual);
    }
  } catch (err) {
    note(`request for ${reference}`, 0, false, (err as Error).message);
  }
}

/** Takes every free byte of the filesystem at once (fallocate; tmpfs allocates the pages immediately). */
async function fillDisk(file: string): Promise<void> {
  const { bavail, bsize } = await statfs(path.dirname(file));
  await run('fallocate', ['-l', String(bavail * bsize), file]).catch(() => undefined);
}

