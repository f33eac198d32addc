// `node dist/bench/delta.js`: the day-2 size targets of issue 13 on two z-streams of the sample (a fifth of the
// components rebuilt), measured on the real bundle files `bundle create` writes, side by side:
// - a delta (`--since` the first release's bundle) against the new blobs' bytes: target ≤ 1.3 × new + 1 MiB;
// - a two-release range bundle (`--channel` from A to B, through a local update graph of the real shape)
//   against the unique bytes of the union of the two releases' blobs: ≤ 1.02 ×;
// - and, for scale, the full bundle of the new release that a delta replaces.
//
// Flags: --components N (default 60: the ~1 GB default fixture of bench/run.ts), --changed-share X (0.2),
// --work DIR (kept; otherwise a temp dir, removed).

import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openBundle } from '../src/bundle/reader.js';
import type { BundleManifest } from '../src/bundle/format.js';
import { generateSampleRelease, pushLayout, RELEASE_REPOSITORY, type SampleParams } from '../src/sample/index.js';
import { startDockerRegistry } from '../test/support/docker-registry.js';
import { benchArgs } from './args.js';
import { mustSucceed, timed } from './proc.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const MiB = 1024 * 1024;
const log = (line: string) => process.stderr.write(`bench-delta: ${line}\n`);

const USAGE = `usage: node dist/bench/delta.js [--components N] [--changed-share X] [--work DIR]`;

interface Made {
  readonly manifest: BundleManifest;
  /** The tar's bytes: what crosses the air gap (headers and padding included). */
  readonly totalSize: number;
  readonly seconds: number;
}

async function main(): Promise<void> {
  const values = benchArgs(USAGE, { components: { type: 'string', default: '60' }, 'changed-share': { type: 'string', default: '0.2' }, work: { type: 'string' } });
  const components = Number(values.components);
  const changedShare = Number(values['changed-share']);
  const work = values.work ? path.resolve(values.work) : await mkdtemp(path.join(os.tmpdir(), 'pin-preload-bench-delta-'));
  await mkdir(path.join(work, 'bundles'), { recursive: true });
  // The ~1 GB default fixture of bench/run.ts, in two z-streams of one seed. The first has no component
  // depending on its version, the second rebuilds `changedShare` of them: the two differ in exactly that
  // share (had both a share, each would rebuild its own random choice and they would differ in the union).
  const params: Partial<SampleParams> = { components, baseLayers: 3, baseLayerSize: 48 * MiB, componentLayers: 2, componentLayerSize: 6 * MiB, compressionLevel: 1, extraImages: 4 };
  const registry = await startDockerRegistry({ storageDir: path.join(work, 'registry-storage') });
  let graph: http.Server | undefined;
  try {
    const releases: string[] = [];
    for (const [version, share] of [['4.16.0-bench', 0], ['4.16.1-bench', changedShare]] as const) {
      const t0 = Date.now();
      const sample = await generateSampleRelease(path.join(work, version), { ...params, version, changedShare: share });
      await pushLayout(sample.dir, registry.url, { concurrency: 8 });
      log(`${version}: ${sample.images.length} images, ${sample.blobs} blobs, ${(sample.totalBytes / 1e9).toFixed(2)} GB, generated and pushed in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      releases.push(`${RELEASE_REPOSITORY}@${sample.releaseDigest}`);
    }
    const conf = path.join(work, 'registries.conf');
    await writeFile(conf, `[[registry]]\nprefix = "quay.io"\nlocation = "${registry.host}"\ninsecure = true\n`);
    const authfile = path.join(work, 'auth.json');
    await writeFile(authfile, '{"auths":{}}');
    const create = async (name: string, ...args: string[]): Promise<Made> => {
      const output = path.join(work, 'bundles', name);
      await rm(`${output}.seal.json`, { force: true });
      const run = mustSucceed(await timed([process.execPath, CLI, 'bundle', 'create', '--platform', 'linux/amd64', '--registries-conf', conf, '--authfile', authfile, '--output', output, '--quiet', ...args], { env: { ...process.env, SOURCE_DATE_EPOCH: '1700000000' } }));
      const opened = await openBundle(`${output}.seal.json`);
      try {
        log(`${name}: ${opened.manifest.blobs.length} blobs, ${(opened.totalSize / 1e6).toFixed(1)} MB in ${(run.wallMs / 1000).toFixed(1)} s`);
        return { manifest: opened.manifest, totalSize: opened.totalSize, seconds: run.wallMs / 1000 };
      } finally {
        await opened.close();
      }
    };
    const full0 = await create('full-0.tar', '--release', releases[0]!);
    const full1 = await create('full-1.tar', '--release', releases[1]!);
    const delta = await create('delta-1.tar', '--release', releases[1]!, '--since', path.join(work, 'bundles', 'full-0.tar'));
    // The update graph a channel request reads (nodes + edges), served on 127.0.0.1: 4.16.0 → 4.16.1.
    const body = JSON.stringify({ nodes: releases.map((payload, i) => ({ version: `4.16.${i}-bench`, payload, metadata: {} })), edges: [[0, 1]], conditionalEdges: [] });
    graph = http.createServer((_req, res) => void res.writeHead(200, { 'Content-Type': 'application/json' }).end(body));
    await new Promise<void>((resolve) => graph!.listen(0, '127.0.0.1', resolve));
    const graphUrl = `http://127.0.0.1:${(graph.address() as AddressInfo).port}/graph`;
    const range = await create('range-0-1.tar', '--channel', 'bench-4.16', '--min-version', '4.16.0-bench', '--max-version', '4.16.1-bench', '--graph-url', graphUrl);
    if (range.manifest.releases?.length !== 2) throw new Error(`the range bundle holds ${range.manifest.releases?.length ?? 0} release(s), not 2`);

    const had = new Set(full0.manifest.blobs.map((b) => b.digest as string));
    const newBytes = full1.manifest.blobs.filter((b) => !had.has(b.digest)).reduce((n, b) => n + b.size, 0);
    const union = new Map([...full0.manifest.blobs, ...full1.manifest.blobs].map((b) => [b.digest as string, b.size]));
    const unionBytes = [...union.values()].reduce((n, s) => n + s, 0);
    const deltaLimit = 1.3 * newBytes + MiB;
    const rangeLimit = 1.02 * unionBytes;
    const rows = [
      ['bundle', 'bytes', 'reference', 'ratio', 'target', 'met'],
      ['delta 4.16.0 → 4.16.1', String(delta.totalSize), `new blobs ${newBytes}`, (delta.totalSize / newBytes).toFixed(3), `≤ 1.3 × new + 1 MiB = ${Math.floor(deltaLimit)}`, delta.totalSize <= deltaLimit ? 'yes' : 'NO'],
      ['range 4.16.0 + 4.16.1', String(range.totalSize), `union ${unionBytes}`, (range.totalSize / unionBytes).toFixed(4), `≤ 1.02 × union = ${Math.floor(rangeLimit)}`, range.totalSize <= rangeLimit ? 'yes' : 'NO'],
      ['full 4.16.1 (no delta)', String(full1.totalSize), `delta is ${((delta.totalSize / full1.totalSize) * 100).toFixed(1)} % of it`, '', '', ''],
    ];
    const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
    process.stdout.write(`${rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd()).join('\n')}\n`);
    process.stdout.write(`${JSON.stringify({ components, changedShare, newBytes, unionBytes, delta: delta.totalSize, range: range.totalSize, full1: full1.totalSize, full0: full0.totalSize, deltaCarriedManifestsConfigs: delta.manifest.blobs.filter((b) => b.role !== 'layer').reduce((n, b) => n + b.size, 0), seconds: { full0: full0.seconds, full1: full1.seconds, delta: delta.seconds, range: range.seconds } })}\n`);
  } finally {
    if (graph) await new Promise<void>((resolve) => graph!.close(() => resolve()));
    await registry.stop();
    if (!values.work) await rm(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench-delta: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exitCode = 1;
});
