// The servers a benchmark starts as child processes on 127.0.0.1 (pin-preload serve, the calibration floor
// servers, Debian's nginx over docker-registry's blob files), each ready when it answers HTTP and stopped
// by the bench that started it.

import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stopChild } from '../src/util/child-process.js';
import { commandStarts } from './proc.js';
import { freePort, waitFor } from '../test/support/ports.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const FLOOR_SERVER = fileURLToPath(new URL('./floor-server.js', import.meta.url));

export interface ChildServer {
  /** "pin-preload serve", "floor node:http", "floor express": how results name it. */
  readonly name: string;
  /** "http://127.0.0.1:PORT" */
  readonly origin: string;
  readonly pid: number;
  stop(): Promise<void>;
}

/** Spawns `argv` (node's, unless `command` is given; it must listen on `port`) and waits until GET `readyPath` answers 200; stops it if it never does. */
async function startChild(name: string, argv: readonly string[], port: number, readyPath: string, command = process.execPath): Promise<ChildServer> {
  const child = spawn(command, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8000)));
  const origin = `http://127.0.0.1:${port}`;
  try {
    await waitFor(name, async () => {
      if (child.exitCode !== null) throw new Error(`${name} exited (${child.exitCode})`);
      return (await fetch(origin + readyPath)).status === 200;
    }, 120_000);
  } catch (err) {
    await stopChild(child);
    throw new Error(`${(err as Error).message}\n${stderr}`);
  }
  return { name, origin, pid: child.pid!, stop: () => stopChild(child) };
}

export interface ServeOptions {
  readonly accessLog?: boolean;
  /** Flags for the server's Node (e.g. --cpu-prof …). */
  readonly nodeFlags?: readonly string[];
}

/** `pin-preload serve` of `bundle` with its state in `state`, on a free loopback port. */
export async function startServe(bundle: string, state: string, options: ServeOptions = {}): Promise<ChildServer> {
  const port = await freePort();
  const argv = [...(options.nodeFlags ?? []), CLI, 'serve', '--bundle', bundle, '--state', state, '--listen', `127.0.0.1:${port}`, ...(options.accessLog ? [] : ['--no-access-log'])];
  return startChild('pin-preload serve', argv, port, '/v2/');
}

export type FloorVariant = 'http' | 'express';

/** The floor server (bench/floor-server.ts): a fixed 2.5 KB manifest for any GET, plain node:http or Express 5. */
export async function startFloor(variant: FloorVariant): Promise<ChildServer> {
  const port = await freePort();
  return startChild(variant === 'http' ? 'floor node:http' : 'floor express', [FLOOR_SERVER, variant, String(port)], port, '/');
}

/** Both floor servers, each pushed to `into` as soon as it runs, so the caller's cleanup stops it even if the next fails. */
export async function startFloors(into: ChildServer[]): Promise<void> {
  for (const variant of ['http', 'express'] as const) into.push(await startFloor(variant));
}

/** How results name the nginx peer. */
export const NGINX_NAME = 'nginx (sendfile)';

export const NGINX_MISSING = 'nginx is not installed (no `nginx` on PATH): install it with `apt-get install -y nginx` (Debian package nginx; the bench starts its own, the system service is not used)';

/** Whether an `nginx` binary can be started (probed once per process). */
export function nginxAvailable(): Promise<boolean> {
  return commandStarts('nginx');
}

/**
 * Debian's nginx serving docker-registry's blob files (`<root>/docker/registry/v2/blobs/sha256/xx/<hex>/data`)
 * with sendfile under the registry's blob paths (/v2/<name>/blobs/sha256:<hex>), so the same loads hit it:
 * the serving limit of this machine for those bytes. One process (no master, one event loop, like the
 * mirror's), its config, pid, error log and temp dirs in a temp dir, a free loopback port, no access log.
 */
export async function startNginx(registryRoot: string): Promise<ChildServer> {
  const port = await freePort();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-nginx-'));
  const blobs = path.join(registryRoot, 'docker', 'registry', 'v2', 'blobs', 'sha256');
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'];
  for (const t of temp) await mkdir(path.join(dir, t));
  const conf = [
    'daemon off;',
    'master_process off;',
    'worker_processes 1;',
    `pid ${path.join(dir, 'nginx.pid')};`,
    `error_log ${path.join(dir, 'error.log')} warn;`,
    'events { worker_connections 1024; }',
    'http {',
    '  access_log off;',
    '  sendfile on;',
    '  tcp_nopush on;',
    '  keepalive_requests 1000000;',
    ...temp.map((t) => `  ${t}_temp_path ${path.join(dir, t)};`),
    '  server {',
    `    listen 127.0.0.1:${port};`,
    "    location = /v2/ { default_type application/json; return 200 '{}'; }",
    '    location ~ "^/v2/.+/blobs/sha256:([0-9a-f]{2})([0-9a-f]{62})$" {',
    '      default_type application/octet-stream;',
    `      alias ${blobs}/$1/$1$2/data;`,
    '    }',
    '  }',
    '}',
  ].join('\n');
  const confFile = path.join(dir, 'nginx.conf');
  await writeFile(confFile, conf + '\n');
  try {
    const server = await startChild(NGINX_NAME, ['-p', dir, '-e', path.join(dir, 'error.log'), '-c', confFile], port, '/v2/', 'nginx');
    return { ...server, stop: async () => (await server.stop(), await rm(dir, { recursive: true, force: true })) };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
