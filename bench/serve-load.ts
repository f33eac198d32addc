// The mirror's part of the benchmark alone, for tuning: one bundle (built once per work dir and kept), then
// `pin-preload serve` under manifest GET load (16 clients, wrk and undici) and blob load, in rounds, peak RSS.
//
// node dist/bench/serve-load.js [--work DIR] [--components N] [--base-layer-mib N] [--access-log] [--blobs]
//   [--rounds N (--runs N: the older name)] [--manifests N (undici GETs per round)] [--manifest-seconds N (wrk)]
//   [--node-flags "--cpu-prof --cpu-prof-dir=/tmp/prof"] [--registry] [--nginx] [--floor]

import { mkdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchArgs } from './args.js';
import { fixtureTarget, nginxTargets, prepareFixture, type Fixture } from './fixture.js';
import { mustSucceed, peakRssOf, timed } from './proc.js';
import { floorTarget, fmtSpread, loadInRounds, roundPlan, summarize, type LatencySummary, type LoadTarget, type RoundsResult, type TargetSummary } from './server-rounds.js';
import { NGINX_NAME, startFloors, startServe, type ChildServer } from './servers.js';
import type { BlobClient } from './http-load.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const MiB = 1024 * 1024;
const log = (line: string) => process.stderr.write(`serve-load: ${line}\n`);

const USAGE = `usage: node dist/bench/serve-load.js [flags]
  --work DIR                 work dir (fixture and bundle kept and reused)
  --components N             components in the generated release (default 60)
  --base-layer-mib N         size of each of the 3 shared base layers (default 48)
  --blobs                    also measure blob throughput (concurrency 1, 4, 16; the undici client, then wrk when installed)
  --registry                 the same loads against docker-registry, alternating
  --nginx                    the same blob loads against Debian's nginx (sendfile) over docker-registry's blob files
  --floor                    the same manifest loads against the node:http and Express floor servers
  --rounds N                 rounds (default 3; --runs N is the older name)
  --manifests N              undici manifest GETs per round (default 5000)
  --manifest-seconds N       length of each measured wrk run (default 5)
  --access-log               serve with the JSON access log on
  --node-flags "FLAGS"       extra node flags for serve, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"`;

const values = benchArgs(USAGE, {
  work: { type: 'string' },
  components: { type: 'string', default: '60' },
  'base-layer-mib': { type: 'string', default: '48' },
  'access-log': { type: 'boolean', default: false },
  blobs: { type: 'boolean', default: false },
  manifests: { type: 'string', default: '5000' },
  'manifest-seconds': { type: 'string', default: '5' },
  rounds: { type: 'string' },
  runs: { type: 'string' },
  'node-flags': { type: 'string', default: '' },
  registry: { type: 'boolean', default: false },
  nginx: { type: 'boolean', default: false },
  floor: { type: 'boolean', default: false },
});

/** The bundle of the fixture, created once per work dir (same parameters → same bytes) and reused. */
async function bundleOf(f: Fixture, work: string): Promise<string> {
  const bundle = path.join(work, 'out', 'bench.tar');
  if (!(await stat(bundle).catch(() => undefined))) {
    await mkdir(path.dirname(bundle), { recursive: true });
    log('bundle create …');
    mustSucceed(
      await timed([process.execPath, CLI, 'bundle', 'create', '--registries-conf', f.registriesConf, '--authfile', f.authfile, '--release', f.sample.releaseReference,
        ...f.sample.extraImages.flatMap((e) => ['--image', e.reference]), '--platform', 'all', '--output', bundle, '--quiet'], { env: { SOURCE_DATE_EPOCH: '1700000000' } }),
    );
  }
  return bundle;
}

function describeLatency(label: string, l: LatencySummary): string {
  const cpu = l.serverCpuMsPerRequest ? `, server CPU ${fmtSpread(l.serverCpuMsPerRequest, 3, 'ms')}/request` : '';
  return `  manifest GET (${label}): p50 ${fmtSpread(l.p50Ms, 2, 'ms')}, p99 ${fmtSpread(l.p99Ms, 2, 'ms')}, max ${fmtSpread(l.maxMs, 1, 'ms')}, ${fmtSpread(l.requestsPerSecond, 0)} requests/s${cpu}`;
}

/** Medians over the rounds, (min–max) in brackets. */
function describe(t: TargetSummary): string[] {
  return [
    `${t.name}:`,
    ...t.blobMBps.map((b) => `  blob GET, concurrency ${b.concurrency} (${b.client}): ${fmtSpread(b.mbPerS, 0, 'MB/s')}${b.serverCpuMsPerGB ? `, server CPU ${fmtSpread(b.serverCpuMsPerGB, 0, 'ms')}/GB` : ''}`),
    ...(t.wrk ? [describeLatency('wrk', t.wrk)] : []),
    ...(t.undici ? [describeLatency('Node undici client, bounded by the client', t.undici)] : []),
  ];
}

/** The mirror's MB/s over the peer's in each round at one load (the two ran seconds apart). */
function roundRatios(result: RoundsResult, peer: string, load: { readonly client: BlobClient; readonly concurrency: number }): string {
  const mbPerS = (target: string, round: number) =>
    result.samples.find((s) => s.target === target && s.round === round)?.throughput.find((t) => t.concurrency === load.concurrency && t.client === load.client)?.mbPerS;
  return Array.from({ length: result.plan.rounds }, (_, round) => {
    const ours = mbPerS('mirror', round);
    const theirs = mbPerS(peer, round);
    return ours !== undefined && theirs !== undefined ? (ours / theirs).toFixed(2) : '?';
  }).join(', ');
}

/** The mirror's targets against its peers, as ratios of the medians, and per round. */
function targetLines(summary: readonly TargetSummary[], result: RoundsResult): string[] {
  const by = (name: string) => summary.find((t) => t.name === name);
  const mirror = by('mirror')!;
  const lines: string[] = [];
  for (const [peer, target] of [['docker-registry', 1], [NGINX_NAME, 0.8]] as const) {
    const p = by(peer);
    if (!p || p.blobMBps.length === 0) continue;
    for (const client of [...new Set(mirror.blobMBps.map((m) => m.client))]) {
      const ratios = mirror.blobMBps.flatMap((m, i) =>
        m.client === client ? [`c = ${m.concurrency}: ${(m.mbPerS.median / p.blobMBps[i]!.mbPerS.median).toFixed(2)}× (per round ${roundRatios(result, peer, m)})`] : [],
      );
      lines.push(`target blob GET ≥ ${target}× ${peer}, ${client} client: ${ratios.join(', ')}`);
    }
  }
  const registry = by('docker-registry');
  const ours = mirror.calibrated?.serverCpuMsPerRequest;
  const theirs = registry?.calibrated?.serverCpuMsPerRequest;
  if (ours && theirs) lines.push(`target server CPU per manifest GET ≤ 0.5× docker-registry's: ${(ours.median / theirs.median).toFixed(3)}× (${ours.median.toFixed(3)} vs ${theirs.median.toFixed(3)} ms)`);
  return lines;
}

function wholeNumber(flag: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} wants a whole number ≥ 1, not "${text}"`);
  return n;
}

const params = { components: Number(values.components), baseLayers: 3, baseLayerSize: Number(values['base-layer-mib']) * MiB, componentLayers: 2, componentLayerSize: 6 * MiB, compressionLevel: 1, extraImages: 4 };
const work = values.work ?? path.join(os.tmpdir(), `pin-preload-serve-load-${params.components}c-${values['base-layer-mib']}b`);
const rounds = wholeNumber('--rounds', values.rounds ?? values.runs ?? '3');
const f = await prepareFixture(work, params, log);
try {
  const bundle = await bundleOf(f, work);
  log(`bundle ${((await stat(bundle)).size / 1e6).toFixed(0)} MB, ${f.manifests.length} manifests, ${f.blobs.length} blobs`);
  const state = path.join(work, `serve-state-${process.pid}.db`);
  const serve = await startServe(bundle, state, { accessLog: values['access-log']!, nodeFlags: values['node-flags']!.split(' ').filter(Boolean) });
  const peers: ChildServer[] = [];
  try {
    const mirror = fixtureTarget('mirror', serve.origin, f, { withNs: true, blobs: values.blobs!, pid: serve.pid });
    const targets: LoadTarget[] = [mirror];
    if (values.registry) targets.push(fixtureTarget('docker-registry', f.registry.url, f, { withNs: false, blobs: values.blobs!, pid: f.registry.pid }));
    if (values.nginx && values.blobs) targets.push(...(await nginxTargets(f, peers, log)));
    if (values.floor) {
      await startFloors(peers);
      targets.push(...peers.filter((s) => s.name.startsWith('floor')).map((floor) => floorTarget(floor, mirror.manifests)));
    }
    const plan = roundPlan({ rounds, blobMinBytes: Math.min(f.uniqueBlobBytes, 1500e6), wrkSeconds: wholeNumber('--manifest-seconds', values['manifest-seconds']!), undiciRequests: wholeNumber('--manifests', values.manifests!) });
    log(`load average before the loads: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} (1, 5, 15 min; 2 cores shared)`);
    const result = await loadInRounds(targets, plan, log);
    log(`load average after the loads: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    log(`medians of ${rounds} round(s), alternating order, (min–max) over the rounds:`);
    const summary = summarize(result);
    for (const t of summary) for (const line of describe(t)) log(line);
    for (const line of targetLines(summary, result)) log(line);
    log(`serve peak RSS ${((await peakRssOf(serve.pid)) / 1e6).toFixed(0)} MB (target < 150 MB)`);
  } finally {
    for (const peer of peers) await peer.stop();
    await serve.stop();
    await rm(state, { force: true });
  }
} finally {
  await f.registry.stop();
}
