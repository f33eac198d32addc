// The one copy of images from an ImageSource to an ImageDestination, in containers/image's order: every
// blob (each once per destination repository), then manifests children first, then tags, then commit.

import { PassThrough, Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DigestMismatchError, sha256Of, VerifyingStream, type Digest } from '../oci/digest.js';
import { repositoryName, type Repository } from '../oci/reference.js';
import { describeErrorBody } from '../registry/client.js';
import { DEFAULT_RETRY_POLICY, retryRequest, StatusFailure, type RetryDecision, type RetryPolicy } from '../registry/retry.js';
import type { ImageSource } from '../registry/source.js';
import { mapBounded } from '../util/concurrency.js';
import { isUserError, UserError } from '../util/errors.js';
import type { BlobRef, ImageDestination, ManifestBytes } from './destination.js';

/** One image to copy, as a plan (bundle manifest, layout walk) describes it. */
export interface CopyImage {
  /** The image as its source names it ("quay.io/ns/app@sha256:…"): for messages. */
  readonly name: string;
  /** Where the source reads it. */
  readonly source: Repository;
  /** The destination repository ("prefix/ns/app"). */
  readonly repository: string;
  /** Every manifest of the image, children before the index that lists them (the top one last). */
  readonly manifests: ReadonlyArray<{ readonly digest: Digest; readonly mediaType: string }>;
  /** Every config and layer blob. */
  readonly blobs: readonly BlobRef[];
  /** Tags pointed at the top manifest once everything below it is in place. */
  readonly tags: readonly string[];
}

export interface CopyProgress {
  readonly bytesDone: number;
  readonly bytesTotal: number;
  readonly blobsDone: number;
  readonly blobsTotal: number;
}

export interface CopyOptions {
  /** Blob and manifest steps in flight at once (default 8). */
  readonly concurrency?: number;
  readonly retry?: Partial<RetryPolicy>;
  readonly signal?: AbortSignal;
  readonly onProgress?: (progress: CopyProgress) => void;
}

export interface CopySummary {
  readonly images: number;
  readonly blobsSent: number;
  /** Placed by a cross-repository mount, without their bytes. */
  readonly blobsMounted: number;
  /** Already in the destination repository. */
  readonly blobsPresent: number;
  readonly bytesSent: number;
  readonly manifestsPut: number;
  readonly manifestsPresent: number;
  readonly tagsPut: number;
  readonly tagsPresent: number;
  /**
   * Images whose index the destination refused because the source holds only some of the platforms it
   * lists (a bundle made for some platforms): their platform manifests are there by digest, the index and
   * its tags are not. Registries that accept sparse indexes (Quay with its option) take them.
   */
  readonly sparseIndexesRefused: readonly string[];
}

/** One blob into one destination repository, on behalf of the first image that needs it there. */
interface BlobStep {
  readonly image: CopyImage;
  readonly blob: BlobRef;
}

/** Drops the first `count` bytes (already at the destination) after they were hashed upstream. */
class SkipBytes extends Transform {
  constructor(private remaining: number) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    if (this.remaining >= chunk.length) {
      this.remaining -= chunk.length;
      done();
      return;
    }
    const rest = chunk.subarray(this.remaining);
    this.remaining = 0;
    done(null, rest);
  }
}

/**
 * Passes every chunk on one late: the last is released only when the stream ends, that is once the digest
 * check before it has passed. A blob that fails the check thus never reaches the destination whole: its
 * request body stays short of its Content-Length, so no registry can take it, and no closing PUT follows.
 */
class HoldLastChunk extends Transform {
  private held: Buffer | undefined;

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    const previous = this.held;
    this.held = chunk;
    done(null, previous);
  }

  override _flush(done: TransformCallback): void {
    done(null, this.held);
  }
}

/** The status a failure ended with, for the error message (undefined for a connection failure). */
function statusOf(error: unknown): number | undefined {
  return error instanceof StatusFailure ? error.status : undefined;
}

/**
 * A failed step as the operator reads it: which image, which object, which repository of which
 * destination, and the status. A refusal (401/403/405) is PUSH_REFUSED, anything else PUSH_FAILED.
 */
function stepError(destination: ImageDestination, step: string, image: CopyImage, decision: RetryDecision, error: unknown): unknown {
  if (decision.action === 'give-up' && decision.reason === 'aborted') return error;
  const status = statusOf(error);
  const what = `${step} of image ${image.name} to repository ${image.repository} at ${destination.name}`;
  const tries = decision.action === 'give-up' && decision.reason === 'exhausted' ? ' (retried, giving up)' : '';
  const subject = { kind: 'image' as const, name: image.name };
  // The client reports a basic-auth refusal itself; for a push it is a refusal like any other.
  if (isUserError(error) && error.code === 'REGISTRY_UNAUTHORIZED') return new UserError('PUSH_REFUSED', `${what}: ${error.message}`, { subject, cause: error });
  if (isUserError(error)) return new UserError(error.code, `${what}: ${error.message}`, { subject, cause: error, ...(error.hint !== undefined ? { hint: error.hint } : {}) });
  if (status === 401 || status === 403 || status === 405) {
    const body = error instanceof StatusFailure && error.body ? `: ${describeErrorBody(error.body)}` : '';
    return new UserError('PUSH_REFUSED', `${what}: the registry refused it with HTTP ${status}${body}`, { subject, cause: error });
  }
  const detail = error instanceof StatusFailure ? `HTTP ${status}${error.body ? `: ${describeErrorBody(error.body)}` : ''}` : (error as Error).message;
  return new UserError('PUSH_FAILED', `${what}: ${detail}${tries}`, { subject, cause: error });
}

/** The running totals of one copy. */
class Tally {
  blobsSent = 0;
  blobsMounted = 0;
  blobsPresent = 0;
  bytesSent = 0;
  manifestsPut = 0;
  manifestsPresent = 0;
  tagsPut = 0;
  tagsPresent = 0;
  readonly sparseIndexesRefused: string[] = [];
  blobsDone = 0;
  bytesDone = 0;
}

/**
 * Copies `images` from `source` to `destination`. Each blob goes once into each destination repository:
 * present ones are left alone (HEAD), one already sent to another repository in this copy is mounted
 * from there, the rest are streamed from the source through a digest check. Every step is retried with
 * the registry client's policy; a re-run of a finished copy only asks (HEADs) and sends nothing.
 */
export async function copyImages(source: ImageSource, destination: ImageDestination, images: readonly CopyImage[], options: CopyOptions = {}): Promise<CopySummary> {
  const concurrency = Math.max(1, options.concurrency ?? 8);
  const policy: RetryPolicy = { ...DEFAULT_RETRY_POLICY, ...options.retry };
  const signal = options.signal;
  const tally = new Tally();

  const retried = <T>(step: string, image: CopyImage, work: () => Promise<T>): Promise<T> =>
    retryRequest(work, policy, signal, (decision, error) => stepError(destination, step, image, decision, error));

  // Blobs: the first repository to need a digest gets its bytes; other repositories mount it from there.
  const firstSteps: BlobStep[] = [];
  const laterSteps: BlobStep[] = [];
  const firstRepository = new Map<Digest, string>();
  const planned = new Set<string>();
  let bytesTotal = 0;
  for (const image of images) {
    for (const blob of image.blobs) {
      const key = `${image.repository}@${blob.digest}`;
      if (planned.has(key)) continue;
      planned.add(key);
      bytesTotal += blob.size;
      if (firstRepository.has(blob.digest)) laterSteps.push({ image, blob });
      else {
        firstRepository.set(blob.digest, image.repository);
        firstSteps.push({ image, blob });
      }
    }
  }
  // Largest first, so the longest upload never starts last and leaves the other connections idle.
  firstSteps.sort((a, b) => b.blob.size - a.blob.size);
  const blobsTotal = firstSteps.length + laterSteps.length;
  const report = (): void => options.onProgress?.({ bytesDone: tally.bytesDone, bytesTotal, blobsDone: tally.blobsDone, blobsTotal });

  const copyBlob = async ({ image, blob }: BlobStep, mountFrom: string | undefined): Promise<void> => {
    const what = `blob ${blob.digest}`;
    const reuse = await retried(what, image, () => destination.reuseBlob(image.repository, blob, mountFrom, signal));
    if (reuse === 'present') tally.blobsPresent++;
    else if (reuse === 'mounted') tally.blobsMounted++;
    else {
      const sent = await retried(what, image, () => destination.putBlob(image.repository, blob, (offset) => verifiedBlob(source, image, blob, offset, signal), signal));
      tally.blobsSent++;
      tally.bytesSent += sent;
    }
    tally.blobsDone++;
    tally.bytesDone += blob.size;
    report();
  };
  await mapBounded(firstSteps, concurrency, (step) => copyBlob(step, undefined));
  await mapBounded(laterSteps, concurrency, (step) => copyBlob(step, firstRepository.get(step.blob.digest)));

  // Manifests: children before the index that lists them (the registry checks that they exist), each once per repository.
  const manifestsDone = new Map<string, Promise<ManifestBytes | undefined>>();
  const copyManifest = (image: CopyImage, entry: { digest: Digest; mediaType: string }): Promise<ManifestBytes | undefined> => {
    const key = `${image.repository}@${entry.digest}`;
    let done = manifestsDone.get(key);
    if (done === undefined) {
      done = (async () => {
        const fetched = await source.getManifest({ ...image.source, digest: entry.digest }, signal ? { signal } : {});
        // A source need not check what it reads (a layout, a bundle): the copy never sends bytes it has not verified.
        const actual = sha256Of(fetched.bytes);
        if (actual !== entry.digest) {
          const mismatch = new DigestMismatchError(entry.digest, actual, `manifest ${entry.digest} of image ${image.name} read from ${source.name ?? repositoryName(image.source)}`);
          throw new UserError('DIGEST_MISMATCH', mismatch.message, { subject: { kind: 'image', name: image.name }, hint: 'the source holds other bytes under that digest (a damaged file or medium): repair or re-create it, then run again', cause: mismatch });
        }
        const manifest: ManifestBytes = { digest: entry.digest, mediaType: entry.mediaType, bytes: fetched.bytes };
        const what = `manifest ${entry.digest}`;
        if (await retried(what, image, () => destination.hasManifest(image.repository, entry.digest, signal))) tally.manifestsPresent++;
        else {
          try {
            await retried(what, image, () => destination.putManifest(image.repository, manifest, signal));
          } catch (error) {
            if (!refusedAsSparse(error, manifest, image)) throw error;
            tally.sparseIndexesRefused.push(image.name);
            return undefined;
          }
          tally.manifestsPut++;
        }
        return manifest;
      })();
      manifestsDone.set(key, done);
    }
    return done;
  };
  await mapBounded(images, concurrency, async (image) => {
    let top: ManifestBytes | undefined;
    for (const entry of image.manifests) top = await copyManifest(image, entry);
    if (top === undefined) return; // no manifest, or a sparse index the destination refused: no tag either
    for (const tag of image.tags) {
      const what = `tag ${tag} (manifest ${top.digest})`;
      const current = await retried(what, image, () => destination.tagDigest(image.repository, tag, signal));
      if (current === top.digest) tally.tagsPresent++;
      else {
        const manifest = top;
        await retried(what, image, () => destination.putTag(image.repository, tag, manifest, signal));
        tally.tagsPut++;
      }
    }
  });

  await destination.commit(signal);
  const { blobsSent, blobsMounted, blobsPresent, bytesSent, manifestsPut, manifestsPresent, tagsPut, tagsPresent, sparseIndexesRefused } = tally;
  return { images: images.length, blobsSent, blobsMounted, blobsPresent, bytesSent, manifestsPut, manifestsPresent, tagsPut, tagsPresent, sparseIndexesRefused };
}

/**
 * Whether a failed manifest PUT is a registry refusing (HTTP 400, e.g. MANIFEST_BLOB_UNKNOWN) an index
 * that lists children the image does not carry: distribution checks that every child exists.
 */
function refusedAsSparse(error: unknown, manifest: ManifestBytes, image: CopyImage): boolean {
  const cause = (error as { cause?: unknown }).cause;
  if (!(cause instanceof StatusFailure) || cause.status !== 400) return false;
  let children: unknown;
  try {
    children = (JSON.parse(manifest.bytes.toString('utf8')) as { manifests?: unknown }).manifests;
  } catch {
    return false;
  }
  if (!Array.isArray(children)) return false;
  const carried = new Set<string>(image.manifests.map((m) => m.digest));
  return children.some((child) => !carried.has((child as { digest?: string }).digest ?? ''));
}

/**
 * The blob's bytes from `offset`, checked against its digest and size on the way: the whole blob is read
 * and hashed, the part the destination already has is dropped after hashing, so a resumed upload is
 * verified as a whole too. A source that fails the check errors the stream, and the upload with it,
 * before its last chunk is sent (HoldLastChunk): this check is the only one a bundle push makes of a blob.
 */
function verifiedBlob(source: ImageSource, image: CopyImage, blob: BlobRef, offset: number, signal: AbortSignal | undefined): Readable {
  const bytes = source.blobStream(image.source, blob, signal ? { signal } : {});
  const verify = new VerifyingStream(blob.digest, blob.size, `blob ${blob.digest} of image ${image.name}`);
  const out = offset > 0 ? new SkipBytes(offset) : new PassThrough();
  pipeline(bytes, verify, new HoldLastChunk(), out).catch((err: unknown) => out.destroy(err as Error));
  return out;
}
