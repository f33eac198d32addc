// The ingest floor of `bundle push`: every unique blob of a list PUT once into a registry by a minimal
// parallel client (POST, then one monolithic PUT streamed from the file), no HEAD, no mount, no check of
// our own. A push cannot place the same blobs faster on the same machine; bench/push.ts times it as a child.
// Run: node dist/bench/push-floor.js BLOBS.json CONCURRENCY   (BLOBS.json: { origin, blobs: [{ repository, file, digest, size }] })

import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { Pool } from 'undici';

interface FloorBlob {
  readonly repository: string;
  readonly file: string;
  readonly digest: string;
  readonly size: number;
}

const [listFile, concurrencyText] = process.argv.slice(2);
if (!listFile || !concurrencyText) {
  process.stderr.write('usage: node dist/bench/push-floor.js BLOBS.json CONCURRENCY\n');
  process.exit(2);
}
const { origin, blobs } = JSON.parse(await readFile(listFile, 'utf8')) as { origin: string; blobs: FloorBlob[] };
const concurrency = Number(concurrencyText);
const pool = new Pool(origin, { connections: concurrency });
// Largest first, as the push orders its uploads.
const queue = [...blobs].sort((a, b) => b.size - a.size);
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

await Promise.all(
  Array.from({ length: concurrency }, async () => {
    for (let blob = queue.shift(); blob; blob = queue.shift()) await putOne(blob);
  }),
);
await pool.close();
process.stdout.write(`${JSON.stringify({ blobs: blobs.length, bytes })}\n`);
