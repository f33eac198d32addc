// `node dist/bench/speed.js`: bundle create, verify, import and plan, each against its floor and its peer, in
// alternating rounds on one fixture (A B, then B A, …). Each command runs as a child under /usr/bin/time -v:
// wall, user + system CPU and peak RSS; the table shows medians with (min–max) and the load average of the
// rounds. Written to bench/results/speed-*.json; the table goes into docs/benchmarks.md by hand.
//
// Pairs: create vs the pull floor (bench/pull-floor.ts: the same blobs, same registry, same concurrency,
// digests checked, nothing written); create vs skopeo (one `skopeo copy` per image into one OCI layout, or
// with --small `skopeo sync --src yaml --dest dir`), and the pull floor of the same amd64 blobs vs that peer (the
// most any create could show against it); verify vs `openssl dgst -sha256`; import vs verify, and import vs its
// floor (`cp` + `sync FILE`: the same bytes copied and fsynced, nothing checked), and that copy vs verify (the
// slower of the two is the least any import could take);
// `bundle plan` vs the CLI's start-up (`pin-preload --version`).

import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SampleParams } from '../src/sample/index.js';
import { openBundle } from '../src/bundle/reader.js';
import { benchArgs } from './args.js';
import { prepareFixture, registryPath, type Fixture } from './fixture.js';
import { sh } from './proc.js';
import { measure, median, pair as pairWith, spread, type Sample, type Side } from './rounds.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const FLOOR = fileURLToPath(new URL('./pull-floor.js', import.meta.url));
const RESULTS_DIR = fileURLToPath(new URL('../../bench/results/', import.meta.url));
const MiB = 1024 * 1024;
const MB = 1e6;
const CONCURRENCY = 8; // bundle create's default, and its registry client's connections per origin

const USAGE = `usage: node dist/bench/speed.js [flags]
  --small          the ~40-image, ~60 MB release (plan; create vs skopeo sync) instead of the ~1 GB one
  --scale          the ~10 GB release (190 components, stored layers); slow: run it on a quiet machine
  --rounds N       rounds, the order of each pair reversed every round (default 3)
  --work DIR       work dir, kept between runs so the fixture is reused
  --skip LIST      any of floor,skopeo,verify,import,plan`;

const log = (line: string) => process.stderr.write(`speed: ${line}\n`);
const pair = (rounds: number, a: Side, b: Side) => pairWith(rounds, a, b, log);

function options() {
  const values = benchArgs(USAGE, {
    small: { type: 'boolean', default: false },
    scale: { type: 'boolean', default: false },
    rounds: { type: 'string', default: '3' },
    work: { type: 'string' },
    skip: { type: 'string', default: '' },
  });
  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds wants a whole number ≥ 1, not "${values.rounds}"`);
  const size = values.scale ? 'scale' : values.small ? 'small' : 'default';
  const presets: Record<typeof size, Partial<SampleParams>> = {
    // ~60 MB, 41 images: the release the plan target is stated for.
    small: { components: 36, baseLayers: 2, baseLayerSize: 8 * MiB, componentLayers: 1, componentLayerSize: 1 * MiB, compressionLevel: 1, extraImages: 4 },
    default: { components: 60, baseLayers: 3, baseLayerSize: 48 * MiB, componentLayers: 2, componentLayerSize: 6 * MiB, compressionLevel: 1, extraImages: 4 },
    scale: { components: 190, baseLayers: 3, baseLayerSize: 200 * MiB, componentLayers: 5, componentLayerSize: 9 * MiB, compressionLevel: 0, extraImages: 4 },
  };
  return { size, params: presets[size], rounds, work: values.work ?? path.join(os.tmpdir(), `pin-preload-speed-${size}`), skip: new Set(values.skip!.split(',').filter(Boolean)) };
}

function selectionArgs(f: Fixture): string[] {
  return ['--registries-conf', f.registriesConf, '--authfile', f.authfile, '--release', f.sample.releaseReference, ...f.sample.extraImages.flatMap((e) => ['--image', e.reference])];
}

/** The fixture's blobs that a bundle holds (the amd64 bundle's, for the floor of the peer comparison). */
async function blobsOfBundle(bundle: string, f: Fixture): Promise<Fixture['blobs']> {
  const opened = await openBundle(bundle);
  try {
    const held = new Set<string>(opened.manifest.blobs.map((b) => b.digest));
    return f.blobs.filter((b) => held.has(b.digest));
  } finally {
    await opened.close();
  }
}

/** One `skopeo copy` per top-level image (amd64) into one OCI layout, which dedups blobs across images. */
function skopeoCopyScript(f: Fixture, layout: string): string {
  const lines = f.sample.images.map((image, i) => {
    const repoPath = image.repository.slice(image.repository.indexOf('/') + 1);
    return `skopeo copy -q --src-tls-verify=false docker://${f.registry.host}/${repoPath}@${image.digest} oci:${layout}:image-${i}`;
  });
  return `set -e\n${lines.join('\n')}\n`;
}

function skopeoSyncYaml(f: Fixture): string {
  const byRepo = new Map<string, string[]>();
  for (const image of f.sample.images) {
    const repoPath = image.repository.slice(image.repository.indexOf('/') + 1);
    byRepo.set(repoPath, [...(byRepo.get(repoPath) ?? []), image.tag ?? image.digest]);
  }
  return [`${f.registry.host}:`, '  tls-verify: false', '  images:', ...[...byRepo].flatMap(([repo, refs]) => [`    ${repo}:`, ...refs.map((r) => `      - "${r}"`)])].join('\n') + '\n';
}

async function main(): Promise<void> {
  const opts = options();
  const f = await prepareFixture(opts.work, opts.params, log);
  const rows: string[][] = [];
  const json: Record<string, unknown> = { size: opts.size, params: opts.params, rounds: opts.rounds, started: new Date().toISOString(), nproc: os.cpus().length };
  const loads: number[] = [];
  const note = (samples: readonly Sample[]) => loads.push(...samples.map((s) => s.load1));
  try {
    const out = path.join(opts.work, 'speed-out');
    const output = path.join(out, 'bench.tar');
    const fresh = async (dir: string) => {
      await rm(dir, { recursive: true, force: true });
      await mkdir(dir, { recursive: true });
      await sh(['sync']); // the previous side's writeback is not charged to this one
    };
    // Every platform against the floor (which fetches every unique blob of the fixture); amd64 against skopeo.
    const createSide = (platform: string): Side => ({
      name: `bundle create --platform ${platform}`,
      before: () => fresh(out),
      run: () => measure([process.execPath, CLI, 'bundle', 'create', ...selectionArgs(f), '--platform', platform, '--output', output, '--quiet'], { SOURCE_DATE_EPOCH: '1700000000' }),
    });
    const create = createSide('all');
    const floorOf = async (name: string, listName: string, blobs: Fixture['blobs']): Promise<Side> => {
      const list = path.join(opts.work, listName);
      await writeFile(list, JSON.stringify({ origin: f.registry.url, blobs: blobs.map((b) => ({ path: registryPath(b.repository, 'blobs', b.digest, false), digest: b.digest, size: b.size })) }));
      return { name, run: () => measure([process.execPath, FLOOR, list, String(CONCURRENCY)]) };
    };
    const floor = await floorOf('pull floor', 'floor-blobs.json', f.blobs);

    // 1. create against the pull floor: throughput and CPU.
    const vsFloor = opts.skip.has('floor') ? { a: [await create.before!().then(create.run)], b: [] } : await pair(opts.rounds, create, floor);
    note([...vsFloor.a, ...vsFloor.b]);
    const tarBytes = (await stat(output)).size;
    const createMBs = vsFloor.a.map((s) => tarBytes / MB / s.wallS);
    const cpuPerGB = vsFloor.a.map((s) => s.cpuS / (tarBytes / 1e9));
    json.create = { tarBytes, samples: vsFloor.a };
    json.floor = { uniqueBlobBytes: f.uniqueBlobBytes, samples: vsFloor.b };
    if (vsFloor.b.length > 0) {
      const floorMBs = vsFloor.b.map((s) => f.uniqueBlobBytes / MB / s.wallS);
      rows.push(['create throughput vs pull floor', `${spread(createMBs, 0)} MB/s`, `${spread(floorMBs, 0)} MB/s`, `${(median(createMBs) / median(floorMBs)).toFixed(2)}×`, '≥ 0.8×']);
    } else rows.push(['create throughput', `${spread(createMBs, 0)} MB/s`, '-', '-', '']);
    rows.push(['create CPU per GB (user + sys)', `${spread(cpuPerGB, 2)} s`, vsFloor.b.length ? `${spread(vsFloor.b.map((s) => s.cpuS / (f.uniqueBlobBytes / 1e9)), 2)} s` : '-', '', '≤ 3 s']);
    rows.push(['create peak RSS', `${spread(vsFloor.a.map((s) => s.rssMB), 0)} MB`, '', '', '< 200 MB']);

    // 2. create against skopeo.
    if (!opts.skip.has('skopeo')) {
      const dest = path.join(opts.work, 'skopeo-out');
      const yamlFile = path.join(opts.work, 'skopeo-sync.yaml');
      const script = path.join(opts.work, 'skopeo-copy.sh');
      await writeFile(yamlFile, skopeoSyncYaml(f));
      await writeFile(script, skopeoCopyScript(f, path.join(dest, 'layout')));
      const skopeo: Side = opts.size === 'small'
        ? { name: 'skopeo sync (amd64)', before: () => fresh(dest), run: () => measure(['skopeo', 'sync', '--src', 'yaml', '--dest', 'dir', yamlFile, dest]) }
        : { name: 'skopeo copy ×image (amd64)', before: () => fresh(dest), run: () => measure(['sh', script]) };
      const vs = await pair(opts.rounds, createSide('linux/amd64'), skopeo);
      note([...vs.a, ...vs.b]);
      json.skopeo = { peer: skopeo.name, create: vs.a, samples: vs.b };
      const ratio = median(vs.b.map((s) => s.wallS)) / median(vs.a.map((s) => s.wallS));
      rows.push([`create vs ${skopeo.name}: time`, `${spread(vs.a.map((s) => s.wallS), 2)} s`, `${spread(vs.b.map((s) => s.wallS), 2)} s`, `${ratio.toFixed(2)}× faster`, '≥ 4× faster']);
      // The most any create could show against the peer: the pull floor over the same (amd64) blobs, which
      // downloads and hashes them and writes nothing, against the same peer.
      if (!opts.skip.has('floor')) {
        const amd64Floor = await floorOf('pull floor (amd64)', 'floor-amd64-blobs.json', await blobsOfBundle(output, f));
        const bound = await pair(opts.rounds, amd64Floor, skopeo);
        note([...bound.a, ...bound.b]);
        json.skopeoFloor = { floor: bound.a, samples: bound.b };
        const most = median(bound.b.map((s) => s.wallS)) / median(bound.a.map((s) => s.wallS));
        rows.push([`pull floor (amd64 blobs) vs ${skopeo.name}: the most create can be faster`, `floor: ${spread(bound.a.map((s) => s.wallS), 2)} s`, `${spread(bound.b.map((s) => s.wallS), 2)} s`, `${most.toFixed(2)}× faster`, '']);
      }
      await rm(dest, { recursive: true, force: true });
    }
    // The create output for the next pairs (the last side run may have been the peer).
    await create.before!();
    await create.run();
    await sh(['sh', '-c', `cat ${JSON.stringify(output)} > /dev/null`]); // verify and openssl both from the page cache

    // 3. verify against openssl.
    const verify: Side = { name: 'bundle verify', run: () => measure([process.execPath, CLI, 'bundle', 'verify', output]) };
    if (!opts.skip.has('verify')) {
      const openssl: Side = { name: 'openssl dgst -sha256', run: () => measure(['openssl', 'dgst', '-sha256', output]) };
      const vs = await pair(opts.rounds, verify, openssl);
      note([...vs.a, ...vs.b]);
      json.verify = { verify: vs.a, openssl: vs.b };
      const ratio = median(vs.b.map((s) => s.wallS)) / median(vs.a.map((s) => s.wallS));
      rows.push(['verify vs openssl dgst -sha256: speed', `${spread(vs.a.map((s) => tarBytes / MB / s.wallS), 0)} MB/s`, `${spread(vs.b.map((s) => tarBytes / MB / s.wallS), 0)} MB/s`, `${ratio.toFixed(2)}×`, '≥ 1.5×']);
    }

    // 4. import against verify.
    if (!opts.skip.has('import')) {
      const node = path.join(opts.work, 'speed-node');
      const importSide: Side = {
        name: 'import',
        before: () => fresh(node),
        run: () => measure([process.execPath, CLI, 'import', output, '--config', '/dev/null', '--bundles', path.join(node, 'bundles'), '--state', path.join(node, 'state.db')]),
      };
      const vs = await pair(opts.rounds, importSide, verify);
      note([...vs.a, ...vs.b]);
      json.import = { import: vs.a, verify: vs.b };
      const ratio = median(vs.a.map((s) => s.wallS)) / median(vs.b.map((s) => s.wallS));
      rows.push(['import vs verify: time', `${spread(vs.a.map((s) => s.wallS), 2)} s`, `${spread(vs.b.map((s) => s.wallS), 2)} s`, `${ratio.toFixed(2)}×`, '≤ 1.2×']);
      // What the copy alone costs on this disk: the same bytes copied by the kernel and fsynced, nothing checked.
      const copied = path.join(opts.work, 'speed-copy');
      const copyFloor: Side = {
        name: 'cp + fsync',
        before: () => fresh(copied),
        run: () => measure(['sh', '-c', `cp ${JSON.stringify(output)} ${JSON.stringify(copied)}/ && sync ${JSON.stringify(path.join(copied, path.basename(output)))}`]),
      };
      const vsCopy = await pair(opts.rounds, importSide, copyFloor);
      note([...vsCopy.a, ...vsCopy.b]);
      json.importCopyFloor = { import: vsCopy.a, copy: vsCopy.b };
      const copyRatio = median(vsCopy.a.map((s) => s.wallS)) / median(vsCopy.b.map((s) => s.wallS));
      rows.push(['import vs cp + fsync (floor): time', `${spread(vsCopy.a.map((s) => s.wallS), 2)} s`, `${spread(vsCopy.b.map((s) => s.wallS), 2)} s`, `${copyRatio.toFixed(2)}×`, '']);
      // The least any import could show against verify: it copies durably and checks what verify checks, so at
      // best as long as the slower of the two, the copy alone and verify, paired with each other.
      const bound = await pair(opts.rounds, copyFloor, verify);
      note([...bound.a, ...bound.b]);
      json.importBound = { copy: bound.a, verify: bound.b };
      const copyS = median(bound.a.map((s) => s.wallS));
      const verifyS = median(bound.b.map((s) => s.wallS));
      rows.push(['cp + fsync vs verify: the least import can be', `cp + fsync: ${spread(bound.a.map((s) => s.wallS), 2)} s`, `${spread(bound.b.map((s) => s.wallS), 2)} s`, `${(Math.max(copyS, verifyS) / verifyS).toFixed(2)}×`, '']);
      await rm(node, { recursive: true, force: true });
      await rm(copied, { recursive: true, force: true });
    }

    // 5. plan against the CLI's start-up.
    if (!opts.skip.has('plan')) {
      const plan: Side = { name: 'bundle plan', run: () => measure([process.execPath, CLI, 'bundle', 'plan', ...selectionArgs(f)]) };
      const startup: Side = { name: 'pin-preload --version', run: () => measure([process.execPath, CLI, '--version']) };
      const vs = await pair(Math.max(opts.rounds, 5), plan, startup);
      note([...vs.a, ...vs.b]);
      json.plan = { plan: vs.a, startup: vs.b, images: f.sample.images.length };
      const over = median(vs.a.map((s) => s.wallS)) - median(vs.b.map((s) => s.wallS));
      rows.push([`bundle plan (${f.sample.images.length} images) vs start-up`, `${spread(vs.a.map((s) => s.wallS), 2)} s`, `${spread(vs.b.map((s) => s.wallS), 2)} s`, `+${over.toFixed(2)} s`, '≤ +0.3 s']);
    }
  } finally {
    await f.registry.stop();
  }
  const header = ['measure', 'pin-preload', 'floor / peer', 'ratio', 'target'];
  const table = [header, header.map(() => '---'), ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n');
  const loadText = `load average (1 min) during the rounds: ${spread(loads, 1)}`;
  process.stdout.write(`${table}\n\n${loadText}\n`);
  json.rows = rows;
  json.load = loads;
  await mkdir(RESULTS_DIR, { recursive: true });
  const file = path.join(RESULTS_DIR, `speed-${opts.size}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  await writeFile(file, `${JSON.stringify(json, null, 2)}\n`);
  log(`results: ${file}`);
}

await main();
