// The one place an error becomes a process exit status: a UserError by its code's row in the table
// (util/error-codes.ts), anything else is a bug. Domain modules throw; they never choose how we exit.

import { errorKind, USER_ERRORS } from '../util/error-codes.js';
import { isUserError } from '../util/errors.js';

/** Exit status of a bug (EX_SOFTWARE). */
export const INTERNAL_EXIT = 70;
/** Exit status of bad usage, as commander's own errors are mapped in main. */
export const USAGE_EXIT = USER_ERRORS.USAGE.exit;

export function exitStatusOf(err: unknown): number {
  return isUserError(err) ? errorKind(err.code).exit : INTERNAL_EXIT;
}
