// Errors a user can act on. The CLI prints `message` (and `hint`) without a stack trace and exits non-zero;
// anything that is not a UserError is a bug and is printed with its stack. Codes, their exit status and
// default hints are declared once in error-codes.ts; only src/cli/ turns a code into an exit status.

import { errorKind, type ErrorCode } from './error-codes.js';

/** What an error is about, for scripts (the `subject` of --json error objects, docs/json-output.md). */
export interface ErrorSubject {
  readonly kind: 'path' | 'bundle' | 'image' | 'digest' | 'registry' | 'url' | 'option';
  /** The path, bundle path, image reference, digest, registry host, URL or option name. */
  readonly name: string;
}

export interface UserErrorOptions {
  /** What the user can do here; without it, the code's default hint from the table. */
  readonly hint?: string | undefined;
  readonly subject?: ErrorSubject | undefined;
  readonly cause?: unknown;
}

export class UserError extends Error {
  /** A stable, machine-readable code (e.g. REGISTRY_UNAUTHORIZED) for --json output and tests. */
  readonly code: ErrorCode;
  /** What the user can do about it, printed on its own line. */
  readonly hint: string;
  /** The file, bundle, image, digest … the error concerns, when there is one. */
  readonly subject: ErrorSubject | undefined;

  constructor(code: ErrorCode, message: string, options: UserErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'UserError';
    this.code = code;
    this.hint = options.hint ?? errorKind(code).hint;
    this.subject = options.subject;
  }
}

export function isUserError(err: unknown): err is UserError {
  return err instanceof UserError;
}

/**
 * An error of the system (ENOENT, EIO, EROFS, …), not of our code or a library's: its code an errno name, or
 * libuv's "Unknown system error -N" for the errnos it has no name for (ENOMEDIUM when media is pulled, ESTALE,
 * EUCLEAN), never a Node API's ERR_… or ABORT_ERR.
 */
export function isSystemError(err: unknown): boolean {
  const code = errnoCode(err);
  return code !== undefined && (/^E[A-Z]+$/.test(code) || code.startsWith('Unknown system error'));
}

/** Node's system errors carry a string `code` (ENOENT, ENOSPC, ECONNRESET, ...). */
export function errnoCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}
