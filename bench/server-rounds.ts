// Side-by-side loads on several registry servers in rounds whose order alternates (A B, B A, A B, …), so
// that a noisy minute on this shared machine hits every server alike; medians and ranges per measure.

import os from 'node:os';
import { MANIFEST_ACCEPT } from '../src/oci/media-types.js';
import type { ChildServer } from './servers.js';
import {
  blobThroughput,
  blobThroughputWrk,
  manifestLatency,
  readEveryBlobOnce,
  manifestLatencyWrk,
  wrkAvailable,
  WRK_MISSING,
  type BlobClient,
  type BlobTarget,
  type Latency,
  type LatencyGenerator,
  type Throughput,
} from './http-load.js';

export interface LoadTarget {
  /** "mirror", "docker-registry", "floor node:http", … */
  readonly name: string;
  readonly origin: string;
  /** Manifest request paths (with ?ns= for the mirror); none for a blob-only server (nginx). */
  readonly manifests: readonly string[];
  /** Blob loads only where given (the floor servers have no blobs). */
  readonly blobs?: readonly BlobTarget[];
  /** The server's process: its CPU per manifest GET and per GB of blobs served is recorded. */
  readonly pid?: number;
}

export interface RoundPlan {
  readonly rounds: number;
  readonly blobConcurrencies: readonly number[];
  readonly blobMinBytes: number;
  readonly blobMinSeconds: number;
  /** Manifest clients (connections with one request in flight each). */
  readonly clients: number;
  readonly accept: string;
  /** Measured seconds of each wrk run, after `wrkWarmUpSeconds` of discarded load. */
  readonly wrkSeconds: number;
  readonly wrkWarmUpSeconds: number;
  /** Manifest GETs of each undici run. */
  readonly undiciRequests: number;
}

export interface RoundSample {
  readonly round: number;
  readonly target: string;
  readonly throughput: readonly Throughput[];
  /** Absent when wrk is not installed, or the target has no manifests. */
  readonly wrk?: Latency;
  /** Absent when the target has no manifests. */
  readonly undici?: Latency;
  /** 1-minute load average when the target's round ended: context for an outlier. */
  readonly loadAverage: number;
}

export interface RoundsResult {
  /** The generator of the calibrated manifest latency (wrk, or undici when wrk is missing). */
  readonly generator: LatencyGenerator;
  readonly plan: RoundPlan;
  /** Per round, the order the targets ran in. */
  readonly order: readonly (readonly string[])[];
  readonly samples: readonly RoundSample[];
}

/** A floor server as a target: it answers any GET alike, so it gets the real servers' manifest paths, and no blob loads. */
export function floorTarget(floor: ChildServer, manifests: readonly string[]): LoadTarget {
  return { name: floor.name, origin: floor.origin, manifests, pid: floor.pid };
}

/** The plan both benches use (concurrency 1, 4, 16; 16 manifest clients; 2 s wrk warm-up) with their sizes. */
export function roundPlan(sizes: Pick<RoundPlan, 'rounds' | 'blobMinBytes' | 'wrkSeconds' | 'undiciRequests'>): RoundPlan {
  return { ...sizes, blobConcurrencies: [1, 4, 16], blobMinSeconds: 3, clients: 16, accept: MANIFEST_ACCEPT, wrkWarmUpSeconds: 2 };
}

/** The targets in round `round`'s order: as given on even rounds, reversed on odd ones. */
export function roundOrder<T>(targets: readonly T[], round: number): T[] {
  return round % 2 === 0 ? [...targets] : [...targets].reverse();
}

const fmtLatency = (l: Latency) =>
  `p50 ${l.p50Ms.toFixed(2)} ms, p99 ${l.p99Ms.toFixed(2)} ms, max ${l.maxMs.toFixed(2)} ms, ${l.requests} requests, ${l.requestsPerSecond.toFixed(0)}/s` +
  (l.serverCpuMsPerRequest === undefined ? '' : `, server CPU ${l.serverCpuMsPerRequest.toFixed(3)} ms/request`);

/**
 * One round's blob loads: first an untimed read of every blob through each server, then each load (a
 * concurrency with a client: undici, then wrk when it is installed) on every server back to back (order
 * reversed at every other load), so the two sides of a ratio run seconds apart, not a whole server's turn
 * (blob loads and manifest loads, up to a minute here) apart.
 *
 * The warm-up is every round, not once: other tenants evict page-cache pages between rounds (fincore showed
 * half of a 1.1 GB bundle gone between two runs), and the mirror reads its bundle tar while docker-registry
 * and nginx share one set of blob files, so one side could start a load reading from disk and the other not.
 */
async function blobLoads(targets: readonly LoadTarget[], plan: RoundPlan, round: number, clients: readonly BlobClient[], log: (line: string) => void): Promise<Map<string, Throughput[]>> {
  const withBlobs = targets.filter((t) => t.blobs);
  const measured = new Map<string, Throughput[]>(targets.map((t) => [t.name, []]));
  for (const target of withBlobs) {
    const t0 = process.hrtime.bigint();
    const warmed = await readEveryBlobOnce(target.origin, target.blobs!);
    log(`round ${round + 1}/${plan.rounds} ${target.name}: warm-up, every blob once, untimed: ${(warmed / 1e6).toFixed(0)} MB in ${(Number(process.hrtime.bigint() - t0) / 1e9).toFixed(1)} s`);
  }
  const loads = plan.blobConcurrencies.flatMap((concurrency) => clients.map((client) => ({ concurrency, client })));
  for (const [i, { concurrency: c, client }] of loads.entries()) {
    for (const target of roundOrder(withBlobs, i)) {
      const t =
        client === 'wrk'
          ? await blobThroughputWrk(target.origin, target.blobs!, c, plan.blobMinSeconds, target.pid)
          : await blobThroughput(target.origin, target.blobs!, c, plan.blobMinBytes, plan.blobMinSeconds, target.pid);
      const cpu = t.serverCpuMsPerGB === undefined ? '' : `, server CPU ${t.serverCpuMsPerGB.toFixed(0)} ms/GB`;
      log(`round ${round + 1}/${plan.rounds} ${target.name}: blob GET, concurrency ${c} (${client}): ${t.mbPerS.toFixed(0)} MB/s (${t.requests} requests${cpu})`);
      measured.get(target.name)!.push(t);
    }
  }
  return measured;
}

async function manifestLoads(target: LoadTarget, plan: RoundPlan, round: number, useWrk: boolean, throughput: readonly Throughput[], log: (line: string) => void): Promise<RoundSample> {
  const tag = `round ${round + 1}/${plan.rounds} ${target.name}`;
  if (target.manifests.length === 0) return { round, target: target.name, throughput, loadAverage: os.loadavg()[0]! };
  const load = { clients: plan.clients, accept: plan.accept, ...(target.pid === undefined ? {} : { serverPid: target.pid }) };
  let wrk: Latency | undefined;
  if (useWrk) {
    wrk = await manifestLatencyWrk(target.origin, target.manifests, { ...load, threads: 2, seconds: plan.wrkSeconds, warmUpSeconds: plan.wrkWarmUpSeconds });
    log(`${tag}: manifest GET, ${plan.clients} clients, wrk: ${fmtLatency(wrk)}`);
  }
  const undici = await manifestLatency(target.origin, target.manifests, { ...load, requests: plan.undiciRequests });
  log(`${tag}: manifest GET, ${plan.clients} clients, undici (bounded by the client): ${fmtLatency(undici)} (load ${os.loadavg()[0]!.toFixed(2)})`);
  return { round, target: target.name, throughput, ...(wrk ? { wrk } : {}), undici, loadAverage: os.loadavg()[0]! };
}

/**
 * Every target, every round, in alternating order. Per round: an untimed read of every blob through each
 * server, the blob loads interleaved per concurrency (blobLoads), then per target wrk and undici manifest latency.
 */
export async function loadInRounds(targets: readonly LoadTarget[], plan: RoundPlan, log: (line: string) => void): Promise<RoundsResult> {
  const useWrk = await wrkAvailable();
  if (!useWrk) log(`${WRK_MISSING}. Manifest latency falls back to the Node undici client, which bounds what it can show, and blobs are loaded by undici alone.`);
  const order: string[][] = [];
  const samples: RoundSample[] = [];
  for (let round = 0; round < plan.rounds; round++) {
    const targetsNow = roundOrder(targets, round);
    order.push(targetsNow.map((t) => t.name));
    const throughput = await blobLoads(targetsNow, plan, round, useWrk ? ['undici', 'wrk'] : ['undici'], log);
    for (const target of targetsNow) samples.push(await manifestLoads(target, plan, round, useWrk, throughput.get(target.name)!, log));
  }
  return { generator: useWrk ? 'wrk' : 'undici', plan, order, samples };
}

/** Median and range of one measure over the rounds. */
export interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

export function spread(samples: readonly number[]): Spread {
  if (samples.length === 0) throw new Error('no samples');
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0]!, max: sorted.at(-1)! };
}

export interface LatencySummary {
  readonly generator: LatencyGenerator;
  readonly p50Ms: Spread;
  readonly p99Ms: Spread;
  readonly maxMs: Spread;
  readonly requestsPerSecond: Spread;
  readonly serverCpuMsPerRequest?: Spread;
}

export interface TargetSummary {
  readonly name: string;
  /** Per load (a concurrency with a client), in the order measured: the same loads for every target with blobs. */
  readonly blobMBps: ReadonlyArray<{ readonly client: BlobClient; readonly concurrency: number; readonly mbPerS: Spread; readonly serverCpuMsPerGB?: Spread }>;
  readonly wrk?: LatencySummary;
  /** The latency summaries are absent for a blob-only target. */
  readonly undici?: LatencySummary;
  /** wrk when it ran, else undici: the latency checked against the target. */
  readonly calibrated?: LatencySummary;
}

function summarizeLatency(latencies: readonly Latency[]): LatencySummary {
  const cpu = latencies.flatMap((l) => (l.serverCpuMsPerRequest === undefined ? [] : [l.serverCpuMsPerRequest]));
  return {
    generator: latencies[0]!.generator,
    p50Ms: spread(latencies.map((l) => l.p50Ms)),
    p99Ms: spread(latencies.map((l) => l.p99Ms)),
    maxMs: spread(latencies.map((l) => l.maxMs)),
    requestsPerSecond: spread(latencies.map((l) => l.requestsPerSecond)),
    ...(cpu.length > 0 ? { serverCpuMsPerRequest: spread(cpu) } : {}),
  };
}

/** Per target: median and range over the rounds of every measure. */
export function summarize(result: RoundsResult): TargetSummary[] {
  const names = [...new Set(result.samples.map((s) => s.target))];
  return names.map((name) => {
    const mine = result.samples.filter((s) => s.target === name);
    const loads = mine[0]!.throughput.map((t) => ({ client: t.client, concurrency: t.concurrency }));
    const blobMBps = loads.map(({ client, concurrency }) => {
      const runs = mine.map((s) => s.throughput.find((t) => t.concurrency === concurrency && t.client === client)!);
      const cpu = runs.flatMap((t) => (t.serverCpuMsPerGB === undefined ? [] : [t.serverCpuMsPerGB]));
      return { client, concurrency, mbPerS: spread(runs.map((t) => t.mbPerS)), ...(cpu.length > 0 ? { serverCpuMsPerGB: spread(cpu) } : {}) };
    });
    const wrk = mine.every((s) => s.wrk) ? summarizeLatency(mine.map((s) => s.wrk!)) : undefined;
    const undici = mine.every((s) => s.undici) ? summarizeLatency(mine.map((s) => s.undici!)) : undefined;
    const calibrated = wrk ?? undici;
    return { name, blobMBps, ...(wrk ? { wrk } : {}), ...(undici ? { undici } : {}), ...(calibrated ? { calibrated } : {}) };
  });
}

/** "2.31 (2.10–2.62)": the median, then the range over the rounds when there was more than one. */
export function fmtSpread(s: Spread, digits: number, unit = ''): string {
  const u = unit ? ` ${unit}` : '';
  if (s.min === s.max) return `${s.median.toFixed(digits)}${u}`;
  return `${s.median.toFixed(digits)}${u} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`;
}
