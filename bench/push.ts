// `node dist/bench/push.js`: `bundle push` of the ~1 GB sample bundle into a fresh docker-registry, against
// its peer (one `skopeo copy --all` per image from an OCI layout that skopeo itself wrote from the same
// images, once, before the rounds: skopeo 1.9 reads no Docker-typed image from the sample's own layout; its
// copy converts those manifests to OCI and keeps every layer's bytes) and against the
// target's ingest floor (bench/push-floor.ts: the same unique blobs PUT by a minimal parallel client), in
// rounds with the order rotated every round. Every side gets a fresh registry; medians with (min–max), and
// the CPU each side and docker-registry spent per GB (they share the cores: CPU one spends the other lacks).
// Written to bench/results/push-*.json; the table goes into docs/benchmarks.md by hand.

import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { digestHex } from '../src/oci/digest.js';
import { startDockerRegistry, type RunningRegistry } from '../test/support/docker-registry.js';
import { benchArgs } from './args.js';
import { prepareFixture, splitRepository } from './fixture.js';
import { cpuSecondsOf, mustSucceed, sh, timed } from './proc.js';
import { measure, median, spread, type Sample } from './rounds.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const FLOOR = fileURLToPath(new URL('./push-floor.js', import.meta.url));
const RESULTS_DIR = fileURLToPath(new URL('../../bench/results/', import.meta.url));
const MiB = 1024 * 1024;
const MB = 1e6;
const CONCURRENCY = 8; // bundle push's default

const USAGE = `usage: node dist/bench/push.js [flags]
  --rounds N       rounds, the order of the three sides rotated every round (default 3)
  --work DIR       work dir, kept between runs so the fixture and the bundle are reused`;

const log = (line: string) => process.stderr.write(`push: ${line}\n`);

/** A side's sample and the CPU docker-registry spent during it: the two share the machine's cores. */
type PushSample = Sample & { readonly registryCpuS: number };

/** Times `argv` against `target`, with the CPU (user + system) the registry used meanwhile. */
async function measureAgainst(target: RunningRegistry, argv: readonly string[]): Promise<PushSample> {
  const before = await cpuSecondsOf(target.pid);
  const sample = await measure(argv);
  return { ...sample, registryCpuS: (await cpuSecondsOf(target.pid)) - before };
}

async function main(): Promise<void> {
  const values = benchArgs(USAGE, { rounds: { type: 'string', default: '3' }, work: { type: 'string' } });
  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds wants a whole number ≥ 1, not "${values.rounds}"`);
  const work = values.work ?? path.join(os.tmpdir(), 'pin-preload-push-bench');
  // The ~1 GB release of bench/speed.ts.
  const f = await prepareFixture(work, { components: 60, baseLayers: 3, baseLayerSize: 48 * MiB, componentLayers: 2, componentLayerSize: 6 * MiB, compressionLevel: 1, extraImages: 4 }, log);
  const bundle = path.join(work, 'push-bundle', 'bench.tar');
  let target: RunningRegistry | undefined;
  const stopTarget = async () => {
    await target?.stop();
    target = undefined;
  };
  try {
    await mkdir(path.dirname(bundle), { recursive: true });
    mustSucceed(await timed([process.execPath, CLI, 'bundle', 'create', '--registries-conf', f.registriesConf, '--authfile', f.authfile, '--release', f.sample.releaseReference, ...f.sample.extraImages.flatMap((e) => ['--image', e.reference]), '--platform', 'all', '--output', bundle, '--quiet'], { env: { SOURCE_DATE_EPOCH: '1700000000' } }));
    const bundleBytes = (await stat(bundle)).size;
    log(`bundle: ${(bundleBytes / 1e9).toFixed(2)} GB; unique blobs ${(f.uniqueBlobBytes / 1e9).toFixed(2)} GB`);
    const skopeoLayout = path.join(work, 'skopeo-layout');
    if (!(await stat(path.join(skopeoLayout, 'index.json')).catch(() => undefined))) {
      const pulls = f.sample.images.map((image, i) => `skopeo copy -q --all --src-tls-verify=false docker://${f.registry.host}/${splitRepository(image.repository).path}@${image.digest} oci:${skopeoLayout}:image-${i}`);
      await writeFile(path.join(work, 'skopeo-layout.sh'), `set -e\n${pulls.join('\n')}\n`);
      mustSucceed(await timed(['sh', path.join(work, 'skopeo-layout.sh')]));
    }
    await f.registry.stop();
    const blobsDir = path.join(f.sample.dir, 'blobs', 'sha256');
    // Every side reads from the page cache: the push its bundle, the floor the blob files (skopeo its layout, read when written).
    await sh(['sh', '-c', `cat ${JSON.stringify(bundle)} > /dev/null && cat ${JSON.stringify(blobsDir)}/* > /dev/null`]);

    const skopeoScript = path.join(work, 'skopeo-push.sh');
    const floorList = path.join(work, 'push-floor-blobs.json');
    const fresh = async (): Promise<RunningRegistry> => {
      await stopTarget();
      const storage = path.join(work, 'target-storage');
      await rm(storage, { recursive: true, force: true });
      await sh(['sync']);
      target = await startDockerRegistry({ storageDir: storage });
      return target;
    };
    const sides: Array<{ name: string; run: () => Promise<PushSample> }> = [
      {
        name: 'bundle push',
        run: async () => {
          const t = await fresh();
          return measureAgainst(t, [process.execPath, CLI, 'bundle', 'push', bundle, '--to', t.host, '--quiet']);
        },
      },
      {
        name: 'skopeo copy ×image (--all, from the OCI layout)',
        run: async () => {
          const t = await fresh();
          const lines = f.sample.images.map((image, i) => `skopeo copy -q --all --dest-tls-verify=false oci:${skopeoLayout}:image-${i} docker://${t.host}/${splitRepository(image.repository).path}:image-${i}`);
          await writeFile(skopeoScript, `set -e\n${lines.join('\n')}\n`);
          return measureAgainst(t, ['sh', skopeoScript]);
        },
      },
      {
        name: 'ingest floor (blobs PUT in parallel)',
        run: async () => {
          const t = await fresh();
          await writeFile(floorList, JSON.stringify({ origin: t.url, blobs: f.blobs.map((b) => ({ repository: splitRepository(b.repository).path, file: path.join(blobsDir, digestHex(b.digest)), digest: b.digest, size: b.size })) }));
          return measureAgainst(t, [process.execPath, FLOOR, floorList, String(CONCURRENCY)]);
        },
      },
    ];
    const samples = sides.map(() => [] as PushSample[]);
    for (let r = 0; r < rounds; r++) {
      for (let k = 0; k < sides.length; k++) {
        const i = (k + r) % sides.length;
        const sample = await sides[i]!.run();
        samples[i]!.push(sample);
        log(`round ${r + 1} ${sides[i]!.name}: ${sample.wallS.toFixed(2)} s wall, ${sample.cpuS.toFixed(2)} s CPU, registry ${sample.registryCpuS.toFixed(2)} s CPU, ${sample.rssMB.toFixed(0)} MB RSS, load ${sample.load1.toFixed(1)}`);
      }
    }
    const [push, skopeo, floor] = samples as [PushSample[], PushSample[], PushSample[]];
    const wall = (xs: Sample[]) => xs.map((s) => s.wallS);
    const mbs = (xs: Sample[]) => xs.map((s) => f.uniqueBlobBytes / MB / s.wallS);
    const perGB = (xs: PushSample[], cpu: (s: PushSample) => number) => `${spread(xs.map((s) => cpu(s) / (f.uniqueBlobBytes / 1e9)), 2)} s/GB`;
    const cpuRow = (name: string, xs: PushSample[]) => [`${name}: CPU per GB (client / docker-registry)`, perGB(xs, (s) => s.cpuS), perGB(xs, (s) => s.registryCpuS), '', ''];
    const rows = [
      ['bundle push vs skopeo copy ×image: time', `${spread(wall(push), 2)} s`, `${spread(wall(skopeo), 2)} s`, `${(median(wall(skopeo)) / median(wall(push))).toFixed(2)}× faster`, '≥ 2× faster'],
      ['bundle push vs ingest floor: unique blob MB/s', `${spread(mbs(push), 0)} MB/s`, `${spread(mbs(floor), 0)} MB/s`, `${(median(mbs(push)) / median(mbs(floor))).toFixed(2)}×`, '≥ 0.7×'],
      ['bundle push CPU (user + sys) / peak RSS', `${spread(push.map((s) => s.cpuS), 1)} s / ${spread(push.map((s) => s.rssMB), 0)} MB`, '', '', ''],
      cpuRow('bundle push', push),
      cpuRow('ingest floor', floor),
      cpuRow('skopeo copy ×image', skopeo),
    ];
    const loads = samples.flat().map((s) => s.load1);
    const header = ['measure', 'pin-preload', 'peer / floor', 'ratio', 'target'];
    const table = [header, header.map(() => '---'), ...rows].map((row) => `| ${row.join(' | ')} |`).join('\n');
    process.stdout.write(`${table}\n\nbundle ${(bundleBytes / 1e9).toFixed(2)} GB, unique blobs ${(f.uniqueBlobBytes / 1e9).toFixed(2)} GB, ${f.sample.images.length} images; load average (1 min) during the rounds: ${spread(loads, 1)}\n`);
    await mkdir(RESULTS_DIR, { recursive: true });
    const file = path.join(RESULTS_DIR, `push-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    await writeFile(file, `${JSON.stringify({ rounds, bundleBytes, uniqueBlobBytes: f.uniqueBlobBytes, images: f.sample.images.length, push, skopeo, floor, rows, nproc: os.cpus().length }, null, 2)}\n`);
    log(`results: ${file}`);
  } finally {
    await stopTarget();
    await f.registry.stop().catch(() => undefined);
  }
}

await main();
