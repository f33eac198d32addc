// Benchmark: `bundle create` and `bundle verify` throughput on a synthetic multi-GB bundle, against
// `openssl dgst -sha256` over the same volume files, from the page cache (create just wrote them).
// Run: node dist/bench/bundle-verify.js [GiB] [splitGiB]  (BENCH_ROUNDS=3; each round: openssl, verify, verify --volume-checksums)

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { createBundle } from '../src/bundle/writer.js';
import { verifyBundle } from '../src/bundle/verify.js';
import { keystream } from '../src/sample/keystream.js';
import type { ImageSource } from '../src/registry/source.js';
import type { Digest } from '../src/oci/digest.js';
import { blobContents, testImage, testPlan } from '../test/support/bundle-plans.js';
import { formatBytes } from '../src/util/size.js';

const totalGiB = Number(process.argv[2] ?? 2);
const splitGiB = process.argv[3] !== undefined ? Number(process.argv[3]) : undefined;
const LAYER = 256 * 1024 * 1024;
const layers = Math.max(1, Math.round((totalGiB * 2 ** 30) / LAYER));

// Layers are keystreams; their digests come from one hashing pass before the bundle is written.
const layerDigests = new Map<Digest, string>();
for (let i = 0; i < layers; i++) {
  const h = createHash('sha256');
  for (const chunk of keystream(`layer-${i}`, LAYER)) h.update(chunk);
  layerDigests.set(`sha256:${h.digest('hex')}` as Digest, `layer-${i}`);
}
// A small real image for the manifest and config; its layer list is then pointed at the big layers.
const image = testImage({ domain: 'quay.io', path: 'bench/big' }, 'big', [Buffer.from('x')]);
const plan0 = testPlan([image]);
const small = blobContents([image]);
const bigBlobs = [...layerDigests.keys()].map((digest) => ({ digest, size: LAYER, mediaType: 'application/vnd.oci.image.layer.v1.tar', role: 'layer' as const, repositories: ['quay.io/bench/big'], uncompressedSize: LAYER, uncompressedEstimated: false }));
const plan = { ...plan0, blobs: [...plan0.blobs, ...bigBlobs].sort((a, b) => (a.digest < b.digest ? -1 : 1)), images: [{ ...plan0.images[0]!, blobs: [...plan0.images[0]!.blobs, ...layerDigests.keys()] }] };

const source: ImageSource = {
  getManifest: async () => {
    throw new Error('manifests come with the plan');
  },
  blobStream: (_repo, blob, options = {}) => {
    const label = layerDigests.get(blob.digest);
    if (!label) return Readable.from([small.get(blob.digest)!.subarray(options.offset ?? 0)]);
    return Readable.from(keystream(label, LAYER));
  },
};

const dir = await mkdtemp(path.join(process.env.BENCH_DIR ?? os.tmpdir(), 'pin-preload-bench-'));
try {
  const output = path.join(dir, 'bench.tar');
  let t = performance.now();
  const result = await createBundle({ plan, source, output, created: '2024-01-01T00:00:00Z', ...(splitGiB ? { splitSize: splitGiB * 2 ** 30 } : {}) });
  const createSeconds = (performance.now() - t) / 1000;
  console.log(`create: ${formatBytes(result.totalSize)} in ${result.volumes.length} volume(s), ${createSeconds.toFixed(2)} s, ${formatBytes(result.totalSize / createSeconds)}/s`);
  const files = result.volumes.map((v) => v.path);
  const rate = (seconds: number) => `${seconds.toFixed(2)} s (${formatBytes(result.totalSize / seconds)}/s)`;
  const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
  for (let round = 0; round < rounds; round++) {
    t = performance.now();
    execFileSync('openssl', ['dgst', '-sha256', ...files]);
    const openssl = (performance.now() - t) / 1000;
    t = performance.now();
    const report = await verifyBundle(output);
    const verify = (performance.now() - t) / 1000;
    if (!report.ok) throw new Error(JSON.stringify(report.problems));
    t = performance.now();
    const full = await verifyBundle(output, { volumeChecksums: true });
    const withVolumes = (performance.now() - t) / 1000;
    if (!full.ok) throw new Error(JSON.stringify(full.problems));
    console.log(
      `round ${round + 1}: openssl dgst -sha256 ${rate(openssl)}; bundle verify ${rate(verify)} = ${(openssl / verify).toFixed(2)}× openssl ` +
        `(${report.blobsChecked} blobs, skeleton compared); --volume-checksums ${rate(withVolumes)} = ${(openssl / withVolumes).toFixed(2)}×`,
    );
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
