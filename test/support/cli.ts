// Runs the built pin-preload CLI as a child process for fault and end-to-end tests: bounded by a timeout,
// output captured, and a check that no run ever ended in an unhandled exception ("internal error").

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
/** Every bundle the fault tests make carries this creation time, so reruns can be compared byte for byte. */
export const SOURCE_DATE_EPOCH = '1700000000';

export interface CliResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

export interface CliRun {
  readonly child: ChildProcess;
  readonly done: Promise<CliResult>;
}

export function startCli(args: readonly string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): CliRun {
  const started = Date.now();
  const child = spawn(process.execPath, [CLI, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, SOURCE_DATE_EPOCH, ...options.env },
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started });
    });
  });
  return { child, done };
}

export const runCli = (args: readonly string[], options?: { env?: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<CliResult> => startCli(args, options).done;

/** The rule for every run: a user error or success, never an unhandled exception or a stack trace. */
export function assertNoInternalError(result: CliResult, what: string): void {
  assert.doesNotMatch(result.stderr, /internal error|unhandled|UnhandledPromiseRejection|\n\s+at .+:\d+:\d+\)?\n/, `${what}: stderr shows a bug:\n${result.stderr}`);
  assert.notEqual(result.code, 70, `${what}: exit 70 is the CLI's internal-error code`);
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** A small seeded PRNG (mulberry32) so random kill points can be replayed from the printed seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** PIN_PRELOAD_FAULT_SEED replays a run; otherwise a fresh seed, printed by the caller. */
export function faultSeed(): number {
  const fromEnv = process.env.PIN_PRELOAD_FAULT_SEED;
  return fromEnv !== undefined && /^\d+$/.test(fromEnv) ? Number(fromEnv) : Math.floor(Math.random() * 2 ** 31);
}

/** PIN_PRELOAD_KILL_ROUNDS (default 10): how many random kill -9 points each kill test tries. */
export function killRounds(): number {
  const n = Number(process.env.PIN_PRELOAD_KILL_ROUNDS ?? 10);
  return Number.isInteger(n) && n >= 0 ? n : 10;
}
