// How every command ends: user errors as one clear message and a non-zero exit, bugs with their stack.

import { isUserError } from '../util/errors.js';

/** Wraps a command's action so that a UserError prints "pin-preload: error: …" (+ hint) and exits. */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<void> | void): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      reportAndExit(err);
    }
  };
}

export function reportAndExit(err: unknown): never {
  if (isUserError(err)) {
    process.stderr.write(`pin-preload: error: ${err.message}\n`);
    if (err.hint) process.stderr.write(`  hint: ${err.hint}\n`);
    process.exit(err.exitCode);
  }
  process.stderr.write(`pin-preload: internal error (a bug; please report it): ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(70);
}
