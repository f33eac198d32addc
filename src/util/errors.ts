// Errors a user can act on. The CLI prints `message` (and `hint`) without a stack trace and exits non-zero;
// anything that is not a UserError is a bug and is printed with its stack.

export class UserError extends Error {
  /** A stable, machine-readable code (e.g. REGISTRY_UNAUTHORIZED) for --json output and tests. */
  readonly code: string;
  /** What the user can do about it, printed on its own line. */
  readonly hint: string | undefined;
  /** Process exit code: 1 for failures of the work, 2 for bad usage or input. */
  readonly exitCode: number;

  constructor(code: string, message: string, options: { hint?: string | undefined; exitCode?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'UserError';
    this.code = code;
    this.hint = options.hint;
    this.exitCode = options.exitCode ?? 1;
  }
}

export function isUserError(err: unknown): err is UserError {
  return err instanceof UserError;
}

/** Node's system errors carry a string `code` (ENOENT, ENOSPC, ECONNRESET, ...). */
export function errnoCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}
