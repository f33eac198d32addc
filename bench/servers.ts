// The servers a benchmark starts as child processes on 127.0.0.1 (pin-preload serve, the calibration floor
// servers), each ready when it answers HTTP and stopped by the bench that started it.

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { stopChild } from '../src/util/child-process.js';
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

/** Spawns `argv` (it must listen on `port`) and waits until GET `readyPath` answers 200; stops it if it never does. */
async function startChild(name: string, argv: readonly string[], port: number, readyPath: string): Promise<ChildServer> {
  const child = spawn(process.execPath, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
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
