// The pull floor of `bundle create`: every unique blob of a fixture downloaded once from the registry, at the
// given concurrency, each checked against its digest, nothing written. A create cannot be faster than this
// on the same machine; bench/speed.ts runs it as a child, timed like create, side by side with it.
// Run: node dist/bench/pull-floor.js BLOBS.json CONCURRENCY   (BLOBS.json: { origin, blobs: [{ path, digest, size }] })

import { createHash } from 'node:crypto';
import { Pool } from 'undici';
import { largestFirst, readFloorList } from './floor-list.js';

interface FloorBlob {
  readonly path: string;
  readonly digest: string;
  readonly size: number;
}

const { origin, blobs, concurrency } = await readFloorList<FloorBlob>('usage: node dist/bench/pull-floor.js BLOBS.json CONCURRENCY');
const pool = new Pool(origin, { connections: concurrency });
let bytes = 0;

async function fetchOne(blob: FloorBlob): Promise<void> {
  const res = await pool.request({ method: 'GET', path: blob.path });
  if (res.statusCode !== 200) throw new Error(`${blob.path}: HTTP ${res.statusCode}`);
  const hash = createHash('sha256');
  for await (const chunk of res.body) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  const actual = `sha256:${hash.digest('hex')}`;
  if (actual !== blob.digest) throw new Error(`${blob.path}: content has digest ${actual}`);
}

await largestFirst(blobs, concurrency, fetchOne);
await pool.close();
process.stdout.write(`${JSON.stringify({ blobs: blobs.length, bytes })}\n`);
