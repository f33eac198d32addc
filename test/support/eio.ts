// Read errors of a medium (EIO) injected into the CLI's reads of one file with strace, for the tests that
// prove a damaged medium is named as such (volume, byte, entry) and never reported as a bug; and write errors
// of the disk a command writes to.

import { execFileSync, spawnSync } from 'node:child_process';
import { CLI, type CliResult } from './cli.js';

/** Skips the test, saying why, when strace cannot trace (and so count calls or inject faults) here: not in every container. */
export function skippedWithoutStrace(t: { skip(message: string): void }): boolean {
  try {
    execFileSync('strace', ['-f', '-e', 'trace=none', '-o', '/dev/null', 'true'], { stdio: 'ignore', timeout: 10_000 });
    return false;
  } catch {
    t.skip('strace cannot trace here');
    return true;
  }
}

/** A system call failure to inject: `syscalls` (strace's list, "read,pread64") fail with `errno`, on `file` only when given. */
export interface Fault {
  readonly syscalls: string;
  readonly errno: string;
  /** Only calls on this file or these files (strace -P); every such call of the process otherwise. */
  readonly file?: string | readonly string[];
  /** The first call of each thread only (strace counts per thread). */
  readonly firstOnly?: boolean;
}

/** The CLI run under strace with `fault` injected. */
export function cliUnderFault(fault: Fault, args: readonly string[]): CliResult {
  const inject = `inject=${fault.syscalls}:error=${fault.errno}${fault.firstOnly ? ':when=1' : ''}`;
  const only = [fault.file ?? []].flat().flatMap((file) => ['-P', file]);
  const run = spawnSync('strace', ['-f', '-qq', '-o', '/dev/null', ...only, '-e', `trace=${fault.syscalls}`, '-e', inject, process.execPath, CLI, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: run.status, signal: run.signal, stdout: run.stdout, stderr: run.stderr, ms: 0 };
}

/**
 * The CLI with the reads (pread64) of `file` failing with EIO: every one, as a bad medium does, or with `firstOnly`
 * the first of each thread (strace counts per thread: the main thread's and each libuv pool thread's first).
 */
export function cliUnderEio(file: string, args: readonly string[], firstOnly = false): CliResult {
  return cliUnderFault({ syscalls: 'pread64', errno: 'EIO', file, firstOnly }, args);
}
