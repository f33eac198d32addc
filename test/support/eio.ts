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

/**
 * The CLI with the reads (pread64) of `file` failing with EIO: every one, as a bad medium does, or with `firstOnly`
 * the first of each thread (strace counts per thread: the main thread's and each libuv pool thread's first).
 * -P: only calls on that file are traced and tampered with.
 */
export function cliUnderEio(file: string, args: readonly string[], firstOnly = false): CliResult {
  const inject = `inject=pread64:error=EIO${firstOnly ? ':when=1' : ''}`;
  const run = spawnSync('strace', ['-f', '-qq', '-o', '/dev/null', '-P', file, '-e', 'trace=pread64', '-e', inject, process.execPath, CLI, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: run.status, signal: run.signal, stdout: run.stdout, stderr: run.stderr, ms: 0 };
}

/**
 * The CLI with every positional write (pwrite64) failing with EIO, as a failing disk does: for a command whose
 * first such writes are its copy's (`import`: the bundle's volumes; SQLite writes the state only after them).
 */
export function cliUnderWriteEio(args: readonly string[]): CliResult {
  const run = spawnSync('strace', ['-f', '-qq', '-o', '/dev/null', '-e', 'trace=pwrite64', '-e', 'inject=pwrite64:error=EIO', process.execPath, CLI, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: run.status, signal: run.signal, stdout: run.stdout, stderr: run.stderr, ms: 0 };
}
