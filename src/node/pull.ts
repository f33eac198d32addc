// Pulls images through the CRI the way the MCO's prefetcher does: a few workers, per-image retries with
// backoff 1 s doubling to 10 s, a timeout scaled to the image's size, and ENOSPC stopping every pull at once.

import { CriError, type CriImageService } from '../cri/image-service.js';
import { killPoint } from '../util/kill-point.js';

export interface PullRequest {
  /** "repo@sha256:…" — always by digest. */
  readonly name: string;
  /** Bytes the pull transfers (compressed blobs), to scale the timeout. */
  readonly bytes: number;
}

export interface PullOptions {
  readonly concurrency: number;
  /** Attempts per image. */
  readonly retries: number;
  /** Timeout of one attempt for an image up to 1 GiB; each further GiB started adds as much again. */
  readonly baseTimeoutMs: number;
  readonly signal?: AbortSignal;
  /** Called after every attempt (error undefined = pulled). */
  readonly onAttempt?: (name: string, attempt: number, error: Error | undefined) => void;
  /** Backoff before attempt n+1 (tests shorten it). */
  readonly backoffMs?: (attempt: number) => number;
}

export interface PullOutcome {
  readonly pulled: string[];
  readonly failed: Map<string, Error>;
  /** The runtime ran out of space: every pull still queued or running was stopped. */
  readonly noSpace: CriError | undefined;
  /** Stopped from outside (service shutdown, a newer set of bundles). */
  readonly aborted: boolean;
}

const GIB = 2 ** 30;

/** 1 s, 2 s, 4 s, 8 s, then 10 s: the MCO's wait.Backoff{Duration: 1s, Factor: 2, Cap: 10s}. */
export function defaultBackoffMs(attempt: number): number {
  return Math.min(1000 * 2 ** (attempt - 1), 10_000);
}

export function pullTimeoutMs(baseTimeoutMs: number, bytes: number): number {
  return baseTimeoutMs * Math.max(1, Math.ceil(bytes / GIB));
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve();
      return;
    }
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

/** Pulls every request; never throws for a pull failure (the outcome says what failed and why). */
export async function pullImages(cri: Pick<CriImageService, 'pullImage'>, requests: readonly PullRequest[], options: PullOptions): Promise<PullOutcome> {
  // One controller for the whole batch: ENOSPC and the caller's signal both stop every worker.
  const stop = new AbortController();
  const onOuterAbort = () => stop.abort();
  options.signal?.addEventListener('abort', onOuterAbort, { once: true });
  if (options.signal?.aborted) stop.abort();
  const backoff = options.backoffMs ?? defaultBackoffMs;
  const pulled: string[] = [];
  const failed = new Map<string, Error>();
  let noSpace: CriError | undefined;
  let next = 0;

  const pullOne = async (request: PullRequest): Promise<void> => {
    for (let attempt = 1; attempt <= options.retries && !stop.signal.aborted; attempt++) {
      try {
        await cri.pullImage(request.name, { timeoutMs: pullTimeoutMs(options.baseTimeoutMs, request.bytes), signal: stop.signal });
        options.onAttempt?.(request.name, attempt, undefined);
        pulled.push(request.name);
        killPoint(`preload:after-pull-${pulled.length}`);
        failed.delete(request.name);
        return;
      } catch (err) {
        const error = err instanceof Error ? err : new Error(String(err));
        if (stop.signal.aborted && !(err instanceof CriError && err.isNoSpace)) return; // cancelled, not failed
        options.onAttempt?.(request.name, attempt, error);
        failed.set(request.name, error);
        if (err instanceof CriError && err.isNoSpace) {
          noSpace ??= err;
          stop.abort();
          return;
        }
        if (attempt < options.retries) await sleep(backoff(attempt), stop.signal);
      }
    }
  };

  const worker = async (): Promise<void> => {
    while (!stop.signal.aborted && next < requests.length) await pullOne(requests[next++]!);
  };
  try {
    await Promise.all(Array.from({ length: Math.min(options.concurrency, requests.length) }, worker));
  } finally {
    options.signal?.removeEventListener('abort', onOuterAbort);
  }
  return { pulled, failed, noSpace, aborted: options.signal?.aborted ?? false };
}
