// Load generators for registry servers, the same clients for every server measured: blob download throughput
// at a given concurrency (undici), and manifest GET latency percentiles from wrk or from undici.

import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Agent, request } from 'undici';
import { commandStarts, cpuSecondsOf } from './proc.js';

export interface BlobTarget {
  /** Path and query after the origin, e.g. /v2/ns/repo/blobs/sha256:…?ns=quay.io */
  readonly path: string;
  readonly size: number;
}

/**
 * Which client downloaded blobs. undici runs in the bench's own process: one JS thread that costs about a core
 * at 1 GB/s, on the same 2 cores as the server. wrk (C, one epoll thread here) reads 2.5 GB/s with less,
 * so what it measures at low concurrency is the server's own limit more than the client's.
 */
export type BlobClient = 'undici' | 'wrk';

export interface Throughput {
  readonly client: BlobClient;
  readonly concurrency: number;
  readonly bytes: number;
  readonly seconds: number;
  readonly mbPerS: number;
  readonly requests: number;
  /** The server's CPU (user + system) per GB served over the run, when its pid was given. */
  readonly serverCpuMsPerGB?: number;
}

/** Runs `measure`; with a server pid, also the CPU (user + system, ms) that server used over exactly that run. */
async function serverCpuDuring<T>(pid: number | undefined, measure: () => Promise<T>): Promise<{ result: T; cpuMs?: number }> {
  if (pid === undefined) return { result: await measure() };
  const cpu0 = await cpuSecondsOf(pid);
  const result = await measure();
  return { result, cpuMs: ((await cpuSecondsOf(pid)) - cpu0) * 1000 };
}

/**
 * GETs every blob once, one at a time, bodies drained: untimed, so that each server's timed loads start in the
 * same state. Without it the server whose files the page cache dropped (the mirror's bundle tar, or the blob
 * files docker-registry and nginx share) reads them from disk in its first load while the other is warm, and
 * a server that just started runs its first load unoptimized. Returns the bytes read.
 */
export async function readEveryBlobOnce(origin: string, blobs: readonly BlobTarget[]): Promise<number> {
  const agent = new Agent({ connections: 1, pipelining: 1 });
  let bytes = 0;
  try {
    for (const blob of blobs) {
      const res = await request(origin + blob.path, { dispatcher: agent });
      if (res.statusCode !== 200) throw new Error(`GET ${blob.path}: ${res.statusCode}`);
      for await (const chunk of res.body) bytes += (chunk as Buffer).length;
    }
  } finally {
    await agent.close();
  }
  return bytes;
}

/**
 * `concurrency` workers fetch blobs round-robin (bodies drained, not kept) until `minBytes` have been
 * read and at least `minSeconds` passed, then report MB/s (10^6 bytes per second).
 */
export async function blobThroughput(origin: string, blobs: readonly BlobTarget[], concurrency: number, minBytes: number, minSeconds = 2, serverPid?: number): Promise<Throughput> {
  const agent = new Agent({ connections: concurrency, pipelining: 1 });
  let next = 0;
  let bytes = 0;
  let requests = 0;
  const started = process.hrtime.bigint();
  const elapsed = () => Number(process.hrtime.bigint() - started) / 1e9;
  const worker = async () => {
    while (bytes < minBytes || elapsed() < minSeconds) {
      const blob = blobs[next++ % blobs.length]!;
      const res = await request(origin + blob.path, { dispatcher: agent });
      if (res.statusCode !== 200) throw new Error(`GET ${blob.path}: ${res.statusCode}`);
      for await (const chunk of res.body) bytes += (chunk as Buffer).length;
      requests++;
    }
  };
  const { result: seconds, cpuMs } = await serverCpuDuring(serverPid, async () => {
    await Promise.all(Array.from({ length: concurrency }, worker));
    return elapsed();
  });
  await agent.close();
  return { client: 'undici', concurrency, bytes, seconds, mbPerS: bytes / 1e6 / seconds, requests, ...(cpuMs === undefined ? {} : { serverCpuMsPerGB: cpuMs / (bytes / 1e9) }) };
}

/**
 * Which client measured a latency. undici runs in this Node process: with 16 clients its own event loop
 * queues the responses, so it measures about 1.6 ms p50 / 5–9 ms p99 even against a server that does
 * nothing. wrk (C, epoll, one event loop per thread) resolves that same server at well under 1 ms p50.
 */
export type LatencyGenerator = 'wrk' | 'undici';

export interface Latency {
  readonly generator: LatencyGenerator;
  readonly clients: number;
  readonly requests: number;
  /** Length of the measured part (after the warm-up). */
  readonly seconds: number;
  readonly requestsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** Server CPU (user + system) over the measured part divided by its requests, when the server's pid was given. */
  readonly serverCpuMsPerRequest?: number;
}

export interface ManifestLoad {
  /** Concurrent connections, each with one request in flight (closed loop). */
  readonly clients: number;
  /** The Accept header sent with every GET (containers/image's list: the server negotiates as for a real pull). */
  readonly accept: string;
  /** The server's process, when this bench started it: its CPU over the measured part is charged per request. */
  readonly serverPid?: number;
}

type Measured = Omit<Latency, 'serverCpuMsPerRequest'>;

/** Runs `measure` and, with a pid, adds the server's CPU per request over exactly that run. */
async function withServerCpu(pid: number | undefined, measure: () => Promise<Measured>): Promise<Latency> {
  const { result: latency, cpuMs } = await serverCpuDuring(pid, measure);
  return cpuMs === undefined ? latency : { ...latency, serverCpuMsPerRequest: cpuMs / latency.requests };
}

/** `clients` undici workers GET manifests (by digest, with the Accept header) `requests` times in all; latency per request. */
export async function manifestLatency(origin: string, paths: readonly string[], load: ManifestLoad & { readonly requests: number }): Promise<Latency> {
  const agent = new Agent({ connections: load.clients, pipelining: 1 });
  const headers = { accept: load.accept };
  try {
    // Warm the connections and any caches first: the steady state is what a node pull sees.
    await Promise.all(Array.from({ length: load.clients }, async (_, i) => (await request(origin + paths[i % paths.length]!, { dispatcher: agent, headers })).body.arrayBuffer()));
    return await withServerCpu(load.serverPid, async () => {
      const samples: number[] = [];
      let next = 0;
      const worker = async () => {
        while (next < load.requests) {
          const p = paths[next++ % paths.length]!;
          const t0 = process.hrtime.bigint();
          const res = await request(origin + p, { dispatcher: agent, headers });
          await res.body.arrayBuffer();
          samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
          if (res.statusCode !== 200) throw new Error(`GET ${origin}${p}: ${res.statusCode}`);
        }
      };
      const started = process.hrtime.bigint();
      await Promise.all(Array.from({ length: load.clients }, worker));
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      samples.sort((a, b) => a - b);
      const pct = (p: number) => samples[Math.min(samples.length - 1, Math.floor((p / 100) * samples.length))]!;
      return { generator: 'undici', clients: load.clients, requests: samples.length, seconds, requestsPerSecond: samples.length / seconds, p50Ms: pct(50), p99Ms: pct(99), maxMs: samples.at(-1)! };
    });
  } finally {
    await agent.close();
  }
}

export const WRK_MISSING = 'wrk is not installed (no `wrk` on PATH): install it with `apt-get install -y wrk` (Debian/Ubuntu package wrk)';

/** Whether a `wrk` binary can be started (probed once per process). */
export function wrkAvailable(): Promise<boolean> {
  return commandStarts('wrk');
}

const WRK_RESULT = 'pin-preload-wrk-result ';

/**
 * The wrk script. Arguments after "--": the Accept header, then the request paths. Each thread rotates
 * through pre-built requests. With `everyStatus`, response() runs in each thread's own Lua state, so non-200
 * answers are counted there and summed in done() through the thread handles kept by setup()
 * (summary.errors.status alone would miss 2xx/3xx answers other than 200). Without it only statuses ≥ 400
 * are seen (summary.errors.status): defining response() makes wrk keep every body for it, which for blobs
 * of 50 MB would measure wrk's copying. done() prints one JSON line of exact percentiles (wrk keeps a
 * histogram of every microsecond value).
 */
const wrkScript = (everyStatus: boolean): string => String.raw`
local threads = {}
non200 = 0
first_non200 = 0
local requests = {}
local next_request = 0

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  for i = 2, #args do
    requests[#requests + 1] = wrk.format("GET", args[i], { ["Accept"] = args[1] })
  end
end

function request()
  next_request = next_request % #requests + 1
  return requests[next_request]
end

${everyStatus ? RESPONSE_HOOK : ''}
function done(summary, latency, rates)
  local bad, first = 0, 0
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("non200")
    if first == 0 then first = thread:get("first_non200") end
  end
  local e = summary.errors
  io.write(string.format('${WRK_RESULT}{"requests":%d,"bytes":%d,"durationUs":%d,"p50Us":%d,"p99Us":%d,"maxUs":%d,' ..
    '"connectErrors":%d,"readErrors":%d,"writeErrors":%d,"timeouts":%d,"statusErrors":%d,"non200":%d,"firstNon200":%d}\n',
    summary.requests, summary.bytes, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.timeout, e.status, bad, first))
end
`;

const RESPONSE_HOOK = String.raw`
function response(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
    if first_non200 == 0 then first_non200 = status end
  end
end
`;

interface WrkResult {
  readonly requests: number;
  /** Response bytes read, headers included. */
  readonly bytes: number;
  readonly durationUs: number;
  readonly p50Us: number;
  readonly p99Us: number;
  readonly maxUs: number;
  readonly connectErrors: number;
  readonly readErrors: number;
  readonly writeErrors: number;
  readonly timeouts: number;
  /** Answers with a status ≥ 400 (wrk's own count, kept also without the response hook). */
  readonly statusErrors: number;
  readonly non200: number;
  readonly firstNon200: number;
}

export interface WrkLoad extends ManifestLoad {
  /** wrk threads (each an epoll loop); the clients are spread over them. */
  readonly threads: number;
  readonly seconds: number;
  /** A first run, discarded: the server's first seconds include JIT warm-up. */
  readonly warmUpSeconds?: number;
}

/** Runs wrk once with the script and fails unless every answer was a 200 and no socket failed. */
async function runWrk(script: string, origin: string, paths: readonly string[], load: WrkLoad, seconds: number): Promise<WrkResult> {
  // A request slower than the timeout would be dropped from the percentiles: make it generous.
  const duration = `${Math.max(1, Math.round(seconds))}s`; // wrk takes whole seconds
  const args = ['-t', String(load.threads), '-c', String(load.clients), '-d', duration, '--timeout', '10s', '-s', script, `${origin}/`, '--', load.accept, ...paths];
  const child = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  // wrk stops itself after `seconds`; the kill is only for a wrk that hangs.
  const killer = setTimeout(() => child.kill('SIGKILL'), (seconds + 30) * 1000);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', (err: NodeJS.ErrnoException) => reject(err.code === 'ENOENT' ? new Error(WRK_MISSING) : err));
    child.once('close', resolve);
  }).finally(() => clearTimeout(killer));
  const line = stdout.split('\n').find((l) => l.startsWith(WRK_RESULT));
  if (code !== 0 || !line) throw new Error(`wrk against ${origin} failed (exit ${code}):\n${stdout.slice(-2000)}\n${stderr}`);
  const result = JSON.parse(line.slice(WRK_RESULT.length)) as WrkResult;
  if (result.non200 > 0) throw new Error(`wrk: ${result.non200} of ${result.requests} answers from ${origin} were not 200 (the first: ${result.firstNon200})`);
  if (result.statusErrors > 0) throw new Error(`wrk: ${result.statusErrors} of ${result.requests} answers from ${origin} had a status of 400 or more`);
  const failed = result.connectErrors + result.readErrors + result.writeErrors + result.timeouts;
  if (failed > 0) throw new Error(`wrk against ${origin}: ${result.connectErrors} connect, ${result.readErrors} read, ${result.writeErrors} write errors, ${result.timeouts} timeouts`);
  return result;
}

/** The wrk script (wrkScript) in a temp dir for the length of `use`. */
async function withWrkScript<T>(everyStatus: boolean, use: (script: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-wrk-'));
  const script = path.join(dir, 'rotate.lua');
  try {
    await writeFile(script, wrkScript(everyStatus));
    return await use(script);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * wrk, one thread with `concurrency` connections, GETs the blobs round-robin (the same list as blobThroughput)
 * for `seconds`; MB/s over the response bytes (headers are under 0.1 % of them here). An answer ≥ 400 fails it.
 */
export async function blobThroughputWrk(origin: string, blobs: readonly BlobTarget[], concurrency: number, seconds: number, serverPid?: number): Promise<Throughput> {
  const load: WrkLoad = { clients: concurrency, accept: '*/*', threads: 1, seconds };
  const paths = blobs.map((b) => b.path);
  return withWrkScript(false, async (script) => {
    const { result: r, cpuMs } = await serverCpuDuring(serverPid, () => runWrk(script, origin, paths, load, seconds));
    const measured = r.durationUs / 1e6;
    return { client: 'wrk', concurrency, bytes: r.bytes, seconds: measured, mbPerS: r.bytes / 1e6 / measured, requests: r.requests, ...(cpuMs === undefined ? {} : { serverCpuMsPerGB: cpuMs / (r.bytes / 1e9) }) };
  });
}

/** wrk GETs the manifests round-robin from `clients` connections for `seconds` after a warm-up; exact percentiles. */
export async function manifestLatencyWrk(origin: string, paths: readonly string[], load: WrkLoad): Promise<Latency> {
  return withWrkScript(true, async (script) => {
    const warmUp = load.warmUpSeconds ?? 2;
    if (warmUp > 0) await runWrk(script, origin, paths, load, warmUp);
    return withServerCpu(load.serverPid, async () => {
      const r = await runWrk(script, origin, paths, load, load.seconds);
      const seconds = r.durationUs / 1e6;
      return { generator: 'wrk', clients: load.clients, requests: r.requests, seconds, requestsPerSecond: r.requests / seconds, p50Ms: r.p50Us / 1000, p99Ms: r.p99Us / 1000, maxMs: r.maxUs / 1000 };
    });
  });
}
