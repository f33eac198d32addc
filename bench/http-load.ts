// Load generators for registry servers, the same undici client for every server measured: blob download
// throughput at a given concurrency, and manifest GET latency percentiles.

import { Agent, request } from 'undici';

export interface BlobTarget {
  /** Path and query after the origin, e.g. /v2/ns/repo/blobs/sha256:…?ns=quay.io */
  readonly path: string;
  readonly size: number;
}

export interface Throughput {
  readonly concurrency: number;
  readonly bytes: number;
  readonly seconds: number;
  readonly mbPerS: number;
  readonly requests: number;
}

/**
 * `concurrency` workers fetch blobs round-robin (bodies drained, not kept) until `minBytes` have been
 * read and at least `minSeconds` passed, then report MB/s (10^6 bytes per second).
 */
export async function blobThroughput(origin: string, blobs: readonly BlobTarget[], concurrency: number, minBytes: number, minSeconds = 2): Promise<Throughput> {
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
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = elapsed();
  await agent.close();
  return { concurrency, bytes, seconds, mbPerS: bytes / 1e6 / seconds, requests };
}

export interface Latency {
  readonly clients: number;
  readonly requests: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

/** `clients` workers GET manifests (by digest, with a real Accept header) `total` times in all; latency per request. */
export async function manifestLatency(origin: string, paths: readonly string[], clients: number, total: number, accept: string): Promise<Latency> {
  const agent = new Agent({ connections: clients, pipelining: 1 });
  const samples: number[] = [];
  let next = 0;
  const worker = async () => {
    while (next < total) {
      const p = paths[next++ % paths.length]!;
      const t0 = process.hrtime.bigint();
      const res = await request(origin + p, { dispatcher: agent, headers: { accept } });
      await res.body.arrayBuffer();
      samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
      if (res.statusCode !== 200) throw new Error(`GET ${p}: ${res.statusCode}`);
    }
  };
  // Warm the connections and any caches first: the steady state is what a node pull sees.
  await Promise.all(Array.from({ length: clients }, async (_, i) => (await request(origin + paths[i % paths.length]!, { dispatcher: agent, headers: { accept } })).body.arrayBuffer()));
  await Promise.all(Array.from({ length: clients }, worker));
  await agent.close();
  samples.sort((a, b) => a - b);
  const pct = (p: number) => samples[Math.min(samples.length - 1, Math.floor((p / 100) * samples.length))]!;
  return { clients, requests: samples.length, p50Ms: pct(50), p99Ms: pct(99), maxMs: samples.at(-1)! };
}
