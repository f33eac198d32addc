// Fetching release signatures from a signature store laid out as the CVO reads it
// (mirror.openshift.com/pub/openshift-v4/signatures/openshift/release/sha256=<hex>/signature-N).

import { digestHex, type Digest } from '../oci/digest.js';
import { DEFAULT_RETRY_POLICY, StatusFailure, parseRetryAfter, retryRequest, type RetryDecision, type RetryPolicy } from '../registry/retry.js';
import { UserError } from '../util/errors.js';
import { parseHttpUrlOption } from '../util/http-url.js';
import { flagOrigin, originFixHint, originLabel, originToCheck, type OptionOrigin } from '../util/option-origin.js';
import { MAX_SIGNATURE_BYTES } from './openpgp.js';
import { releaseSignature, type ReleaseSignature } from './release-signature.js';

/**
 * signature-1, signature-2, … are read until the first 404; a release has one or two in practice (a new
 * signing key overlaps the old for a while), so 16 is far beyond any real store and bounds a store that
 * never answers 404.
 */
export const MAX_SIGNATURES_PER_RELEASE = 16;
const REQUEST_TIMEOUT_MS = 30_000;

const STORE_FLAG = flagOrigin('--signature-store');

/** The store root as given by the user: http(s) only, ending in exactly one slash (a directory to resolve in). */
export function parseSignatureStore(text: string, origin: OptionOrigin = STORE_FLAG): URL {
  const url = parseHttpUrlOption(text, originLabel(origin), originFixHint(origin));
  url.pathname = url.pathname.replace(/\/*$/, '/');
  return url;
}

/**
 * The hint for a store that serves something other than release signatures: the code's own (naming the flag)
 * for the flag, else the same advice naming where the store was given.
 */
export function storeHint(origin: OptionOrigin | undefined): string | undefined {
  if (origin === undefined || origin.kind === 'flag') return undefined;
  return `check ${originToCheck(origin)}: it must be the store root, whose sha256=<hex>/signature-N files are release signatures`;
}

/** Resolved against the store, not concatenated: a store at a host root has the path "/" already. */
export function signatureUrl(store: URL, releaseDigest: Digest, index: number): string {
  return new URL(`./sha256=${digestHex(releaseDigest)}/signature-${index}`, store).href;
}

export interface FetchSignaturesOptions {
  /** Names the release in errors, e.g. "release 4.16.3 (quay.io/…@sha256:…)". */
  readonly release: string;
  /** Where the store was given (the flag by default): hints say what to check. */
  readonly storeOrigin?: OptionOrigin;
  readonly retry?: RetryPolicy;
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

/** Reads the body, refusing more than a signature can be (a wrong URL serving a big file fails fast). */
async function boundedBody(response: Response, url: string, options: FetchSignaturesOptions): Promise<Buffer> {
  const release = options.release;
  const chunks: Buffer[] = [];
  let size = 0;
  if (response.body) {
    // Throwing out of for-await cancels the stream (the iterator's return()), which closes the connection.
    for await (const chunk of response.body) {
      size += chunk.byteLength;
      if (size > MAX_SIGNATURE_BYTES) {
        const hint = storeHint(options.storeOrigin);
        throw new UserError('RELEASE_SIGNATURE_INVALID', `${release}: ${url} is more than ${MAX_SIGNATURE_BYTES} bytes, too large for a release signature`, { subject: { kind: 'url', name: url }, ...(hint !== undefined ? { hint } : {}) });
      }
      chunks.push(Buffer.from(chunk));
    }
  }
  return Buffer.concat(chunks);
}

/** The error a fetch gives up with: the store's own answer, or the network's failure and whether it was retried. */
function storeFailure(decision: RetryDecision, error: unknown, url: string, options: FetchSignaturesOptions): unknown {
  if (error instanceof UserError) return error;
  if (options.signal?.aborted) return interrupted(options);
  const subject = { kind: 'url', name: url } as const;
  const reason = decision.action === 'give-up' ? decision.reason : undefined;
  const origin = options.storeOrigin ?? STORE_FLAG;
  const toCheck = originToCheck(origin);
  if (reason === 'not-retryable' && error instanceof StatusFailure) {
    return new UserError('SIGNATURE_STORE_FAILED', `${options.release}: the signature store answered HTTP ${error.status} for ${url}`, { subject, hint: `check ${toCheck} (its root, e.g. https://mirror.openshift.com/pub/openshift-v4/signatures/openshift/release)` });
  }
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  const why =
    error instanceof StatusFailure ? error.message
    : (error as { name?: unknown }).name === 'TimeoutError' ? `no answer within ${options.timeoutMs ?? REQUEST_TIMEOUT_MS} ms`
    : (cause?.code ?? cause?.message ?? (error as Error).message);
  // Otherwise the code's own hint, which names the flag: a store from a spec gets it with the spec's key.
  const hint =
    reason === 'exhausted' ? `check ${toCheck} and the network (tried ${(options.retry ?? DEFAULT_RETRY_POLICY).attempts} times)`
    : origin.kind !== 'flag' ? `check ${toCheck} (its root, ending in …/signatures/openshift/release) and the network`
    : undefined;
  return new UserError('SIGNATURE_STORE_FAILED', `${options.release}: cannot fetch ${url}: ${why}`, { subject, ...(hint !== undefined ? { hint } : {}) });
}

/** One GET: the signature's bytes, or undefined for a 404 (no signature N); overload, broken connections and timeouts are retried. */
async function fetchOne(url: string, options: FetchSignaturesOptions): Promise<Buffer | undefined> {
  const timeoutMs = options.timeoutMs ?? REQUEST_TIMEOUT_MS;
  return retryRequest(
    async () => {
      // A fresh deadline per try; its TimeoutError is a network timeout to the policy, the caller's abort is not.
      const deadline = AbortSignal.timeout(timeoutMs);
      const response = await fetch(url, { signal: options.signal ? AbortSignal.any([options.signal, deadline]) : deadline });
      if (response.status === 404) {
        await response.body?.cancel().catch(() => undefined);
        return undefined;
      }
      if (response.status === 200) return boundedBody(response, url, options);
      await response.body?.cancel().catch(() => undefined);
      // The policy retries overload statuses; any other is this store's answer, reported as it is.
      throw new StatusFailure(response.status, '', parseRetryAfter(response.headers.get('retry-after') ?? undefined));
    },
    options.retry ?? DEFAULT_RETRY_POLICY,
    options.signal,
    (decision, error) => storeFailure(decision, error, url, options),
  ).catch((err: unknown) => {
    // The wait between tries ends with the caller's abort reason, which never reaches storeFailure.
    throw !(err instanceof UserError) && options.signal?.aborted ? interrupted(options) : err;
  });
}

/** Ctrl-C while fetching: nothing has been downloaded or written yet, so there is nothing to resume. */
function interrupted(options: FetchSignaturesOptions): UserError {
  return new UserError('INTERRUPTED', `interrupted while fetching the signatures of ${options.release}; nothing was written`);
}

/** signature-1, signature-2, … of the release until the first 404 (at most MAX_SIGNATURES_PER_RELEASE). */
export async function fetchReleaseSignatures(store: URL, releaseDigest: Digest, options: FetchSignaturesOptions): Promise<ReleaseSignature[]> {
  const signatures: ReleaseSignature[] = [];
  for (let index = 1; index <= MAX_SIGNATURES_PER_RELEASE; index++) {
    const bytes = await fetchOne(signatureUrl(store, releaseDigest, index), options);
    if (bytes === undefined) break;
    signatures.push(releaseSignature(index, bytes));
  }
  return signatures;
}
