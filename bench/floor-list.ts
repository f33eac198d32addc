// What the floor clients (pull-floor.ts, push-floor.ts) share: their command line (a blob list file and a
// concurrency) and a worker pool that takes the blobs largest first, as pin-preload orders its transfers.

import { readFile } from 'node:fs/promises';

/** Reads `{ origin, blobs }` from the file named by the first argument; exits 2 with `usage` when arguments are missing. */
export async function readFloorList<B>(usage: string): Promise<{ origin: string; blobs: B[]; concurrency: number }> {
  const [listFile, concurrencyText] = process.argv.slice(2);
  if (!listFile || !concurrencyText) {
    process.stderr.write(`${usage}\n`);
    process.exit(2);
  }
  const { origin, blobs } = JSON.parse(await readFile(listFile, 'utf8')) as { origin: string; blobs: B[] };
  return { origin, blobs, concurrency: Number(concurrencyText) };
}

/** `concurrency` workers over the blobs, largest first, so neither side ends on one long transfer the other avoids. */
export async function largestFirst<B extends { readonly size: number }>(blobs: readonly B[], concurrency: number, work: (blob: B) => Promise<void>): Promise<void> {
  const queue = [...blobs].sort((a, b) => b.size - a.size);
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let blob = queue.shift(); blob; blob = queue.shift()) await work(blob);
    }),
  );
}
