// Stopping a child process this program started: SIGTERM, then SIGKILL if it has not exited after a grace
// period. One place, so every server a test, the demo or a benchmark starts is stopped the same way. And
// whether a process named in a lock or claim file is still running.

import type { ChildProcess } from 'node:child_process';
import { errnoCode } from './errors.js';

/** Whether process `pid` exists (signal 0 checks without sending; EPERM: it exists, owned by another user). */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errnoCode(err) === 'EPERM';
  }
}

export async function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  // Never spawned (no pid), or already gone: there is no 'exit' left to wait for.
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}
