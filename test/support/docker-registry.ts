// Debian's docker-registry (distribution 2.8) started on 127.0.0.1 with a temp storage dir, for tests,
// benchmarks and fault injection. Every test that starts one stops it.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { stopChild } from '../../src/util/child-process.js';
import { freePort, waitFor } from './ports.js';

export interface RunningRegistry {
  /** "127.0.0.1:PORT" — what registries.conf and references use. */
  readonly host: string;
  /** "http://127.0.0.1:PORT" */
  readonly url: string;
  readonly rootDir: string;
  /** The registry's process (benchmarks read its CPU time from /proc). */
  readonly pid: number;
  stop(): Promise<void>;
}

export interface RegistryOptions {
  /** Extra YAML for the `auth:` section (e.g. token auth for bearer tests). */
  readonly authYaml?: string;
  readonly storageDir?: string;
}

export async function startDockerRegistry(options: RegistryOptions = {}): Promise<RunningRegistry> {
  const port = await freePort();
  const work = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-registry-'));
  const rootDir = options.storageDir ?? path.join(work, 'storage');
  const config = [
    'version: 0.1',
    'log:',
    '  level: error',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${rootDir}`,
    '  delete:',
    '    enabled: true',
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    '  secret: pin-preload-tests',
    options.authYaml ?? '',
  ].join('\n');
  const configFile = path.join(work, 'config.yml');
  await writeFile(configFile, config);
  const child: ChildProcess = spawn('docker-registry', ['serve', configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const url = `http://127.0.0.1:${port}`;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await waitFor(`docker-registry on ${url}`, async () => {
      if (child.exitCode !== null) throw new Error(`docker-registry exited: ${stderr}`);
      const res = await fetch(`${url}/v2/`);
      return res.status === 200 || res.status === 401;
    });
  } catch (err) {
    child.kill('SIGKILL');
    await exited;
    await rm(work, { recursive: true, force: true });
    throw err;
  }
  return {
    host: `127.0.0.1:${port}`,
    url,
    rootDir,
    pid: child.pid!,
    async stop() {
      await stopChild(child, 3000);
      await rm(work, { recursive: true, force: true });
    },
  };
}

/**
 * A registries.conf sending the sample's registries (quay.io, registry.example.com) to `registry` over plain
 * HTTP, and an empty auth file, both in `dir`: what a test passes as --registries-conf and --authfile.
 */
export async function writeSampleSourceConfig(dir: string, registry: Pick<RunningRegistry, 'host'>): Promise<{ conf: string; authfile: string }> {
  const conf = path.join(dir, 'registries.conf');
  await writeFile(conf, ['quay.io', 'registry.example.com'].map((p) => `[[registry]]\nprefix = "${p}"\nlocation = "${registry.host}"\ninsecure = true\n`).join('\n'));
  const authfile = path.join(dir, 'auth.json');
  await writeFile(authfile, '{"auths":{}}');
  return { conf, authfile };
}
