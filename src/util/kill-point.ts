// Test-only switches at named points of long operations: PIN_PRELOAD_TEST_KILL_AT=<point> makes the process
// kill itself with SIGKILL there, PIN_PRELOAD_TEST_STOP_AT=<point> stops it (SIGSTOP) until the test sends
// SIGCONT, so fault tests can crash, or act, inside windows of microseconds. Unset, they do nothing.

/** The environment variable naming the point to die at (docs/faults.md lists the points). */
export const KILL_AT_ENV = 'PIN_PRELOAD_TEST_KILL_AT';
/** The environment variable naming the point to stop at. */
export const STOP_AT_ENV = 'PIN_PRELOAD_TEST_STOP_AT';

/** Dies at once, as kill -9 from outside would, or stops, when `point` is the one named in the environment. */
export function killPoint(point: string): void {
  if (process.env[KILL_AT_ENV] === point) process.kill(process.pid, 'SIGKILL');
  if (process.env[STOP_AT_ENV] === point) process.kill(process.pid, 'SIGSTOP');
}
