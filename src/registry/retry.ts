// Bounded retries for registry requests: exponential backoff with full jitter on overload statuses and
// broken connections, honouring Retry-After within a cap. Timing is injectable so tests run fast.

import { errnoCode } from '../util/errors.js';

export interface RetryPolicy {
  /** Total tries including the first (1 = no retries). */
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

const RETRYABLE_STATUSES = new Set([429, 500, 502, 503, 504]);

export function isRetryableStatus(status: number): boolean {
  return RETRYABLE_STATUSES.has(status);
}

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
]);

export function isTransientNetworkError(err: unknown): boolean {
  const code = errnoCode(err) ?? errnoCode((err as { cause?: unknown } | undefined)?.cause);
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

/** Thrown by an attempt to ask for another try; carries what the server said for the final error. */
export class TransientError extends Error {
  constructor(
    message: string,
    readonly details: { status?: number; retryAfterMs?: number; cause?: unknown; body?: string } = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'TransientError';
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

/**
 * Runs `attempt` until it returns, throws something that is not transient, or the tries run out (then
 * the last transient error is thrown). Transient = a TransientError or a broken connection.
 */
export async function withRetries<T>(policy: RetryPolicy, attempt: (n: number) => Promise<T>, signal?: AbortSignal): Promise<T> {
  const sleep = policy.sleep ?? abortableSleep;
  for (let n = 0; ; n++) {
    try {
      return await attempt(n);
    } catch (err) {
      const transient = err instanceof TransientError || isTransientNetworkError(err);
      if (!transient || n + 1 >= policy.attempts || signal?.aborted) throw err;
      const asked = err instanceof TransientError ? err.details.retryAfterMs : undefined;
      const delay = asked !== undefined ? Math.min(asked, policy.maxRetryAfterMs) : backoffDelay(n, policy);
      await sleep(delay, signal);
    }
  }
}
