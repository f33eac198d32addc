// A test-only crash switch: with PIN_PRELOAD_TEST_KILL_AT=<point> the process kills itself with SIGKILL when it
// reaches that named point, so fault tests can crash inside windows of microseconds. Unset, it does nothing.

/** The environment variable naming the point to die at (docs/faults.md lists the points). */
export const KILL_AT_ENV = 'PIN_PRELOAD_TEST_KILL_AT';

/** Dies at once, as kill -9 from outside would, when `point` is the one named in the environment. */
export function killPoint(point: string): void {
  if (process.env[KILL_AT_ENV] === point) process.kill(process.pid, 'SIGKILL');
}
