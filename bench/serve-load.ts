// The mirror's part of the benchmark alone, for tuning: one bundle (built once per work dir and kept), then
// `pin-preload serve` under manifest GET load (16 clients) and blob load, access log on or off, peak RSS.
//
// node dist/bench/serve-load.js [--work DIR] [--components N] [--base-layer-mib N] [--access-log] [--blobs]
//   [--manifests N] [--node-flags "--cpu-prof --cpu-prof-dir=/tmp/prof"] [--runs N] [--registry]

import { spawn } from 'node:child_process';
import { mkdir, readFile, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { freePort, waitFor } from '../test/support/ports.js';
import { MANIFEST_ACCEPT, prepareFixture, registryPath } from './fixture.js';
import { blobThroughput, manifestLatency } from './http-load.js';
import { mustSucceed, peakRssOf, timed } from './proc.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const MiB = 1024 * 1024;
const log = (line: string) => process.stderr.write(`serve-load: ${line}\n`);

/** CPU seconds (user + system) a process has used so far, from /proc/PID/stat (clock ticks of 10 ms). */
async function cpuSecondsOf(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

const { values } = parseArgs({
  options: {
    work: { type: 'string' },
    components: { type: 'string', default: '60' },
    'base-layer-mib': { type: 'string', default: '48' },
    'access-log': { type: 'boolean', default: false },
    blobs: { type: 'boolean', default: false },
    manifests: { type: 'string', default: '5000' },
    runs: { type: 'string', default: '3' },
    'node-flags': { type: 'string', default: '' },
    registry: { type: 'boolean', default: false },
  },
});

const params = { components: Number(values.components), baseLayers: 3, baseLayerSize: Number(values['base-layer-mib']) * MiB, componentLayers: 2, componentLayerSize: 6 * MiB, compressionLevel: 1, extraImages: 4 };
const work = values.work ?? path.join(os.tmpdir(), `pin-preload-serve-load-${params.components}c-${values['base-layer-mib']}b`);
const f = await prepareFixture(work, params, log);
try {
  const bundle = path.join(work, 'out', 'bench.tar');
  if (!(await stat(bundle).catch(() => undefined))) {
    await mkdir(path.dirname(bundle), { recursive: true });
    log('bundle create …');
    mustSucceed(
      await timed([process.execPath, CLI, 'bundle', 'create', '--registries-conf', f.registriesConf, '--authfile', f.authfile, '--release', f.sample.releaseReference,
        ...f.sample.extraImages.flatMap((e) => ['--image', e.reference]), '--platform', 'all', '--output', bundle, '--quiet'], { env: { SOURCE_DATE_EPOCH: '1700000000' } }),
    );
  }
  log(`bundle ${((await stat(bundle)).size / 1e6).toFixed(0)} MB, ${f.manifests.length} manifests, ${f.blobs.length} blobs`);
  const port = await freePort();
  const state = path.join(work, `serve-state-${port}.db`);
  const nodeFlags = values['node-flags']!.split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...nodeFlags, CLI, 'serve', '--bundle', bundle, '--state', state, '--listen', `127.0.0.1:${port}`, ...(values['access-log'] ? [] : ['--no-access-log'])], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const origin = `http://127.0.0.1:${port}`;
  try {
    await waitFor('serve', async () => (await fetch(`${origin}/v2/`)).status === 200, 120_000).catch((err: Error) => {
      throw new Error(`${err.message}\n${stderr}`);
    });
    const load = async (name: string, o: string, withNs: boolean) => {
      const manifests = f.manifests.map((m) => registryPath(m.repository, 'manifests', m.digest, withNs));
      for (let i = 0; i < Number(values.runs); i++) {
        const cpu0 = name === 'mirror' ? await cpuSecondsOf(child.pid!) : 0;
        const l = await manifestLatency(o, manifests, 16, Number(values.manifests), MANIFEST_ACCEPT);
        const cpu = name === 'mirror' ? `, server CPU ${(((await cpuSecondsOf(child.pid!)) - cpu0) * 1000 / l.requests).toFixed(3)} ms/request` : '';
        log(`${name} manifest GET, 16 clients, ${l.requests} requests: p50 ${l.p50Ms.toFixed(2)} ms, p99 ${l.p99Ms.toFixed(2)} ms, max ${l.maxMs.toFixed(2)} ms${cpu} (load ${os.loadavg()[0]!.toFixed(2)})`);
      }
      if (values.blobs) {
        const blobs = f.blobs.map((b) => ({ path: registryPath(b.repository, 'blobs', b.digest, withNs), size: b.size }));
        for (const c of [1, 4, 16]) {
          const t = await blobThroughput(o, blobs, c, Math.min(f.uniqueBlobBytes, 1500e6), 3);
          log(`${name} blob GET, concurrency ${c}: ${t.mbPerS.toFixed(0)} MB/s (${t.requests} requests)`);
        }
      }
    };
    await load('mirror', origin, true);
    log(`serve peak RSS ${((await peakRssOf(child.pid!)) / 1e6).toFixed(0)} MB`);
    if (values.registry) await load('docker-registry', f.registry.url, false);
  } finally {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
} finally {
  await f.registry.stop();
}
