// Runs a benchmarked command as a child under /usr/bin/time -v: wall time, peak RSS (maximum resident
// set size) and exit status, with output captured; and reads a live process's peak RSS and CPU from /proc.

import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';

export interface TimedRun {
  readonly command: string;
  readonly wallMs: number;
  /** Peak resident set size in bytes, from /usr/bin/time -v. */
  readonly peakRssBytes: number;
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export async function timed(argv: readonly string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<TimedRun> {
  const started = process.hrtime.bigint();
  const child = spawn('/usr/bin/time', ['-v', ...argv], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env }, ...(options.cwd ? { cwd: options.cwd } : {}) });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-200_000)));
  const code = await new Promise<number>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (c) => resolve(c ?? -1));
  });
  const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
  const rssKb = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(stderr)?.[1] ?? 0);
  return { command: argv.join(' '), wallMs, peakRssBytes: rssKb * 1024, code, stdout, stderr };
}

/** Fails with the command's output when it did not exit 0. */
export function mustSucceed(run: TimedRun): TimedRun {
  if (run.code !== 0) throw new Error(`benchmark step failed (exit ${run.code}): ${run.command}\n${run.stdout.slice(-2000)}\n${run.stderr.slice(-4000)}`);
  return run;
}

/** VmHWM (peak RSS) of a running process, in bytes. */
export async function peakRssOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) * 1024;
}

/** CPU seconds (user + system) a process has used so far, from /proc/PID/stat (clock ticks of 10 ms). */
export async function cpuSecondsOf(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may hold spaces: count fields from after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

export async function sh(argv: readonly string[]): Promise<string> {
  const run = await timed(argv);
  return run.code === 0 ? run.stdout.trim() : '';
}

const probes = new Map<string, Promise<boolean>>();

/** Whether `command` can be started at all (probed once per process by running `COMMAND -v`; any exit status counts). */
export function commandStarts(command: string): Promise<boolean> {
  let probe = probes.get(command);
  if (!probe) {
    probe = new Promise((resolve) => {
      const child = spawn(command, ['-v'], { stdio: 'ignore' });
      child.once('error', () => resolve(false));
      child.once('exit', () => resolve(true));
    });
    probes.set(command, probe);
  }
  return probe;
}
