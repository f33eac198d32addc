// RegistryClient: the ImageSource over the OCI distribution API (undici, one keep-alive pool per origin),
// with registries.conf mirrors, credentials, bearer tokens, retries, verified and resumable blob streams.

import type { Hash } from 'node:crypto';
import { createHash } from 'node:crypto';
import type { Readable, Writable } from 'node:stream';
import { rootCertificates as tlsRootCertificates } from 'node:tls';
import type { Dispatcher } from 'undici';
import { digestAlgorithm, DigestMismatchError, isDigest, sha256Of, VerifyingStream, type Digest } from '../oci/digest.js';
import { MANIFEST_ACCEPT, MediaType, isManifestMediaType } from '../oci/media-types.js';
import { formatReference, repositoryName, type Reference, type Repository } from '../oci/reference.js';
import { UserError, errnoCode, isUserError } from '../util/errors.js';
import { Pool } from '../util/http-pool.js';
import { TOOL_VERSION } from '../version.js';
import { basicAuthorization, parseChallenges, preferredChallenge, pullScope, TokenCache, type Challenge, type TokenTransport } from './challenge.js';
import { EMPTY_CREDENTIALS, type Credential, type CredentialStore } from './credentials.js';
import { EMPTY_REGISTRIES_CONF, endpointsFor, type Endpoint, type RegistriesConf } from './registries-conf.js';
import { abortableSleep, classifyFailure, decideRetry, DEFAULT_RETRY_POLICY, HTTP_PARSER_ERROR, isTransientNetworkError, networkErrorCode, parseRetryAfter, retryRequest, StatusFailure, type Failure, type RetryDecision, type RetryLimits, type RetryPolicy } from './retry.js';
import type { BlobStreamOptions, FetchedManifest, ImageSource } from './source.js';

export interface RegistryTimeouts {
  readonly connectMs?: number;
  /** Until the response headers arrive. */
  readonly headersMs?: number;
  /** Longest silence between two body chunks. */
  readonly bodyIdleMs?: number;
}

export interface RegistryClientOptions {
  readonly registriesConf?: RegistriesConf;
  readonly credentials?: CredentialStore;
  /** Connections per origin (default 8); further requests queue. */
  readonly maxConcurrentRequests?: number;
  readonly retries?: Partial<RetryPolicy>;
  readonly userAgent?: string;
  readonly timeouts?: RegistryTimeouts;
  /** Broken blob bodies resumed with Range before giving up (default 5, counted while no progress is made). */
  readonly maxBlobResumes?: number;
  /**
   * Loopback registries (127.0.0.0/8, localhost, [::1]) may use plain HTTP without being listed as
   * insecure in registries.conf, as Docker allows (default true).
   */
  readonly loopbackIsInsecure?: boolean;
  /** CA certificates (PEM) trusted besides the system's, and a client certificate and key: `--dest-cert-dir DIR`. */
  readonly tls?: { readonly ca?: readonly string[]; readonly cert?: string; readonly key?: string };
}

const MAX_MANIFEST_BYTES = 4 * 1024 * 1024; // containers/image's limit
const MAX_ERROR_BODY_BYTES = 64 * 1024;
const MAX_REDIRECTS = 5;
const PROBE_TIMEOUT_MS = 10_000;
const CLOSE_GRACE_MS = 2_000;
/** Requests for one blob at one endpoint before moving on, whatever the progress: every loop is bounded. */
const MAX_BLOB_ROUNDS = 100;
const AUTH_HINT = 'give credentials with --authfile FILE (containers-auth.json format) or REGISTRY_AUTH_FILE';
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EPROTO', 'EADDRNOTAVAIL']);

/** What a request is about, for error messages. */
type Resource = { kind: 'manifest'; reference: string } | { kind: 'referrers'; reference: string } | { kind: 'blob'; digest: Digest; repository: string } | { kind: 'ping' };

interface Request {
  readonly method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly signal?: AbortSignal | undefined;
  /** Made afresh for each send: a 401 answered with a new token sends the request again. */
  readonly body?: (() => Buffer | Readable) | undefined;
  /** The token scope; pull of the endpoint's repository when absent. */
  readonly scope?: string | undefined;
  /**
   * Keep the connection after a HEAD. undici closes it after every HEAD by default (a server might send a
   * body it should not); a push HEADs every blob and manifest, and a new connection for each cost as much
   * CPU as the HEAD itself (368 connections for the 1 GB push bench). Registries send no body to a HEAD; a
   * server that does garbles the next answer (retried on a fresh connection), and its HEADs close again after.
   */
  readonly keepAlive?: boolean | undefined;
}

/** A request to a push target (the registry ImageDestination): any method, a body, the scope it needs. */
export type TargetRequest = Request & { readonly scope: string };
export type TargetResponse = Dispatcher.ResponseData;

type Response = Dispatcher.ResponseData;

/** A blob being fetched: what it is, the verifying stream its reader reads, and the signal that stops it. */
interface BlobDownload {
  readonly resource: Extract<Resource, { kind: 'blob' }>;
  readonly blob: { readonly digest: Digest; readonly size: number };
  readonly out: VerifyingStream;
  readonly signal: AbortSignal;
}

/** A response and how it was asked for (redirects need both). */
interface Sent {
  readonly res: Response;
  readonly origin: string;
  readonly authorization: string | undefined;
}

function header(res: Response, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function isLoopback(host: string): boolean {
  const name = host.replace(/:\d+$/, '');
  return name === 'localhost' || name === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(name);
}

function isTlsError(code: string | undefined): boolean {
  return code !== undefined && (code.startsWith('ERR_TLS') || code.startsWith('ERR_SSL') || code.includes('CERT') || code === 'EPROTO');
}

/** Reads a small body (manifests, error documents) with a size limit. */
async function readLimited(res: Response, limit: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of res.body) {
    length += (chunk as Buffer).length;
    if (length > limit) {
      res.body.destroy();
      throw new UserError('REGISTRY_ERROR', `${what} is larger than ${limit} bytes; refusing to read it`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** "CODE: message" from a distribution error document, or the start of the body. */
export function describeErrorBody(body: string): string {
  try {
    const doc = JSON.parse(body) as { errors?: Array<{ code?: unknown; message?: unknown }> };
    const parts = (doc.errors ?? []).map((e) => [e.code, e.message].filter((x) => typeof x === 'string' && x !== '').join(': ')).filter(Boolean);
    if (parts.length > 0) return parts.join('; ');
  } catch {
    // not JSON: show it raw
  }
  return body.trim().slice(0, 200);
}

function describeResource(resource: Resource, endpoint: Endpoint): string {
  switch (resource.kind) {
    case 'manifest':
      return `manifest ${resource.reference}`;
    case 'referrers':
      return `referrers of ${resource.reference}`;
    case 'blob':
      return `blob ${resource.digest} of ${resource.repository}`;
    case 'ping':
      return `registry ${endpoint.host}`;
  }
}

function endpointName(endpoint: Endpoint): string {
  return `${endpoint.host}/${endpoint.path}${endpoint.mirror ? ' (mirror)' : ''}`;
}

/** VerifyingStream checks the length and digest in its flush. */
function endBlob(out: VerifyingStream): 'ended' {
  out.end();
  return 'ended';
}

function waitForDrain(stream: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    if (stream.destroyed) {
      reject(new Error('the blob stream was closed'));
      return;
    }
    const onDrain = (): void => {
      stream.off('close', onClose);
      resolve();
    };
    const onClose = (): void => {
      stream.off('drain', onDrain);
      reject(new Error('the blob stream was closed by its reader'));
    };
    stream.once('drain', onDrain);
    stream.once('close', onClose);
  });
}

export class RegistryClient implements ImageSource {
  /** blobStream checks digest and size itself (VerifyingStream over prefixHash and the body): the copy hashes nothing again. */
  readonly verifiesBlobs = true;
  private readonly conf: RegistriesConf;
  private readonly credentials: CredentialStore;
  private readonly connections: number;
  private readonly retry: RetryLimits;
  private readonly userAgent: string;
  private readonly timeouts: Required<RegistryTimeouts>;
  private readonly loopbackIsInsecure: boolean;
  private readonly tls: NonNullable<RegistryClientOptions['tls']>;
  private readonly pools = new Map<string, Pool>();
  /** Per insecure host, the scheme that answered ("https" tried first, then "http"). */
  private readonly schemes = new Map<string, Promise<'https' | 'http'>>();
  /**
   * Origins whose answer to a request did not parse as HTTP: likely a server that sends a body with a HEAD,
   * garbling the next answer on the connection. Their HEADs close the connection again (undici's default).
   */
  private readonly garbledOrigins = new Set<string>();
  /** The last auth challenge each host sent, so later requests authenticate up front. */
  private readonly challenges = new Map<string, Challenge>();
  /** Hosts we may talk to without verified TLS (insecure endpoints), also for their token realms. */
  private readonly insecureHosts = new Set<string>();
  private readonly tokens: TokenCache;
  private closed = false;

  constructor(options: RegistryClientOptions = {}) {
    this.conf = options.registriesConf ?? EMPTY_REGISTRIES_CONF;
    this.credentials = options.credentials ?? EMPTY_CREDENTIALS;
    this.connections = options.maxConcurrentRequests ?? 8;
    this.retry = { ...DEFAULT_RETRY_POLICY, ...options.retries, maxBlobResumes: options.maxBlobResumes ?? 5 };
    this.userAgent = options.userAgent ?? `pin-preload/${TOOL_VERSION}`;
    this.timeouts = { connectMs: 30_000, headersMs: 60_000, bodyIdleMs: 60_000, ...options.timeouts };
    this.loopbackIsInsecure = options.loopbackIsInsecure ?? true;
    this.tls = options.tls ?? {};
    this.tokens = new TokenCache(this.tokenTransport);
  }

  // ---- ImageSource ----

  async getManifest(ref: Reference, options: { signal?: AbortSignal } = {}): Promise<FetchedManifest> {
    const byDigest = ref.digest !== undefined;
    const selector = ref.digest ?? ref.tag ?? 'latest';
    const reference = formatReference(ref);
    return this.acrossEndpoints(endpointsFor(this.conf, ref, byDigest), reference, async (endpoint) => {
      const { res, bytes } = await this.exchange(
        endpoint,
        { method: 'GET', path: `/v2/${endpoint.path}/manifests/${selector}`, headers: { accept: MANIFEST_ACCEPT }, signal: options.signal },
        { kind: 'manifest', reference },
        async (res) => ({ res, bytes: await readLimited(res, MAX_MANIFEST_BYTES, `manifest ${reference} from ${endpoint.host}`) }),
      );
      const digest = verifyManifestDigest(bytes, ref.digest, header(res, 'docker-content-digest'), `manifest ${reference} from ${endpointName(endpoint)}`);
      return { bytes, mediaType: manifestMediaType(header(res, 'content-type'), bytes), digest };
    });
  }

  blobStream(repo: Repository, blob: { readonly digest: Digest; readonly size: number }, options: BlobStreamOptions = {}): Readable {
    const offset = options.offset ?? 0;
    const where = `blob ${blob.digest} of ${repositoryName(repo)}`;
    const out = new VerifyingStream(blob.digest, blob.size, where, options.prefixHash, offset);
    const controller = new AbortController();
    const onAbort = (): void => controller.abort(options.signal?.reason);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    out.once('close', () => {
      options.signal?.removeEventListener('abort', onAbort);
      controller.abort(new Error('blob stream closed'));
    });
    this.pumpBlob(repo, blob, offset, out, controller.signal).catch((err: unknown) => {
      out.destroy(controller.signal.aborted && options.signal?.aborted ? (options.signal.reason as Error) : (err as Error));
    });
    return out;
  }

  // ---- a push target ----

  /**
   * One try of a request to a push target, authorized (token scope as asked) and not retried: the copy
   * retries whole destination steps with this client's policy, re-opening the body. A 2xx is returned
   * unread; any other status is thrown as a StatusFailure for the caller to classify and name.
   */
  async targetRequest(endpoint: Endpoint, request: TargetRequest): Promise<TargetResponse> {
    if (this.closed) throw new Error('RegistryClient is closed');
    const sent = await this.authorized(endpoint, request, { kind: 'ping' });
    const res = sent.res;
    if (res.statusCode >= 200 && res.statusCode < 300) return res;
    const body = request.method === 'HEAD' ? '' : (await readLimited(res, MAX_ERROR_BODY_BYTES, 'error body').catch(() => Buffer.alloc(0))).toString('utf8');
    if (request.method === 'HEAD') await res.body.dump();
    throw new StatusFailure(res.statusCode, body, parseRetryAfter(res.headers['retry-after']));
  }

  /** The scheme and host a target endpoint is reached at ("http://127.0.0.1:5000"), for absolute Locations. */
  async targetOrigin(endpoint: Endpoint, signal?: AbortSignal): Promise<string> {
    return `${await this.scheme(endpoint, signal)}://${endpoint.host}`;
  }

  // ---- extras ----

  /**
   * GET /v2/<name>/referrers/<digest> (OCI distribution 1.1): the image index listing the manifests whose
   * subject is `digest`, as served. MANIFEST_UNKNOWN when the registry answers 404 (it has no referrers API).
   */
  async getReferrers(repo: Repository, digest: Digest, options: { signal?: AbortSignal } = {}): Promise<FetchedManifest> {
    const reference = `${repositoryName(repo)}@${digest}`;
    return this.acrossEndpoints(endpointsFor(this.conf, repo, true), reference, async (endpoint) => {
      const { res, bytes } = await this.exchange(
        endpoint,
        { method: 'GET', path: `/v2/${endpoint.path}/referrers/${digest}`, headers: { accept: MediaType.ociIndex }, signal: options.signal },
        { kind: 'referrers', reference },
        async (res) => ({ res, bytes: await readLimited(res, MAX_MANIFEST_BYTES, `referrers of ${reference} from ${endpoint.host}`) }),
      );
      // The list is generated per request, so it has no digest to check: only its shape, by the caller.
      return { bytes, mediaType: manifestMediaType(header(res, 'content-type'), bytes), digest: sha256Of(bytes) };
    });
  }

  /** HEAD a manifest: its digest, media type and size, without the body. */
  async headManifest(ref: Reference, options: { signal?: AbortSignal } = {}): Promise<{ digest: Digest | undefined; mediaType: string | undefined; size: number | undefined }> {
    const selector = ref.digest ?? ref.tag ?? 'latest';
    const reference = formatReference(ref);
    return this.acrossEndpoints(endpointsFor(this.conf, ref, ref.digest !== undefined), reference, async (endpoint) => {
      const res = await this.exchange(
        endpoint,
        { method: 'HEAD', path: `/v2/${endpoint.path}/manifests/${selector}`, headers: { accept: MANIFEST_ACCEPT }, signal: options.signal },
        { kind: 'manifest', reference },
      );
      await res.body.dump();
      const served = header(res, 'docker-content-digest');
      const length = header(res, 'content-length');
      return {
        digest: ref.digest ?? (served && isDigest(served) ? served : undefined),
        mediaType: header(res, 'content-type')?.split(';')[0]?.trim(),
        size: length !== undefined ? Number(length) : undefined,
      };
    });
  }

  /** HEAD a blob: its size as the registry reports it; BLOB_UNKNOWN when absent. */
  async headBlob(repo: Repository, digest: Digest, options: { signal?: AbortSignal } = {}): Promise<{ size: number | undefined }> {
    return this.acrossEndpoints(endpointsFor(this.conf, repo, true), `${repositoryName(repo)}@${digest}`, async (endpoint) => {
      const res = await this.exchange(
        endpoint,
        { method: 'HEAD', path: `/v2/${endpoint.path}/blobs/${digest}`, headers: {}, signal: options.signal },
        { kind: 'blob', digest, repository: repositoryName(repo) },
      );
      await res.body.dump();
      const length = header(res, 'content-length');
      return { size: length !== undefined ? Number(length) : undefined };
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const pools = [...this.pools.values()];
    this.pools.clear();
    // Streams a reader abandoned without destroying them would hold close() forever: destroy after a grace.
    await Promise.all(
      pools.map(async (p) => {
        let timer: NodeJS.Timeout | undefined;
        const grace = new Promise<'late'>((resolve) => {
          timer = setTimeout(() => resolve('late'), CLOSE_GRACE_MS);
        });
        const outcome = await Promise.race([p.close().catch(() => 'late' as const), grace]);
        clearTimeout(timer);
        if (outcome === 'late') await p.destroy().catch(() => undefined);
      }),
    );
  }

  // ---- endpoints ----

  /** Tries each endpoint in order; a failing one (mirror or not) falls through to the next. */
  private async acrossEndpoints<T>(endpoints: Endpoint[], what: string, attempt: (endpoint: Endpoint) => Promise<T>): Promise<T> {
    const failures: Array<{ endpoint: Endpoint; error: unknown }> = [];
    for (const endpoint of endpoints) {
      try {
        return await attempt(endpoint);
      } catch (error) {
        if (!isUserError(error) && !(error instanceof DigestMismatchError)) throw error; // bugs and aborts stop here
        failures.push({ endpoint, error });
      }
    }
    throw combineFailures(failures, what);
  }

  // ---- blobs ----

  private async pumpBlob(repo: Repository, blob: { digest: Digest; size: number }, offset: number, out: VerifyingStream, signal: AbortSignal): Promise<void> {
    const download: BlobDownload = { resource: { kind: 'blob', digest: blob.digest, repository: repositoryName(repo) }, blob, out, signal };
    let position = offset;
    const failures: Array<{ endpoint: Endpoint; error: unknown }> = [];
    for (const endpoint of endpointsFor(this.conf, repo, true)) {
      const outcome = await this.pumpFromEndpoint(endpoint, download, position);
      if (outcome === 'ended') return;
      // Next endpoint, same position: the digest covers the whole blob whoever served the parts.
      position = outcome.position;
      if (outcome.failed !== undefined) failures.push({ endpoint, error: outcome.failed });
    }
    throw combineFailures(failures, `${repositoryName(repo)}@${blob.digest}`, () =>
      new UserError('REGISTRY_ERROR', `blob ${blob.digest} of ${repositoryName(repo)}: the registry kept ending the body at byte ${position} of ${blob.size}`),
    );
  }

  /**
   * One endpoint's part of a blob download: a request from `position`, its body copied, and resumes while
   * the retry policy says so. Ends the blob, or returns where it stands when the policy moves on (with the
   * endpoint's error when its request failed).
   */
  private async pumpFromEndpoint(endpoint: Endpoint, download: BlobDownload, from: number): Promise<'ended' | { position: number; failed?: unknown }> {
    const { resource, blob, out, signal } = download;
    let position = from;
    let resumesWithoutProgress = 0;
    for (let round = 0; round < MAX_BLOB_ROUNDS; round++) {
      if (position >= blob.size) return endBlob(out);
      const startedAt = position;
      let res: Response;
      try {
        res = await this.requestBlob(endpoint, download, position);
      } catch (error) {
        if (!isUserError(error)) throw error;
        return { position, failed: error };
      }
      const { copied, error } = await this.copyBody(res, position, out);
      position += copied;
      resumesWithoutProgress = position > startedAt ? 0 : resumesWithoutProgress + 1;
      if (error === undefined && position >= blob.size) return endBlob(out);
      // A body that ended cleanly but short (no Content-Length to catch it) is a failure too: ask for the rest.
      const failure: Failure = error === undefined ? { kind: 'truncated' } : classifyFailure(error);
      const decision = decideRetry(failure, { phase: 'blob-body', resumesWithoutProgress, stopped: signal.aborted || out.destroyed }, this.retry);
      if (decision.action === 'next-endpoint') return { position };
      if (decision.action === 'give-up' && decision.reason === 'exhausted') {
        throw new UserError('REGISTRY_UNREACHABLE', `${describeResource(resource, endpoint)}: the connection to ${endpoint.host} kept breaking at byte ${position} of ${blob.size} (${errnoCode(error) ?? (error as Error).message})`);
      }
      if (decision.action !== 'resume') throw error;
      if (decision.delayMs !== undefined) await (this.retry.sleep ?? abortableSleep)(decision.delayMs, signal);
    }
    return { position };
  }

  private requestBlob(endpoint: Endpoint, download: BlobDownload, position: number): Promise<Response> {
    const { resource, signal } = download;
    return this.exchange(
      endpoint,
      { method: 'GET', path: `/v2/${endpoint.path}/blobs/${resource.digest}`, headers: position > 0 ? { range: `bytes=${position}-` } : {}, signal },
      resource,
    );
  }

  /**
   * Copies a (possibly ranged) blob body into `out` with backpressure. Returns the bytes copied, and the
   * error that broke the copy if one did (the bytes before it are kept: a resume starts after them). A
   * Content-Range that does not start where asked is thrown: no retry makes that answer usable.
   */
  private async copyBody(res: Response, position: number, out: VerifyingStream): Promise<{ copied: number; error?: unknown }> {
    let skip = 0;
    if (position > 0) {
      if (res.statusCode === 200) {
        skip = position; // the server ignored Range: drop what we already have
      } else {
        const range = /^bytes (\d+)-/.exec(header(res, 'content-range') ?? '');
        if (!range || Number(range[1]) !== position) {
          await res.body.dump();
          throw new UserError('REGISTRY_ERROR', `asked for bytes from ${position} but got Content-Range "${header(res, 'content-range') ?? ''}"`);
        }
      }
    }
    let copied = 0;
    try {
      for await (const raw of res.body) {
        let chunk = raw as Buffer;
        if (skip > 0) {
          const dropped = Math.min(skip, chunk.length);
          skip -= dropped;
          chunk = chunk.subarray(dropped);
          if (chunk.length === 0) continue;
        }
        if (out.destroyed) throw new Error('the blob stream was closed');
        copied += chunk.length;
        if (!out.write(chunk)) await waitForDrain(out);
      }
    } catch (error) {
      return { copied, error };
    }
    return { copied };
  }

  // ---- one logical request: retries, auth, redirects, status mapping ----

  /**
   * One logical request, tried again while the retry policy says so. `consume` runs inside each try on a
   * 2xx response, so a small body (a manifest) that breaks mid-way is fetched again; blob bodies are
   * returned unread and resumed instead (pumpFromEndpoint).
   */
  private async exchange(endpoint: Endpoint, request: Request, resource: Resource): Promise<Response>;
  private async exchange<T>(endpoint: Endpoint, request: Request, resource: Resource, consume: (res: Response) => Promise<T>): Promise<T>;
  private async exchange<T>(endpoint: Endpoint, request: Request, resource: Resource, consume?: (res: Response) => Promise<T>): Promise<T | Response> {
    if (this.closed) throw new Error('RegistryClient is closed');
    try {
      return await retryRequest(() => this.tryOnce(endpoint, request, resource, consume), this.retry, request.signal, (decision, error) => this.requestError(decision, error, endpoint, resource));
    } catch (error) {
      throw this.toUserError(error, endpoint, resource, request.signal);
    }
  }

  /** One try: sent with authorization, redirects followed; a 2xx is consumed, any other status thrown as a StatusFailure. */
  private async tryOnce<T>(endpoint: Endpoint, request: Request, resource: Resource, consume: ((res: Response) => Promise<T>) | undefined): Promise<T | Response> {
    const sent = await this.authorized(endpoint, request, resource);
    // Blob GETs are redirected to storage backends; follow any redirect, never carrying Authorization elsewhere.
    const final = await this.followRedirects(endpoint, request, sent);
    if (final.statusCode >= 200 && final.statusCode < 300) return consume ? await consume(final) : final;
    const body = request.method === 'HEAD' ? '' : (await readLimited(final, MAX_ERROR_BODY_BYTES, 'error body').catch(() => Buffer.alloc(0))).toString('utf8');
    if (request.method === 'HEAD') await final.body.dump();
    throw new StatusFailure(final.statusCode, body, parseRetryAfter(final.headers['retry-after']));
  }

  /** A status never retried is reported as what it means (unauthorized, unknown, ...); anything else as it came. */
  private async requestError(decision: RetryDecision, error: unknown, endpoint: Endpoint, resource: Resource): Promise<unknown> {
    const notRetryable = decision.action === 'give-up' && decision.reason === 'not-retryable';
    return notRetryable && error instanceof StatusFailure ? this.statusError(endpoint, error.status, error.body, resource) : error;
  }

  private toUserError(error: unknown, endpoint: Endpoint, resource: Resource, signal: AbortSignal | undefined): unknown {
    if (isUserError(error) || signal?.aborted) return error;
    const what = describeResource(resource, endpoint);
    if (error instanceof StatusFailure) {
      const detail = error.body ? `: ${describeErrorBody(error.body)}` : '';
      return new UserError('REGISTRY_ERROR', `${endpoint.host} answered HTTP ${error.status} for ${what} after ${this.retry.attempts} tries${detail}`, { subject: { kind: 'registry', name: endpoint.host }, cause: error });
    }
    const code = networkErrorCode(error);
    if (code !== undefined && (UNREACHABLE_CODES.has(code) || isTlsError(code) || isTransientNetworkError(error))) {
      return new UserError('REGISTRY_UNREACHABLE', `cannot reach registry ${endpoint.host} for ${what}: ${code} (${(error as Error).message})`, {
        subject: { kind: 'registry', name: endpoint.host },
        hint: isTlsError(code)
          ? `if ${endpoint.host} is a registry without valid TLS, mark it insecure = true in --registries-conf`
          : `check that ${endpoint.host} is the right host and reachable from here`,
        cause: error,
      });
    }
    return error;
  }

  private async statusError(endpoint: Endpoint, status: number, body: string, resource: Resource): Promise<UserError> {
    const detail = describeErrorBody(body);
    const suffix = detail ? ` (${detail})` : '';
    if (status === 401 || status === 403) {
      const credential = await this.credentialFor(endpoint);
      return new UserError(
        'REGISTRY_UNAUTHORIZED',
        `registry ${endpoint.host} refused access to repository ${endpoint.path} (HTTP ${status}${detail ? `: ${detail}` : ''})${credential ? ` with the credentials from ${credential.source}` : ' without credentials'}`,
        { hint: AUTH_HINT, subject: { kind: 'registry', name: endpoint.host } },
      );
    }
    if (status === 404 && resource.kind === 'manifest') {
      return new UserError('MANIFEST_UNKNOWN', `manifest ${resource.reference} not found at ${endpointName(endpoint)}${suffix}`, { subject: { kind: 'image', name: resource.reference } });
    }
    if (status === 404 && resource.kind === 'referrers') {
      // The spec's answer of a registry without the referrers API (docker-registry 2.8): callers fall back to the tag.
      return new UserError('MANIFEST_UNKNOWN', `${endpointName(endpoint)} does not serve the referrers API for ${resource.reference}${suffix}`, { subject: { kind: 'image', name: resource.reference } });
    }
    if (status === 404 && resource.kind === 'blob') {
      return new UserError('BLOB_UNKNOWN', `blob ${resource.digest} of ${resource.repository} not found at ${endpointName(endpoint)}${suffix}`, { subject: { kind: 'digest', name: resource.digest } });
    }
    return new UserError('REGISTRY_ERROR', `${endpoint.host} answered HTTP ${status} for ${describeResource(resource, endpoint)}${suffix}`, { subject: { kind: 'registry', name: endpoint.host } });
  }

  // ---- auth ----

  private credentialFor(endpoint: Endpoint): Promise<Credential | undefined> {
    return this.credentials.lookup({ domain: endpoint.host, path: endpoint.path });
  }

  /** An Authorization value from what we already know about the host, fetching a token if needed. */
  private async upfrontAuthorization(endpoint: Endpoint, credential: Credential | undefined, scope: string): Promise<string | undefined> {
    const challenge = this.challenges.get(endpoint.host);
    if (!challenge) return undefined;
    if (challenge.scheme === 'basic') return credential ? basicAuthorization(credential) : undefined;
    return `Bearer ${await this.tokens.get(challenge, scope, credential, endpoint.host)}`;
  }

  /**
   * Sends with the best Authorization we have; on a 401, takes the new challenge (dropping a refused
   * cached token) and tries once more. A second 401 is left to the caller to report.
   */
  private async authorized(endpoint: Endpoint, request: Request, resource: Resource): Promise<Sent> {
    const credential = await this.credentialFor(endpoint);
    const scope = request.scope ?? pullScope(endpoint.path);
    const before = await this.upfrontAuthorization(endpoint, credential, scope);
    const first = await this.send(endpoint, request, before);
    if (first.res.statusCode !== 401) return first;
    const challenge = preferredChallenge(parseChallenges(first.res.headers['www-authenticate']));
    if (!challenge) return first;
    await first.res.body.dump();
    this.challenges.set(endpoint.host, challenge);
    let authorization: string;
    if (challenge.scheme === 'bearer') {
      // Only a token we sent and the registry refused is dropped; a request sent without one
      // (the first, or parallel first ones) just takes the shared, possibly fresh, cached token.
      if (before?.startsWith('Bearer ')) this.tokens.drop(challenge, scope, before.slice('Bearer '.length));
      authorization = `Bearer ${await this.tokens.get(challenge, scope, credential, endpoint.host)}`;
    } else {
      if (!credential || before === basicAuthorization(credential)) throw await this.statusError(endpoint, 401, '', resource);
      authorization = basicAuthorization(credential);
    }
    return this.send(endpoint, request, authorization);
  }

  private readonly tokenTransport: TokenTransport = async (url, init) => {
    const pool = this.pool(url.origin, !(url.protocol === 'https:' && this.insecureHosts.has(url.host)));
    const res = await pool.request({
      method: init.method,
      path: `${url.pathname}${url.search}`,
      headers: { 'user-agent': this.userAgent, ...init.headers },
      ...(init.body !== undefined ? { body: init.body } : {}),
    });
    const body = await readLimited(res, MAX_ERROR_BODY_BYTES * 16, `token from ${url.origin}`);
    return { status: res.statusCode, body: body.toString('utf8') };
  };

  // ---- transport ----

  private isInsecure(endpoint: Endpoint): boolean {
    return endpoint.insecure || (this.loopbackIsInsecure && isLoopback(endpoint.host));
  }

  private pool(origin: string, verifyTls: boolean): Pool {
    const key = `${origin} ${verifyTls ? 'verify' : 'noverify'}`;
    let pool = this.pools.get(key);
    if (!pool) {
      const { ca, cert, key: certKey } = this.tls;
      pool = new Pool(origin, {
        connections: this.connections,
        connect: {
          rejectUnauthorized: verifyTls,
          timeout: this.timeouts.connectMs,
          // Extra CAs are added to Node's bundled ones, as containers' certs.d does.
          ...(ca !== undefined && ca.length > 0 ? { ca: [...tlsRootCertificates, ...ca] } : {}),
          ...(cert !== undefined && certKey !== undefined ? { cert, key: certKey } : {}),
        },
        headersTimeout: this.timeouts.headersMs,
        bodyTimeout: this.timeouts.bodyIdleMs,
      });
      this.pools.set(key, pool);
    }
    return pool;
  }

  /** https for secure endpoints; for insecure ones https then http, remembering what answered. */
  private scheme(endpoint: Endpoint, signal: AbortSignal | undefined): Promise<'https' | 'http'> {
    if (!this.isInsecure(endpoint)) return Promise.resolve('https');
    this.insecureHosts.add(endpoint.host);
    let known = this.schemes.get(endpoint.host);
    if (!known) {
      known = this.probeScheme(endpoint.host, signal);
      this.schemes.set(endpoint.host, known);
      known.catch(() => this.schemes.delete(endpoint.host)); // unreachable now: probe again next time
    }
    return known;
  }

  private async probeScheme(host: string, signal: AbortSignal | undefined): Promise<'https' | 'http'> {
    const ping = async (scheme: 'https' | 'http'): Promise<void> => {
      const res = await this.pool(`${scheme}://${host}`, false).request({
        method: 'GET',
        path: '/v2/',
        headers: { 'user-agent': this.userAgent },
        // A plain-HTTP server may sit silent on a TLS hello: do not wait the full header timeout for it.
        headersTimeout: Math.min(this.timeouts.headersMs, PROBE_TIMEOUT_MS),
        ...(signal ? { signal } : {}),
      });
      await res.body.dump();
    };
    try {
      await ping('https');
      return 'https';
    } catch (error) {
      if (signal?.aborted) throw error;
      await ping('http');
      return 'http';
    }
  }

  private async send(endpoint: Endpoint, request: Request, authorization: string | undefined): Promise<Sent> {
    const scheme = await this.scheme(endpoint, request.signal);
    const origin = `${scheme}://${endpoint.host}`;
    const headers: Record<string, string> = { 'user-agent': this.userAgent, ...request.headers };
    if (authorization) headers.authorization = authorization;
    const res = await this.pool(origin, !this.isInsecure(endpoint))
      .request({
        method: request.method,
        path: request.path,
        headers,
        ...(request.body ? { body: request.body() } : {}),
        ...(request.signal ? { signal: request.signal } : {}),
        ...(request.keepAlive && !this.garbledOrigins.has(origin) ? { reset: false } : {}),
      })
      .catch((error: unknown) => {
        if (networkErrorCode(error) === HTTP_PARSER_ERROR) this.garbledOrigins.add(origin);
        throw error;
      });
    return { res, origin, authorization };
  }

  /** Follows blob redirects (storage backends); Authorization never goes to another origin. */
  private async followRedirects(endpoint: Endpoint, request: Request, sent: Sent): Promise<Response> {
    let res = sent.res;
    let current = new URL(request.path, sent.origin);
    let authorization = sent.authorization;
    for (let hop = 0; hop < MAX_REDIRECTS && [301, 302, 303, 307, 308].includes(res.statusCode); hop++) {
      const location = header(res, 'location');
      await res.body.dump();
      if (!location) throw new UserError('REGISTRY_ERROR', `${endpoint.host} redirected without a Location header`, { subject: { kind: 'registry', name: endpoint.host } });
      const target = new URL(location, current);
      if (target.origin !== current.origin) authorization = undefined;
      const headers: Record<string, string> = { 'user-agent': this.userAgent, ...request.headers };
      if (authorization) headers.authorization = authorization;
      const verifyTls = !(this.isInsecure(endpoint) && target.host === endpoint.host);
      res = await this.pool(target.origin, verifyTls).request({
        method: request.method,
        path: `${target.pathname}${target.search}`,
        headers,
        ...(request.signal ? { signal: request.signal } : {}),
      });
      current = target;
    }
    return res;
  }
}

/** The manifest's media type: the Content-Type when it names a manifest type, else the document's own. */
function manifestMediaType(contentType: string | undefined, bytes: Buffer): string {
  const type = contentType?.split(';')[0]?.trim();
  if (type && isManifestMediaType(type)) return type;
  try {
    const declared = (JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown }).mediaType;
    if (typeof declared === 'string' && declared !== '') return declared;
  } catch {
    // parseManifest reports bad JSON later with a better message
  }
  return type ?? 'application/octet-stream';
}

function hashAs(algorithmOf: Digest, bytes: Buffer): string {
  const hash: Hash = createHash(digestAlgorithm(algorithmOf));
  return `${digestAlgorithm(algorithmOf)}:${hash.update(bytes).digest('hex')}`;
}

/** Checks the bytes against the digest asked for and the one the registry claims; returns the digest. */
function verifyManifestDigest(bytes: Buffer, asked: Digest | undefined, served: string | undefined, where: string): Digest {
  if (asked !== undefined) {
    const actual = hashAs(asked, bytes);
    if (actual !== asked) throw new UserError('DIGEST_MISMATCH', `${where}: content has digest ${actual}, expected ${asked}`, { subject: { kind: 'digest', name: asked } });
  }
  if (served !== undefined && isDigest(served)) {
    const actual = hashAs(served, bytes);
    if (actual !== served) throw new UserError('DIGEST_MISMATCH', `${where}: content has digest ${actual}, but the registry said Docker-Content-Digest ${served}`, { subject: { kind: 'digest', name: served } });
  }
  return asked ?? sha256Of(bytes);
}

/** One endpoint's error as is; several: the last one's code, with every endpoint tried named. */
function combineFailures(failures: Array<{ endpoint: Endpoint; error: unknown }>, what: string, fallback?: () => UserError): unknown {
  const last = failures[failures.length - 1];
  if (!last) return fallback ? fallback() : new UserError('REGISTRY_ERROR', `no endpoint to fetch ${what} from`);
  if (failures.length === 1) return last.error;
  const lastError = last.error as UserError;
  const tried = failures.map(({ endpoint, error }) => `${endpointName(endpoint)}: ${(error as Error).message}`).join('; ');
  return new UserError(lastError.code ?? 'REGISTRY_ERROR', `cannot fetch ${what}; tried ${failures.length} endpoints: ${tried}`, {
    hint: lastError.hint,
    cause: lastError,
  });
}
