// How every command ends: its result on stdout (as JSON under --json), user errors as one clear message and
// a non-zero exit, bugs with their stack. Under --json a failure is also one JSON error object on stdout
// (docs/json-output.md), so every command that offers --json gets that shape without code of its own.

import { Command } from 'commander';
import { isUserError, type ErrorSubject } from '../util/errors.js';
import { errorLines, logLine } from './command-log.js';
import { exitStatusOf } from './exit-status.js';

/** The JSON error object printed under --json: `{"error":{"code","message","hint"?,"subject"?}}`. */
export interface JsonError {
  readonly error: { readonly code: string; readonly message: string; readonly hint?: string; readonly subject?: ErrorSubject };
}

/** A command's JSON result: one document, two-space indented, with a final newline. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function printJsonError(error: JsonError['error']): void {
  const body: JsonError = {
    error: { code: error.code, message: error.message, ...(error.hint ? { hint: error.hint } : {}), ...(error.subject ? { subject: error.subject } : {}) },
  };
  process.stdout.write(`${JSON.stringify(body)}\n`);
}

/** Whether the command whose action got these arguments (commander passes the Command last) was given --json. */
function wantsJson(args: readonly unknown[]): boolean {
  const command = args[args.length - 1];
  return command instanceof Command && command.opts().json === true;
}

/**
 * Ends the process as soon as stdout has taken all that was written to it, not when the event loop drains: at
 * a natural exit Node first waits for V8's background work, such as the optimising compile of undici's HTTP
 * parser (WebAssembly: ~40 ms after `bundle plan` is done). Only for a command that leaves nothing running.
 */
export function exitWhenFlushed(): void {
  // A failed stdout (EPIPE: the reader went away) is left to endQuietlyWhenStdoutCloses.
  process.stdout.write('', (err) => {
    if (!err) process.exit();
  });
}

/** Exit status of a process that writes into a pipe nobody reads any more (killed by SIGPIPE: 128 + 13). */
export const STDOUT_CLOSED_EXIT = 141;

/**
 * `pin-preload … | head -1`: when the reader of stdout goes away, end as a C program killed by SIGPIPE does —
 * at once, silently, status 141 — instead of an unhandled EPIPE with a stack trace. Node ignores SIGPIPE and
 * reports the failed write as an 'error' on stdout instead.
 */
export function endQuietlyWhenStdoutCloses(): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(STDOUT_CLOSED_EXIT);
    throw err;
  });
}

/** Wraps a command's action so that a UserError prints "pin-preload: error: …" (+ hint) and exits. */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<void> | void): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      reportAndExit(err, { json: wantsJson(args) });
    }
  };
}

export function reportAndExit(err: unknown, options: { json?: boolean } = {}): never {
  if (isUserError(err)) {
    if (options.json) printJsonError({ code: err.code, message: err.message, hint: err.hint, ...(err.subject ? { subject: err.subject } : {}) });
    errorLines(err.message, err.hint);
    process.exit(exitStatusOf(err));
  }
  if (options.json) printJsonError({ code: 'INTERNAL_ERROR', message: err instanceof Error ? err.message : String(err), hint: 'this is a bug: please report it with the command line' });
  logLine(`internal error (a bug; please report it): ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(exitStatusOf(err));
}
