// `npm run bench`: pin-preload against its peers on one machine, side by side — bundle create vs skopeo sync,
// the mirror vs docker-registry, bundle verify vs openssl, CRI pulls via each — printed as ratios, saved as JSON.
//
// Flags: --scale (the ~10 GB / ~190-image run), --components N, --base-layer-mib N, --component-layer-mib N,
// --component-layers N, --compression 0-9, --cri-images N, --work DIR (kept between runs: the fixture is reused),
// --rounds N (serve loads, alternating order, default 3), --manifest-seconds N (each measured wrk run, default 5),
// --skip skopeo,verify,serve,nginx,floor,cri.

import { mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SampleParams } from '../src/sample/index.js';
import { benchArgs } from './args.js';
import { pullThroughCri, type CriPullResult } from './cri-pull.js';
import { fixtureTarget, nginxTargets, prepareFixture, type Fixture } from './fixture.js';
import { mustSucceed, peakRssOf, sh, timed } from './proc.js';
import { floorTarget, fmtSpread, loadInRounds, roundPlan, summarize, type LatencySummary, type RoundsResult, type Spread, type TargetSummary } from './server-rounds.js';
import { NGINX_NAME, startFloors, startServe, type ChildServer } from './servers.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const RESULTS_DIR = fileURLToPath(new URL('../../bench/results/', import.meta.url));
const EPOCH = '1700000000';
const MB = 1e6;
const MiB = 1024 * 1024;

const log = (line: string) => process.stderr.write(`bench: ${line}\n`);

function positive(flag: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} wants a whole number ≥ 1, not "${text}"`);
  return n;
}

const USAGE = `usage: npm run bench -- [flags]   (or node dist/bench/run.js [flags])
  --scale                     the ~10 GB / ~190-image fixture instead of the ~1 GB default
  --components N              components in the generated release (default 60)
  --base-layer-mib N          size of each of the 3 shared base layers
  --component-layer-mib N     size of each component layer
  --component-layers N        layers per component
  --compression 0-9           gzip level of the generated layers
  --cri-images N              images pulled through containerd per registry (default 8)
  --work DIR                  work dir, kept between runs so the fixture is reused
  --rounds N                  serve loads in N rounds, alternating the order (default 3)
  --manifest-seconds N        length of each measured wrk run (default 5)
  --skip LIST                 any of skopeo,verify,serve,nginx,floor,cri`;

function options() {
  const values = benchArgs(USAGE, {
    scale: { type: 'boolean', default: false },
    components: { type: 'string' },
    'base-layer-mib': { type: 'string' },
    'component-layer-mib': { type: 'string' },
    'component-layers': { type: 'string' },
    compression: { type: 'string' },
    'cri-images': { type: 'string', default: '8' },
    work: { type: 'string' },
    skip: { type: 'string', default: '' },
    rounds: { type: 'string', default: '3' },
    'manifest-seconds': { type: 'string', default: '5' },
  });
  // Default: 60 components on 3 shared base layers, ~1 GB; --scale: 190 components, ~10 GB, ~2,000 blobs.
  const base: Partial<SampleParams> = values.scale
    ? { components: 190, baseLayers: 3, baseLayerSize: 200 * MiB, componentLayers: 5, componentLayerSize: 9 * MiB, compressionLevel: 0, extraImages: 4 }
    : { components: 60, baseLayers: 3, baseLayerSize: 48 * MiB, componentLayers: 2, componentLayerSize: 6 * MiB, compressionLevel: 1, extraImages: 4 };
  const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));
  const params: Partial<SampleParams> = {
    ...base,
    ...(values.components ? { components: num(values.components)! } : {}),
    ...(values['base-layer-mib'] ? { baseLayerSize: num(values['base-layer-mib'])! * MiB } : {}),
    ...(values['component-layer-mib'] ? { componentLayerSize: num(values['component-layer-mib'])! * MiB } : {}),
    ...(values['component-layers'] ? { componentLayers: num(values['component-layers'])! } : {}),
    ...(values.compression ? { compressionLevel: num(values.compression)! } : {}),
  };
  const key = `${params.components}c-${(params.baseLayerSize ?? 0) / MiB}b-${params.componentLayers}x${(params.componentLayerSize ?? 0) / MiB}-z${params.compressionLevel}`;
  return {
    params,
    work: values.work ?? path.join(os.tmpdir(), `pin-preload-bench-${key}`),
    criImages: Number(values['cri-images']),
    skip: new Set(values.skip!.split(',').filter(Boolean)),
    scale: values.scale!,
    rounds: positive('--rounds', values.rounds!),
    manifestSeconds: positive('--manifest-seconds', values['manifest-seconds']!),
  };
}

async function machine(work: string): Promise<Record<string, string>> {
  const cpu = (await sh(['sh', '-c', "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"])).trim();
  const mem = await sh(['sh', '-c', "grep MemTotal /proc/meminfo | awk '{printf \"%.1f GiB\", $2/1048576}'"]);
  return {
    nproc: String(os.cpus().length),
    cpu,
    memory: mem,
    disk: await sh(['sh', '-c', `df -h --output=source,fstype,size,avail ${work} | tail -1`]),
    kernel: os.release(),
    node: process.version,
    'docker-registry': await sh(['sh', '-c', 'docker-registry --version 2>&1 | head -1']),
    wrk: await sh(['sh', '-c', 'wrk -v 2>&1 | head -1']),
    nginx: await sh(['sh', '-c', 'nginx -v 2>&1']),
    skopeo: await sh(['skopeo', '--version']),
    containerd: await sh(['sh', '-c', 'containerd --version | cut -d" " -f1-3']),
    openssl: await sh(['openssl', 'version']),
    load: os.loadavg().map((l) => l.toFixed(2)).join(' '),
  };
}

async function bytesUnder(target: string): Promise<number> {
  return Number((await sh(['du', '-sb', '--apparent-size', target])).split(/\s/)[0] ?? 0);
}

/** Everything `bundle create` left at the output: the tar (or volumes) and the seal. */
async function bundleFiles(output: string): Promise<string[]> {
  const dir = path.dirname(output);
  const name = path.basename(output);
  return (await readdir(dir)).filter((n) => n.startsWith(name)).map((n) => path.join(dir, n));
}

async function benchCreate(f: Fixture, work: string) {
  const output = path.join(work, 'out', 'bench.tar');
  await rm(path.dirname(output), { recursive: true, force: true });
  await mkdir(path.dirname(output), { recursive: true });
  const args = ['bundle', 'create', '--registries-conf', f.registriesConf, '--authfile', f.authfile, '--release', f.sample.releaseReference,
    ...f.sample.extraImages.flatMap((e) => ['--image', e.reference]), '--platform', 'all', '--output', output, '--quiet'];
  log('bundle create …');
  const run = mustSucceed(await timed([process.execPath, CLI, ...args], { env: { SOURCE_DATE_EPOCH: EPOCH } }));
  let written = 0;
  for (const file of await bundleFiles(output)) written += (await stat(file)).size;
  const tarSize = (await stat(output)).size;
  log(`bundle create: ${(run.wallMs / 1000).toFixed(1)} s, ${(tarSize / MB).toFixed(0)} MB, peak RSS ${(run.peakRssBytes / MB).toFixed(0)} MB`);
  return { output, run, written, tarSize };
}

/** skopeo sync --all of the same images (release by tag, components by digest, extras by tag) into a dir tree. */
async function benchSkopeo(f: Fixture, work: string) {
  const host = f.registry.host;
  const byRepo = new Map<string, string[]>();
  for (const image of f.sample.images) {
    const repoPath = image.repository.slice(image.repository.indexOf('/') + 1);
    byRepo.set(repoPath, [...(byRepo.get(repoPath) ?? []), image.tag ?? image.digest]);
  }
  const yaml = [`${host}:`, '  tls-verify: false', '  images:', ...[...byRepo].flatMap(([repo, refs]) => [`    ${repo}:`, ...refs.map((r) => `      - "${r}"`)])].join('\n');
  const yamlFile = path.join(work, 'skopeo-sync.yaml');
  await writeFile(yamlFile, `${yaml}\n`);
  const dest = path.join(work, 'skopeo-out');
  await rm(dest, { recursive: true, force: true });
  await mkdir(dest, { recursive: true });
  log('skopeo sync --all …');
  const run = mustSucceed(await timed(['skopeo', 'sync', '--all', '--src', 'yaml', '--dest', 'dir', yamlFile, dest]));
  const written = await bytesUnder(dest);
  log(`skopeo sync: ${(run.wallMs / 1000).toFixed(1)} s, ${(written / MB).toFixed(0)} MB written`);
  await rm(dest, { recursive: true, force: true });
  // skopeo does not fsync: ~10 GB of its writes (and their deletion) are still being written back by the
  // kernel. Left running, that lands in the next measurements (it showed as one mirror round with a
  // 22–26 ms manifest p99 while the other rounds had 2.2–3.0 ms), so wait for it here.
  await sh(['sync']);
  return { run, written };
}

async function benchVerify(output: string) {
  const size = (await stat(output)).size;
  await sh(['sh', '-c', `cat ${JSON.stringify(output)} > /dev/null`]); // both read from the page cache
  log('bundle verify and openssl dgst …');
  const ours = mustSucceed(await timed([process.execPath, CLI, 'bundle', 'verify', output]));
  const openssl = mustSucceed(await timed(['openssl', 'dgst', '-sha256', output]));
  return { size, ours, openssl, oursMBps: size / MB / (ours.wallMs / 1000), opensslMBps: size / MB / (openssl.wallMs / 1000) };
}

interface ServeBench {
  readonly rounds: RoundsResult;
  readonly summary: TargetSummary[];
  readonly servePeakRss: number;
  readonly origin: string;
  stop(): Promise<void>;
}

/** The mirror, docker-registry, nginx and (unless skipped) the two floor servers, loaded in alternating rounds. */
async function benchServe(f: Fixture, output: string, work: string, opts: ReturnType<typeof options>): Promise<ServeBench> {
  const state = path.join(work, 'serve-state.db');
  await rm(state, { force: true });
  const serve = await startServe(output, state);
  const peers: ChildServer[] = [];
  try {
    const mirror = fixtureTarget('mirror', serve.origin, f, { withNs: true, blobs: true, pid: serve.pid });
    const targets = [mirror, fixtureTarget('docker-registry', f.registry.url, f, { withNs: false, blobs: true, pid: f.registry.pid })];
    if (!opts.skip.has('nginx')) targets.push(...(await nginxTargets(f, peers, log)));
    if (!opts.skip.has('floor')) {
      await startFloors(peers);
      targets.push(...peers.filter((p) => p.name.startsWith('floor')).map((floor) => floorTarget(floor, mirror.manifests)));
    }
    const plan = roundPlan({ rounds: opts.rounds, blobMinBytes: Math.min(f.uniqueBlobBytes, 1500 * MB), wrkSeconds: opts.manifestSeconds, undiciRequests: 5000 });
    log(`loading ${targets.map((t) => t.name).join(', ')} in ${plan.rounds} rounds …`);
    const rounds = await loadInRounds(targets, plan, log);
    return { rounds, summary: summarize(rounds), servePeakRss: await peakRssOf(serve.pid), origin: serve.origin, stop: () => serve.stop() };
  } catch (err) {
    await serve.stop();
    throw err;
  } finally {
    for (const peer of peers) await peer.stop();
  }
}

async function benchCri(f: Fixture, mirrorOrigin: string, count: number): Promise<{ mirror: CriPullResult; registry: CriPullResult }> {
  const refs = f.sample.components.slice(0, count).map((c) => c.reference);
  log(`CRI pulls of ${refs.length} images via the mirror …`);
  const mirror = await pullThroughCri(refs, mirrorOrigin, 5);
  log(`CRI pulls of ${refs.length} images via docker-registry …`);
  const registry = await pullThroughCri(refs, f.registry.url, 5);
  return { mirror, registry };
}

function row(label: string, ours: string, peer: string, ratio: string, target: string): string {
  return `${label.padEnd(46)} ${ours.padStart(22)} ${peer.padStart(22)} ${ratio.padStart(8)}  ${target}`;
}

const ratioOf = (a: Spread, b: Spread) => `${(a.median / b.median).toFixed(2)}×`;
const ms = (s: Spread | undefined, digits = 2) => (s ? fmtSpread(s, digits, 'ms') : '-');

/** Latency rows, ours against a peer: p50 and p99, ratio = peer / ours (how many times faster ours is). */
function latencyRows(label: string, ours: LatencySummary, peer: LatencySummary, p99Target: string): string[] {
  return [
    row(`${label} p50`, ms(ours.p50Ms), ms(peer.p50Ms), ratioOf(peer.p50Ms, ours.p50Ms), ''),
    row(`${label} p99`, ms(ours.p99Ms), ms(peer.p99Ms), ratioOf(peer.p99Ms, ours.p99Ms), p99Target),
  ];
}

/** A target's manifest latency (every target but nginx has one). */
function latencyOf(t: TargetSummary): { calibrated: LatencySummary; undici: LatencySummary } {
  if (!t.calibrated || !t.undici) throw new Error(`${t.name} has no manifest latency`);
  return { calibrated: t.calibrated, undici: t.undici };
}

/** Medians over the rounds (range in brackets) and ratios of the medians. */
function serveRows(summary: readonly TargetSummary[], rounds: number): string[] {
  const by = (name: string) => summary.find((t) => t.name === name);
  const mirror = by('mirror')!;
  const registry = by('docker-registry')!;
  const nginx = by(NGINX_NAME);
  const lines = [`serve: medians of ${rounds} round(s), alternating order, (min–max) over the rounds; ratios of medians`];
  for (let i = 0; i < mirror.blobMBps.length; i++) {
    const m = mirror.blobMBps[i]!;
    const r = registry.blobMBps[i]!;
    lines.push(row(`blob GET MB/s, concurrency ${m.concurrency} (${m.client})`, fmtSpread(m.mbPerS, 0, 'MB/s'), fmtSpread(r.mbPerS, 0, 'MB/s'), ratioOf(m.mbPerS, r.mbPerS), '≥ 1× docker-registry'));
    if (m.serverCpuMsPerGB && r.serverCpuMsPerGB) {
      lines.push(row('  server CPU per GB served', fmtSpread(m.serverCpuMsPerGB, 0, 'ms'), fmtSpread(r.serverCpuMsPerGB, 0, 'ms'), ratioOf(r.serverCpuMsPerGB, m.serverCpuMsPerGB), 'less is better'));
    }
    const n = nginx?.blobMBps[i];
    if (n) {
      lines.push(row('  vs nginx (sendfile)', fmtSpread(m.mbPerS, 0, 'MB/s'), fmtSpread(n.mbPerS, 0, 'MB/s'), ratioOf(m.mbPerS, n.mbPerS), '≥ 0.8× nginx'));
      if (m.serverCpuMsPerGB && n.serverCpuMsPerGB) {
        lines.push(row('  server CPU per GB, nginx', fmtSpread(m.serverCpuMsPerGB, 0, 'ms'), fmtSpread(n.serverCpuMsPerGB, 0, 'ms'), ratioOf(n.serverCpuMsPerGB, m.serverCpuMsPerGB), 'less is better'));
      }
    }
  }
  const ours = latencyOf(mirror);
  const theirs = latencyOf(registry);
  const generator = ours.calibrated.generator === 'wrk' ? 'wrk' : 'undici: wrk missing';
  lines.push(...latencyRows(`manifest GET, 16 clients (${generator})`, ours.calibrated, theirs.calibrated, 'p99 < 5 ms'));
  if (mirror.wrk) lines.push(...latencyRows('  Node undici client, bounded by the client:', ours.undici, theirs.undici, ''));
  const cpuMirror = ours.calibrated.serverCpuMsPerRequest;
  const cpuRegistry = theirs.calibrated.serverCpuMsPerRequest;
  // Ours / peer here (not peer / ours as above): the target is a fraction of docker-registry's CPU.
  lines.push(row(`server CPU per manifest GET (${generator} run)`, ms(cpuMirror, 3), ms(cpuRegistry, 3), cpuMirror && cpuRegistry ? ratioOf(cpuMirror, cpuRegistry) : '-', '≤ 0.5× docker-registry'));
  const floorHttp = by('floor node:http');
  const floorExpress = by('floor express');
  if (floorHttp && floorExpress) {
    const fh = latencyOf(floorHttp);
    const fe = latencyOf(floorExpress);
    lines.push('calibration floors, a fixed 2.5 KB manifest for any GET: node:http (pin-preload column) vs Express 5 (peer column)');
    lines.push(...latencyRows(`  floor (${generator})`, fh.calibrated, fe.calibrated, ''));
    if (floorHttp.wrk) lines.push(...latencyRows('  floor (Node undici client)', fh.undici, fe.undici, ''));
    const cpuHttp = fh.calibrated.serverCpuMsPerRequest;
    const cpuExpress = fe.calibrated.serverCpuMsPerRequest;
    lines.push(row('  floor server CPU per GET', ms(cpuHttp, 3), ms(cpuExpress, 3), cpuHttp && cpuExpress ? ratioOf(cpuExpress, cpuHttp) : '-', ''));
  }
  return lines;
}

const fmtS = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const fmtMB = (bytes: number) => `${(bytes / MB).toFixed(0)} MB`;

async function main(): Promise<void> {
  const opts = options();
  const results: Record<string, unknown> = { startedAt: new Date().toISOString(), params: opts.params, work: opts.work };
  results.machine = await machine(os.tmpdir());
  log(`work dir ${opts.work}`);
  const f = await prepareFixture(opts.work, opts.params, log);
  const lines: string[] = [];
  try {
    results.fixture = { images: f.sample.images.length, components: f.sample.components.length, manifests: f.manifests.length, uniqueBlobs: f.blobs.length, uniqueBlobBytes: f.uniqueBlobBytes, generateMs: f.generateMs, pushMs: f.pushMs };
    lines.push(`fixture: ${f.sample.components.length} components + payload + ${f.sample.extraImages.length} extras, ${f.manifests.length} manifests, ${f.blobs.length} unique blobs, ${fmtMB(f.uniqueBlobBytes)}`);
    lines.push(row('measure', 'pin-preload', 'peer', 'ratio', 'target'));

    const create = await benchCreate(f, opts.work);
    results.create = { wallMs: create.run.wallMs, peakRssBytes: create.run.peakRssBytes, bytesWritten: create.written, tarBytes: create.tarSize, sizeRatio: create.tarSize / f.uniqueBlobBytes };
    if (!opts.skip.has('skopeo')) {
      const skopeo = await benchSkopeo(f, opts.work);
      results.skopeo = { wallMs: skopeo.run.wallMs, peakRssBytes: skopeo.run.peakRssBytes, bytesWritten: skopeo.written };
      lines.push(row('bundle create vs skopeo sync: time', fmtS(create.run.wallMs), fmtS(skopeo.run.wallMs), `${(skopeo.run.wallMs / create.run.wallMs).toFixed(2)}×`, '≥ 4× faster'));
      lines.push(row('  bytes written', fmtMB(create.written), fmtMB(skopeo.written), `${(skopeo.written / create.written).toFixed(2)}×`, 'fewer'));
    } else {
      lines.push(row('bundle create: time', fmtS(create.run.wallMs), '-', '-', ''));
    }
    lines.push(row('bundle size / unique blob bytes', fmtMB(create.tarSize), fmtMB(f.uniqueBlobBytes), (create.tarSize / f.uniqueBlobBytes).toFixed(4), '≤ 1.02'));
    lines.push(row('peak RSS: bundle create', fmtMB(create.run.peakRssBytes), '-', '-', '< 200 MB'));

    if (!opts.skip.has('verify')) {
      const v = await benchVerify(create.output);
      results.verify = { bytes: v.size, oursMs: v.ours.wallMs, opensslMs: v.openssl.wallMs, oursMBps: v.oursMBps, opensslMBps: v.opensslMBps, peakRssBytes: v.ours.peakRssBytes };
      lines.push(row('bundle verify vs openssl sha256', `${v.oursMBps.toFixed(0)} MB/s`, `${v.opensslMBps.toFixed(0)} MB/s`, `${(v.oursMBps / v.opensslMBps).toFixed(2)}×`, '≥ 1×'));
      lines.push(row('peak RSS: bundle verify', fmtMB(v.ours.peakRssBytes), '-', '-', 'report'));
    }

    if (!opts.skip.has('serve')) {
      const s = await benchServe(f, create.output, opts.work, opts);
      try {
        results.serve = { generator: s.rounds.generator, plan: s.rounds.plan, order: s.rounds.order, summary: s.summary, samples: s.rounds.samples, servePeakRssBytes: s.servePeakRss };
        lines.push(...serveRows(s.summary, opts.rounds));
        lines.push(row('peak RSS: serve (after the loads)', fmtMB(s.servePeakRss), '-', '-', '< 150 MB'));
        if (!opts.skip.has('cri')) {
          const cri = await benchCri(f, s.origin, opts.criImages);
          results.cri = cri;
          lines.push(row(`CRI pull ${cri.mirror.images} images (containerd)`, fmtS(cri.mirror.wallMs), fmtS(cri.registry.wallMs), `${(cri.registry.wallMs / cri.mirror.wallMs).toFixed(2)}×`, '≥ 1× docker-registry'));
        }
      } finally {
        await s.stop();
      }
    }
  } finally {
    await f.registry.stop();
  }
  results.finishedAt = new Date().toISOString();
  results.table = lines;
  await mkdir(RESULTS_DIR, { recursive: true });
  const file = path.join(RESULTS_DIR, `bench-${opts.scale ? 'scale' : 'default'}-${(results.startedAt as string).replace(/[:.]/g, '-')}.json`);
  await writeFile(file, `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(`\n${lines.join('\n')}\n\nmachine: ${JSON.stringify(results.machine)}\nresults: ${file}\n`);
}

await main();
