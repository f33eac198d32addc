// The node side end to end: a bundle made by `bundle create` from the generated sample release, imported and
// pre-loaded into a real containerd through CRI from the in-process mirror, with the registry gone (offline);
// once on containerd 1.6 (cannot pin) and once on 1.7 (pins through the io.cri-containerd.pinned label).

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import TOML from '@iarna/toml';
import { openBundle } from '../../src/bundle/reader.js';
import { ContainerdImages, PINNED_LABEL } from '../../src/cri/containerd-images.js';
import { CriImageService } from '../../src/cri/image-service.js';
import type { StatusJson } from '../../src/node/status.js';
import { generateSampleRelease, pushLayout } from '../../src/sample/index.js';
import { CONTAINERD_VARIANTS, startContainerdVariant, type RunningContainerd } from '../support/containerd.js';
import { startDockerRegistry } from '../support/docker-registry.js';
import { freePort, waitFor } from '../support/ports.js';
import { runCli, startCli } from '../support/cli.js';

const RELEASE = 'quay.io/openshift-release-dev/ocp-release:4.16.0-sample-x86_64';
const EXTRA_IMAGES = ['registry.example.com/sample/tools:1.0', 'registry.example.com/sample/debug:2.1'];



let work: string;
let bundleSeal: string;
let laterSeal: string;
let desired: string[];
let laterImages: string[];

async function imageNames(seal: string): Promise<string[]> {
  const opened = await openBundle(seal);
  try {
    return opened.manifest.images.map((i) => i.name).sort();
  } finally {
    await opened.close();
  }
}

const digestOf = (name: string) => name.slice(name.lastIndexOf('@') + 1);

// Bastion side, once for both runtimes: the sample release in a real registry, bundled by the CLI.
before(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-node-'));
  const registry = await startDockerRegistry();
  try {
    const sample = await generateSampleRelease(path.join(work, 'sample'));
    await pushLayout(sample.dir, registry.url, { concurrency: 8 });
    const registriesConf = path.join(work, 'bastion-registries.conf');
    await writeFile(registriesConf, ['quay.io', 'registry.example.com'].map((p) => `[[registry]]\nprefix = "${p}"\nlocation = "${registry.host}"\ninsecure = true\n`).join('\n'));
    const authfile = path.join(work, 'auth.json');
    await writeFile(authfile, '{"auths":{}}');
    await mkdir(path.join(work, 'media'));
    // Two bundles: the release with one extra image first, a multi-arch extra image later (for `run`).
    const create = (output: string, ...selection: string[]) =>
      runCli(['bundle', 'create', ...selection, '--platform', 'linux/amd64', '--registries-conf', registriesConf, '--authfile', authfile, '--output', output]);
    const [first, later] = await Promise.all([
      create(path.join(work, 'media', 'sample.tar'), '--release', RELEASE, '--image', EXTRA_IMAGES[0]!),
      create(path.join(work, 'media', 'later.tar'), '--image', EXTRA_IMAGES[1]!),
    ]);
    for (const created of [first, later]) assert.equal(created.code, 0, `bundle create failed:\n${created.stdout}${created.stderr}`);
  } finally {
    await registry.stop(); // from here on, no registry exists: the node is offline
  }
  bundleSeal = path.join(work, 'media', 'sample.tar.seal.json');
  laterSeal = path.join(work, 'media', 'later.tar.seal.json');
  desired = await imageNames(bundleSeal);
  laterImages = await imageNames(laterSeal);
});

after(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

for (const variant of CONTAINERD_VARIANTS) {
  describe(`preload on a ${variant.name} node from a bundle`, { concurrency: false }, () => {
    let node: string;
    let containerd: RunningContainerd;
    let cri: CriImageService;
    let records: ContainerdImages;
    let configFile: string;
    const dirs = { bundles: '', certs: '', registriesD: '', reloadLog: '', state: '' };

    before(async () => {
      // Node side: a private containerd whose CRI reads hosts.toml from our certs.d.
      node = path.join(work, variant.pins ? 'node-1.7' : 'node-1.6');
      Object.assign(dirs, {
        bundles: path.join(node, 'bundles'),
        certs: path.join(node, 'certs.d'),
        registriesD: path.join(node, 'registries.conf.d'),
        reloadLog: path.join(node, 'reloads.log'),
        state: path.join(node, 'state.db'),
      });
      await mkdir(dirs.certs, { recursive: true });
      containerd = await startContainerdVariant(variant, { registryHostsDir: dirs.certs });
      cri = await CriImageService.connect(containerd.endpoint);
      records = await ContainerdImages.connect(containerd.endpoint);
      const reloadScript = path.join(node, 'reload.sh');
      await writeFile(reloadScript, `#!/bin/sh\necho reload >> ${JSON.stringify(dirs.reloadLog)}\n`, { mode: 0o755 });
      configFile = path.join(node, 'config.toml');
      await writeFile(
        configFile,
        TOML.stringify({
          paths: { bundles: dirs.bundles, state: dirs.state },
          mirror: { listen: `127.0.0.1:${await freePort()}` },
          runtime: {
            kind: 'containerd',
            endpoint: containerd.endpoint,
            reload: [reloadScript],
            hosts_dir: dirs.certs,
            registries_dropin: path.join(dirs.registriesD, '50-pin-preload.conf'),
            registries_conf: path.join(node, 'registries.conf'),
          },
          storage: { reserve: '1MiB' },
          pull: { concurrency: 2, retries: 2, timeout: '60s' },
        } as TOML.JsonMap),
      );
    });

    after(async () => {
      records?.close();
      cri?.close();
      await containerd?.stop();
    });

    async function imagesInRuntime(): Promise<Set<string>> {
      const names = new Set<string>();
      for (const image of await cri.listImages()) for (const d of image.repoDigests) names.add(d);
      return names;
    }

    /** ListImages in a stable order (containerd lists in no particular order), without the pinned flag. */
    async function listImages(): Promise<string[]> {
      return (await cri.listImages()).map((i) => `${i.id} ${[...i.repoDigests].sort().join(',')}`).sort();
    }

    async function presentOfDesired(): Promise<string[]> {
      const names = await imagesInRuntime();
      return desired.filter((d) => names.has(d));
    }

    /** containerd image records of `names` that carry the pinned label (what pin-preload writes). */
    async function labelled(names: readonly string[]): Promise<string[]> {
      return (await records.recordsFor(names.map(digestOf))).filter((r) => r.labels[PINNED_LABEL] !== undefined).map((r) => r.name);
    }

    /** What the CRI says, the only source of "pinned": ImageStatus of each image. */
    async function pinnedByCri(names: readonly string[]): Promise<boolean[]> {
      return Promise.all(names.map(async (n) => (await cri.imageStatus(n))?.pinned === true));
    }

    async function reloads(): Promise<number> {
      return existsSync(dirs.reloadLog) ? (await readFile(dirs.reloadLog, 'utf8')).split('\n').filter(Boolean).length : 0;
    }

    async function status(): Promise<StatusJson> {
      const result = await runCli(['status', '--config', configFile, '--json']);
      assert.equal(result.code, 0, result.stderr);
      return JSON.parse(result.stdout) as StatusJson;
    }

    test('refuses before any pull when the reserve exceeds the free space, recording StorageInsufficient', async () => {
      const before = await listImages();
      const result = await runCli(['preload', '--config', configFile, '--reserve', '1000TiB', bundleSeal]);
      assert.equal(result.code, 1, `${result.stdout}${result.stderr}`);
      assert.match(result.stderr, /not enough space on .* required .*\(\d+ bytes\).* available .*\(\d+ bytes\)/);
      assert.deepEqual(await listImages(), before, 'ListImages unchanged: nothing was pulled');
      assert.equal(await reloads(), 0, 'no runtime file changed, so no reload');
      const s = await status();
      const degraded = s.conditions.find((c) => c.type === 'PinnedImageSetsDegraded')!;
      assert.deepEqual([degraded.status, degraded.reason], ['True', 'StorageInsufficient']);
      assert.ok(s.storage && s.storage.requiredBytes > s.storage.availableBytes, 'required and available bytes recorded');
      assert.equal(s.lastFailedGeneration, 1);
      assert.equal(s.currentGeneration, 0);
      assert.ok((await readdir(dirs.bundles)).includes('sample.tar.seal.json'), 'the bundle was imported before the check');
    });

    test(`a preload killed with SIGKILL mid-pull is completed by the next run; ${variant.pins ? 'the pins come last and every image ends pinned' : 'nothing is pinned and status says why'}`, async () => {
      const { child, done } = startCli(['preload', '--config', configFile, '--pull-concurrency', '1']);
      let atKill: string[] = [];
      await waitFor('the first image pulled', async () => (atKill = await presentOfDesired()).length > 0, 30_000);
      child.kill('SIGKILL');
      const killed = await done;
      assert.equal(killed.signal, 'SIGKILL', `the preload was still running when killed:\n${killed.stderr}`);
      assert.ok(atKill.length < desired.length, 'killed before every image was present');
      assert.deepEqual(await labelled(desired), [], 'no pin while images are missing');
      assert.equal(await reloads(), 1, 'the mirror configuration was written and the runtime reloaded once');
      assert.ok(existsSync(path.join(dirs.certs, 'quay.io', 'hosts.toml')));

      // The re-run: whenever any record carries the pinned label, every image must already be in the runtime.
      const rerun = startCli(['preload', '--config', configFile]);
      let sawPinnedEarly = false;
      let finished = false;
      void rerun.done.then(() => (finished = true));
      while (!finished) {
        if ((await labelled(desired)).length > 0 && (await presentOfDesired()).length < desired.length) sawPinnedEarly = true;
        await new Promise((r) => setTimeout(r, 10));
      }
      const result = await rerun.done;
      assert.equal(result.code, 0, `${result.stdout}${result.stderr}`);
      assert.equal(sawPinnedEarly, false, 'a pin appeared before every image was present');
      assert.deepEqual(await presentOfDesired(), desired, 'every image of the bundle is in containerd');
      assert.equal(await reloads(), 1, 'pinning on containerd needs no reload (and no CRI-O file)');

      const s = await status();
      assert.equal(s.currentGeneration, s.desiredGeneration);
      assert.deepEqual(s.conditions.map((c) => [c.status, c.reason]), [['False', 'AsExpected'], ['False', 'AsExpected']]);
      assert.deepEqual(s.images.map((i) => i.name), desired);
      assert.match(s.runtime.reported, new RegExp(`^containerd ${variant.version.source.slice(1)}`));
      if (variant.pins) {
        assert.deepEqual(await pinnedByCri(desired), desired.map(() => true), 'CRI ImageStatus reports every image pinned');
        assert.ok(s.images.every((i) => i.state === 'pinned' && i.pinnedAt !== null));
        assert.equal(s.summary.pinned, desired.length);
        assert.match(s.runtime.pinning, /^pinned by containerd 1\.7\.\S+ \(label io\.cri-containerd\.pinned=pinned\)$/);
        assert.match(result.stdout, new RegExp(`, ${desired.length} pinned in `));
        const text = await runCli(['status', '--config', configFile]);
        assert.match(text.stdout, new RegExp(`Images \\(${desired.length}: ${desired.length} pinned,`));
      } else {
        assert.deepEqual(await pinnedByCri(desired), desired.map(() => false));
        assert.deepEqual(await labelled(desired), [], 'containerd 1.6: no label is ever written');
        assert.ok(s.images.every((i) => i.state === 'present' && i.pinnedAt === null), 'recorded present, not pinned');
        assert.match(s.runtime.pinning, /^not protected: containerd 1\.6\.\S+ never reports an image pinned \(containerd pins from 1\.7\.3 on, at once from 1\.7\.10\)/);
        assert.match(result.stdout, new RegExp(`, 0 pinned, ${desired.length} not pinned in `));
        assert.match(result.stdout, /^GC protection: not protected: containerd 1\.6/m, 'preload says plainly why');
      }
      assert.equal(s.bundles.length, 1);
      assert.equal(s.bundles[0]!.verified, true);
    });

    // The sync is timed by the command itself (config, state, CRI, mirror, checks): process start-up is module
    // loading shared by every command and depends on the machine's load, so it is bounded separately.
    test('a second run pulls nothing, reloads nothing and its sync finishes in under 2 s', async () => {
      const before = await listImages();
      const attemptsBefore = (await status()).images.map((i) => i.attempts);
      const result = await runCli(['preload', '--config', configFile]);
      assert.equal(result.code, 0, result.stderr);
      const seconds = Number(/ in (\d+\.\d+) s$/m.exec(result.stdout)?.[1]);
      assert.ok(seconds < 2, `the sync took ${seconds} s (the process ${result.ms} ms)`);
      assert.ok(result.ms < 15_000, `the process took ${result.ms} ms`);
      assert.match(result.stdout, /, 0 pulled,/);
      assert.deepEqual(await listImages(), before);
      assert.deepEqual((await status()).images.map((i) => i.attempts), attemptsBefore, 'no pull attempted');
      assert.equal(await reloads(), 1, 'nothing changed, so no reload');
    });

    test('run serves the mirror, syncs at start, pre-loads a bundle imported while it runs, and stops on SIGTERM', async () => {
      const { child, done } = startCli(['run', '--config', configFile]);
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      try {
        await waitFor('the first sync of run', async () => /generation \d+: \d+ image\(s\) in place, 0 pulled/.test(stderr), 20_000);
        const generation = (await status()).desiredGeneration;
        const config = TOML.parse(await readFile(configFile, 'utf8')) as { mirror: { listen: string } };
        const res = await fetch(`http://${config.mirror.listen}/v2/`);
        assert.equal(res.status, 200, 'the mirror answers while the service runs');

        const imported = await runCli(['import', '--config', configFile, laterSeal]);
        assert.equal(imported.code, 0, imported.stderr);
        const pinnedCount = variant.pins ? desired.length + laterImages.length : 0;
        await waitFor('the sync of the new bundle', async () => new RegExp(`generation ${generation + 1}: ${desired.length + laterImages.length} image\\(s\\) in place, ${laterImages.length} pulled, ${pinnedCount} pinned`).test(stderr), 30_000);
        const all = [...desired, ...laterImages].sort();
        const inRuntime = await imagesInRuntime();
        assert.ok(all.every((name) => inRuntime.has(name)), 'the new bundle\'s images are in containerd too');
        assert.deepEqual(await pinnedByCri(laterImages), laterImages.map(() => variant.pins));
        const s = await status();
        assert.equal(s.currentGeneration, generation + 1);
        assert.equal(s.bundles.length, 2);
        // The new repository changed the registries drop-in (its host's hosts.toml already existed): one reload.
        assert.equal(await reloads(), 2);
      } finally {
        child.kill('SIGTERM');
      }
      const result = await done;
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stderr, /stopped/);
    });

    test(`a removed bundle's images are unpinned (${variant.pins ? 'label gone, ImageStatus not pinned' : 'nothing to remove'}), stay in the runtime, and status lists them with a time`, async () => {
      const before = Date.now();
      for (const file of await readdir(dirs.bundles)) if (file.startsWith('later.tar')) await rm(path.join(dirs.bundles, file));
      const result = await runCli(['preload', '--config', configFile]);
      assert.equal(result.code, 0, `${result.stdout}${result.stderr}`);
      assert.match(result.stdout, new RegExp(`, ${laterImages.length} unpinned \\(no longer bundled\\)`));

      const inRuntime = await imagesInRuntime();
      assert.ok(laterImages.every((name) => inRuntime.has(name)), 'never deleted: the kubelet\'s GC decides');
      assert.deepEqual(await labelled(laterImages), [], 'no record of them carries the label');
      // containerd's CRI takes the label change in from an event: give it a moment, bounded.
      await waitFor('ImageStatus to report them unpinned', async () => (await pinnedByCri(laterImages)).every((p) => !p), 10_000);
      assert.deepEqual(await pinnedByCri(desired), desired.map(() => variant.pins), 'the images still bundled keep their pins');

      const s = await status();
      assert.deepEqual(s.unpinned.map((u) => u.name).sort(), laterImages);
      for (const u of s.unpinned) {
        assert.equal(u.wasPinned, variant.pins);
        assert.ok(u.unpinnedAt !== null && Date.parse(u.unpinnedAt) >= before - 1000, `unpinned at ${u.unpinnedAt}`);
      }
      assert.deepEqual(s.images.map((i) => i.name), desired);
      const text = await runCli(['status', '--config', configFile]);
      assert.match(text.stdout, new RegExp(`Unpinned \\(${laterImages.length}: no longer in any bundle`));
    });
  });
}
