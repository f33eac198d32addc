// The pull floor of `bundle create`: every unique blob of a fixture downloaded once from the registry, at the
// given concurrency, each checked against its digest, nothing written. A create cannot be faster than this
// on the same machine; bench/speed.ts runs it as a child, timed like create, side by side with it.
// Run: node dist/bench/pull-floor.js BLOBS.json CONCURRENCY   (BLOBS.json: { origin, blobs: [{ path, digest, size }] })

import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Pool } from 'undici';

interface FloorBlob {
  readonly path: string;
  readonly digest: string;
  readonly size: number;
}

const [listFile, concurrencyText] = process.argv.slice(2);
if (!listFile || !concurrencyText) {
  process.stderr.write('usage: node dist/bench/pull-floor.js BLOBS.json CONCURRENCY\n');
  process.exit(2);
}
const { origin, blobs } = JSON.parse(await readFile(listFile, 'utf8')) as { origin: string; blobs: FloorBlob[] };
const concurrency = Number(concurrencyText);
const pool = new Pool(origin, { connections: concurrency });
// Largest first, as create orders its layers, so neither side ends on one long download the other avoids.
const queue = [...blobs].sort((a, b) => b.size - a.size);
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

await Promise.all(
  Array.from({ length: concurrency }, async () => {
    for (let blob = queue.shift(); blob; blob = queue.shift()) await fetchOne(blob);
  }),
);
await pool.close();
process.stdout.write(`${JSON.stringify({ blobs: blobs.length, bytes })}\n`);
