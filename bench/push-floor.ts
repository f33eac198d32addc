// The ingest floor of `bundle push`: every unique blob of a list PUT once into a registry by a minimal
// parallel client (POST, then one monolithic PUT streamed from the file), no HEAD, no mount, no check of
// our own. A push cannot place the same blobs faster on the same machine; bench/push.ts times it as a child.
// Run: node dist/bench/push-floor.js BLOBS.json CONCURRENCY   (BLOBS.json: { origin, blobs: [{ repository, file, digest, size }] })

import { createReadStream } from 'node:fs';
import { Pool } from 'undici';
import { largestFirst, readFloorList } from './floor-list.js';

interface FloorBlob {
  readonly repository: string;
  readonly file: string;
  readonly digest: string;
  readonly size: number;
}

const { origin, blobs, concurrency } = await readFloorList<FloorBlob>('usage: node dist/bench/push-floor.js BLOBS.json CONCURRENCY');
const pool = new Pool(origin, { connections: concurrency });
let bytes = 0;

async function putOne(blob: FloorBlob): Promise<void> {
  const started = await pool.request({ method: 'POST', path: `/v2/${blob.repository}/blobs/uploads/` });
  await started.body.dump();
  const location = started.headers.location;
  if (started.statusCode !== 202 || typeof location !== 'string') throw new Error(`${blob.repository}: POST answered HTTP ${started.statusCode}`);
  const url = new URL(location, origin);
  url.searchParams.set('digest', blob.digest);
  const res = await pool.request({
    method: 'PUT',
    path: `${url.pathname}${url.search}`,
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(blob.size) },
    body: createReadStream(blob.file),
  });
  await res.body.dump();
  if (res.statusCode !== 201) throw new Error(`${blob.repository}@${blob.digest}: PUT answered HTTP ${res.statusCode}`);
  bytes += blob.size;
}

await largestFirst(blobs, concurrency, putOne);
await pool.close();
process.stdout.write(`${JSON.stringify({ blobs: blobs.length, bytes })}\n`);
