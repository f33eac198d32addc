// The registry client's one retry policy: a failure is classified into a typed Failure, and decideRetry
// says whether to try again, after how long, and whether a blob goes on with a Range request or elsewhere.

import { DigestMismatchError } from '../oci/digest.js';
import { errnoCode, isUserError } from '../util/errors.js';

export interface RetryPolicy {
  /** Total tries of one request including the first (1 = no retries). */
  readonly attempts: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  /** A Retry-After longer than this is cut to it (a registry asking for an hour should not stall us that long). */
  readonly maxRetryAfterMs: number;
  readonly sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** In [0, 1); Math.random by default. */
  readonly random?: () => number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  attempts: 5,
  baseDelayMs: 250,
  maxDelayMs: 10_000,
  maxRetryAfterMs: 60_000,
};

/** The policy with the client's bound on blob resumes that add no bytes (its own option, maxBlobResumes). */
export type RetryLimits = RetryPolicy & { readonly maxBlobResumes: number };

const RETRYABLE_STATUSES = new Set([429, 500, 502, 503, 504]);

/**
 * A response that does not parse as HTTP, whatever undici's HTTPParserError carries as its code (often none).
 * A server that sends a body after a HEAD's headers on a kept connection garbles the next response on it;
 * undici drops that connection, so a new try, on a fresh one, may well succeed.
 */
export const HTTP_PARSER_ERROR = 'HTTP_PARSER_ERROR';

/** Connection failures that a new try may well not see: resets, timeouts, a peer closing mid-response. */
const TRANSIENT_NETWORK_CODES = new Set([
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ECONNABORTED',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
  'UND_ERR_CLOSED',
  HTTP_PARSER_ERROR,
]);

/** The code a connection failure is known by: its own, its cause's, or HTTP_PARSER_ERROR for an unparsable response. */
export function networkErrorCode(err: unknown): string | undefined {
  if ((err as { name?: unknown } | undefined)?.name === 'HTTPParserError') return HTTP_PARSER_ERROR;
  return errnoCode(err) ?? errnoCode((err as { cause?: unknown } | undefined)?.cause);
}

/** A broken connection (by its code or its cause's); the client also reports these as REGISTRY_UNREACHABLE. */
export function isTransientNetworkError(err: unknown): boolean {
  const code = networkErrorCode(err);
  return code !== undefined && TRANSIENT_NETWORK_CODES.has(code);
}

/** Retry-After as delta-seconds or an HTTP date, in ms from `now`; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const text = (Array.isArray(value) ? value[0] : value)?.trim();
  if (!text) return undefined;
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const when = Date.parse(text);
  if (Number.isNaN(when)) return undefined;
  return Math.max(0, when - now);
}

/** Full jitter: a uniform delay in [0, min(max, base·2^retry)). */
export function backoffDelay(retry: number, policy: RetryPolicy): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** retry);
  return Math.floor((policy.random ?? Math.random)() * ceiling);
}

/** A response that was not 2xx, with what the server said (for the final error's message). */
export class StatusFailure extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
    readonly retryAfterMs: number | undefined,
  ) {
    super(`HTTP ${status}`);
    this.name = 'StatusFailure';
  }
}

/** What went wrong, in the terms the policy decides on. */
export type Failure =
  /** The registry answered with a status that is not 2xx (Retry-After in ms when it sent one). */
  | { readonly kind: 'status'; readonly status: number; readonly retryAfterMs?: number | undefined }
  /** A connection-level error, by its errno or undici code (its cause's when it has none). */
  | { readonly kind: 'network'; readonly code: string }
  /** A blob body that ended cleanly before the blob's size (no Content-Length caught it). */
  | { readonly kind: 'truncated' }
  /** Bytes that do not hash to the digest asked for. */
  | { readonly kind: 'digest-mismatch' }
  /** The error is the caller's abort itself. */
  | { readonly kind: 'aborted' }
  /** Anything else: our own refusals (UserError) and bugs. */
  | { readonly kind: 'other' };

/** Where the failure happened and how often already. */
export type Attempt =
  /** One request (headers, and a manifest's or error document's body): `tries` made, the failed one included. */
  | { readonly phase: 'request'; readonly tries: number; readonly stopped: boolean }
  /** A blob body being copied: broken tries in a row (this one included) that added no byte. */
  | { readonly phase: 'blob-body'; readonly resumesWithoutProgress: number; readonly stopped: boolean };

export type RetryDecision =
  /** Send the same request again after `delayMs` (a blob's request carries its Range from where it stands). */
  | { readonly action: 'retry'; readonly delayMs: number }
  /**
   * Ask for the rest of the blob with a Range request from the first byte not yet passed on, after
   * `delayMs` (at once when absent). A blob is never restarted from byte 0 here: the bytes already passed
   * to the reader are in its digest check; a blob that fails that check is fetched again by the caller.
   */
  | { readonly action: 'resume'; readonly delayMs?: number }
  /** This endpoint does not give the whole blob: go on at the same byte at the next one (mirror, then primary). */
  | { readonly action: 'next-endpoint' }
  | { readonly action: 'give-up'; readonly reason: 'not-retryable' | 'exhausted' | 'aborted' };

export function classifyFailure(error: unknown): Failure {
  if (error instanceof StatusFailure) return { kind: 'status', status: error.status, retryAfterMs: error.retryAfterMs };
  if (error instanceof DigestMismatchError) return { kind: 'digest-mismatch' };
  if (isUserError(error)) return { kind: 'other' };
  if ((error as { name?: unknown } | undefined)?.name === 'AbortError') return { kind: 'aborted' };
  // AbortSignal.timeout's reason: a request's own deadline passed (the caller stopping is seen as `stopped`), a timeout like ETIMEDOUT.
  if ((error as { name?: unknown } | undefined)?.name === 'TimeoutError') return { kind: 'network', code: 'ETIMEDOUT' };
  const code = networkErrorCode(error);
  if (code === 'UND_ERR_ABORTED' || code === 'ABORT_ERR') return { kind: 'aborted' };
  return code !== undefined ? { kind: 'network', code } : { kind: 'other' };
}

function retryable(failure: Failure): boolean {
  switch (failure.kind) {
    case 'status':
      return RETRYABLE_STATUSES.has(failure.status);
    case 'network':
      return TRANSIENT_NETWORK_CODES.has(failure.code);
    default:
      return false;
  }
}

/**
 * The one place that decides. A short blob body is asked for again at once, and given up at this endpoint
 * when such resumes stop adding bytes. Otherwise only overload statuses and broken connections are tried
 * again, never once the caller has stopped, and within the bounds: `attempts` tries of one request,
 * `maxBlobResumes` broken blob bodies in a row that add no byte (progress resets the count, as a long
 * download over a flaky link may break many times). The wait is Retry-After when the registry sent one
 * (capped), else exponential backoff with full jitter.
 */
export function decideRetry(failure: Failure, attempt: Attempt, limits: RetryLimits): RetryDecision {
  if (failure.kind === 'truncated' && attempt.phase === 'blob-body') {
    return attempt.resumesWithoutProgress > limits.maxBlobResumes ? { action: 'next-endpoint' } : { action: 'resume' };
  }
  if (!retryable(failure)) return { action: 'give-up', reason: failure.kind === 'aborted' ? 'aborted' : 'not-retryable' };
  if (attempt.stopped) return { action: 'give-up', reason: 'aborted' };
  if (attempt.phase === 'blob-body') {
    if (attempt.resumesWithoutProgress > limits.maxBlobResumes) return { action: 'give-up', reason: 'exhausted' };
    return { action: 'resume', delayMs: backoffDelay(attempt.resumesWithoutProgress, limits) };
  }
  if (attempt.tries >= limits.attempts) return { action: 'give-up', reason: 'exhausted' };
  const asked = failure.kind === 'status' ? failure.retryAfterMs : undefined;
  return { action: 'retry', delayMs: asked !== undefined ? Math.min(asked, limits.maxRetryAfterMs) : backoffDelay(attempt.tries - 1, limits) };
}

/**
 * One request tried until it succeeds or the policy gives up: the loop of the registry client's exchange and of
 * any other HTTP fetch that retries as it does (the signature store). `giveUp` turns the last error and the
 * decision into what is thrown (by default the error as it came).
 */
export async function retryRequest<T>(
  tryOnce: () => Promise<T>,
  policy: RetryPolicy,
  signal: AbortSignal | undefined,
  giveUp: (decision: RetryDecision, error: unknown) => unknown | Promise<unknown> = (_decision, error) => error,
): Promise<T> {
  const limits: RetryLimits = { maxBlobResumes: 0, ...policy };
  for (let tries = 1; ; tries++) {
    try {
      return await tryOnce();
    } catch (error) {
      const decision = decideRetry(classifyFailure(error), { phase: 'request', tries, stopped: signal?.aborted ?? false }, limits);
      if (decision.action !== 'retry') throw await giveUp(decision, error);
      await (policy.sleep ?? abortableSleep)(decision.delayMs, signal);
    }
  }
}

export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
