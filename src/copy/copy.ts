// The one copy of images from an ImageSource to an ImageDestination, in containers/image's order: blobs (each
// once per destination repository); each image's manifests, children first, and tags as soon as its blobs are
// in; commit at the end.

import type { Hash } from 'node:crypto';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DigestMismatchError, sha256Of, VerifyingStream, type Digest } from '../oci/digest.js';
import { isIndexMediaType } from '../oci/media-types.js';
import { repositoryName, type Repository } from '../oci/reference.js';
import { describeErrorBody } from '../registry/client.js';
import { DEFAULT_RETRY_POLICY, retryRequest, StatusFailure, type RetryDecision, type RetryPolicy } from '../registry/retry.js';
import type { ImageSource } from '../registry/source.js';
import { mapBounded } from '../util/concurrency.js';
import { isUserError, UserError } from '../util/errors.js';
import type { BlobRef, ImageDestination, ManifestBytes } from './destination.js';
import { ImageReadiness } from './image-readiness.js';

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
  /**
   * Blob steps in flight at once (default 8), and beside them at most as many images' manifest steps: up to
   * twice this many requests. Two limits, not one shared, so that an image whose blobs are in gets its small
   * manifest requests through at once instead of queueing behind large blob transfers.
   */
  readonly concurrency?: number;
  readonly retry?: Partial<RetryPolicy>;
  readonly signal?: AbortSignal;
  readonly onProgress?: (progress: CopyProgress) => void;
  /**
   * Go on past a blob or manifest that fails, and name them all at the end (CopyIncomplete, thrown
   * without committing) instead of stopping at the first: `bundle create` reports every blob it cannot
   * have in one run. The errors are kept as the steps threw them, not reworded as push errors.
   */
  readonly keepGoing?: boolean;
  /**
   * With keepGoing: an error that no other step could get past either (the destination's disk is full, its
   * volume fails with EIO). It stops the whole copy, blobs and manifests, and is thrown as it is instead of
   * being collected as one blob's failure.
   */
  readonly isFatal?: (error: unknown) => boolean;
}

/** A blob or manifest the copy could not place, with the first image that needed it. */
export interface CopyFailure {
  readonly image: CopyImage;
  readonly digest: Digest;
  readonly error: unknown;
}

/** A keepGoing copy that ended with failures: everything else was placed, nothing was committed. */
export class CopyIncomplete extends Error {
  constructor(readonly failures: readonly CopyFailure[]) {
    super(`${failures.length} blob(s) or manifest(s) could not be copied`);
    this.name = 'CopyIncomplete';
  }
}

/**
 * keepGoing: an index left unwritten because a manifest of its image before it (a child) could not be placed.
 * A registry would refuse it (its child is missing) and a bundle would hold an index pointing at nothing.
 */
export class IndexSkipped extends Error {
  constructor(
    readonly index: Digest,
    readonly child: Digest,
    image: string,
  ) {
    super(`index ${index} of image ${image} not written: its manifest ${child} could not be copied`);
    this.name = 'IndexSkipped';
  }
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

/** Blobs up to this size are copied first (quick on any link): they complete images early. */
const SMALL_BLOB = 1024 * 1024;

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

/** Every blob step of a copy, in the order they run, with the repository each digest is first sent to. */
interface BlobPlan {
  /** One per digest: its bytes go to the first repository that needs it. */
  readonly firstSteps: readonly BlobStep[];
  /** The same digest for other repositories: mounted from the first once its bytes are in. */
  readonly laterSteps: readonly BlobStep[];
  readonly firstRepository: ReadonlyMap<Digest, string>;
  readonly bytesTotal: number;
}

/**
 * Each blob once per destination repository. Small blobs (configs, mostly) first in image order, so that
 * images become whole early; then the rest largest first, so the longest transfer never starts last and
 * leaves the other connections idle.
 */
function planBlobSteps(images: readonly CopyImage[]): BlobPlan {
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
  const small = (step: BlobStep): boolean => step.blob.size <= SMALL_BLOB;
  firstSteps.sort((a, b) => Number(small(b)) - Number(small(a)) || (small(a) ? 0 : b.blob.size - a.blob.size));
  return { firstSteps, laterSteps, firstRepository, bytesTotal };
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
    retryRequest(work, policy, signal, options.keepGoing ? undefined : (decision, error) => stepError(destination, step, image, decision, error));
  // keepGoing: the first failure of each digest, and the steps run so that one failure stops nothing else
  // (except a fatal one: see CopyOptions.isFatal). A step says whether it succeeded: only then do the images
  // that wait for its blob move on.
  const failures = new Map<Digest, CopyFailure>();
  const step = async (image: CopyImage, digest: Digest, work: () => Promise<void>): Promise<boolean> => {
    if (!options.keepGoing) {
      await work();
      return true;
    }
    if (failures.has(digest)) return false; // another repository's step for it failed already: no second try
    try {
      if (signal?.aborted) throw new Error('cancelled');
      await work();
      return true;
    } catch (error) {
      if (options.isFatal?.(error) === true) throw error;
      if (!failures.has(digest)) failures.set(digest, { image, digest, error });
      return false;
    }
  };

  const { firstSteps, laterSteps, firstRepository, bytesTotal } = planBlobSteps(images);
  const blobsTotal = firstSteps.length + laterSteps.length;
  const report = (): void => options.onProgress?.({ bytesDone: tally.bytesDone, bytesTotal, blobsDone: tally.blobsDone, blobsTotal });

  const copyBlobStep = ({ image, blob }: BlobStep, mountFrom: string | undefined): Promise<boolean> => step(image, blob.digest, async () => {
    const what = `blob ${blob.digest}`;
    const reuse = await retried(what, image, () => destination.reuseBlob(image.repository, blob, mountFrom, signal));
    if (reuse === 'present') tally.blobsPresent++;
    else if (reuse === 'mounted') tally.blobsMounted++;
    else {
      const open = (offset: number, prefixHash?: Hash): Readable => verifiedBlob(source, image, blob, { offset, prefixHash, signal, holdBack: destination.resumesPartialBlobs !== true });
      const sent = await retried(what, image, () => destination.putBlob(image.repository, blob, open, signal));
      tally.blobsSent++;
      tally.bytesSent += sent;
    }
    tally.blobsDone++;
    tally.bytesDone += blob.size;
    report();
  });

  // Manifests: children before the index that lists them (the registry checks that they exist), each once per
  // repository. The destination is asked first: a manifest it holds is read from the source only for a tag.
  const fetchManifest = (image: CopyImage, entry: { digest: Digest; mediaType: string }): Promise<ManifestBytes> => fetchVerifiedManifest(source, image, entry, signal);
  /** Placed (with its bytes when they were read), or refused as a sparse index. */
  type ManifestPlaced = { readonly manifest?: ManifestBytes } | 'refused';
  const manifestsDone = new Map<string, Promise<ManifestPlaced>>();
  const copyManifest = (image: CopyImage, entry: { digest: Digest; mediaType: string }): Promise<ManifestPlaced> => {
    const key = `${image.repository}@${entry.digest}`;
    let done = manifestsDone.get(key);
    if (done === undefined) {
      done = (async (): Promise<ManifestPlaced> => {
        const what = `manifest ${entry.digest}`;
        if (await retried(what, image, () => destination.hasManifest(image.repository, entry.digest, signal))) {
          tally.manifestsPresent++;
          return {};
        }
        const manifest = await fetchManifest(image, entry);
        try {
          await retried(what, image, () => destination.putManifest(image.repository, manifest, signal));
        } catch (error) {
          if (!refusedAsSparse(error, manifest, image)) throw error;
          tally.sparseIndexesRefused.push(image.name);
          return 'refused';
        }
        tally.manifestsPut++;
        return { manifest };
      })();
      manifestsDone.set(key, done);
    }
    return done;
  };
  const copyImageManifests = async (image: CopyImage): Promise<void> => {
    let placed: ManifestPlaced | undefined;
    /** keepGoing: the image's first manifest that could not be placed. */
    let missing: Digest | undefined;
    for (const entry of image.manifests) {
      // keepGoing: the image's other manifests are still tried (one run names them all), but no index after a
      // manifest that failed (it lists it, or an index that does), and no tag.
      if (missing !== undefined && isIndexMediaType(entry.mediaType)) {
        if (!failures.has(entry.digest)) failures.set(entry.digest, { image, digest: entry.digest, error: new IndexSkipped(entry.digest, missing, image.name) });
        continue;
      }
      const stepped = await step(image, entry.digest, async () => {
        placed = await copyManifest(image, entry);
      });
      if (!stepped) missing ??= entry.digest;
    }
    if (placed === undefined || placed === 'refused' || missing !== undefined) return; // no manifest, a refused sparse index, or a failure: no tag
    const topEntry = image.manifests[image.manifests.length - 1]!;
    let top = placed.manifest;
    for (const tag of image.tags) {
      const what = `tag ${tag} (manifest ${topEntry.digest})`;
      const current = await retried(what, image, () => destination.tagDigest(image.repository, tag, signal));
      if (current === topEntry.digest) tally.tagsPresent++;
      else {
        const manifest = top ?? (top = await fetchManifest(image, topEntry));
        await retried(what, image, () => destination.putTag(image.repository, tag, manifest, signal));
        tally.tagsPut++;
      }
    }
  };

  // An image's manifests go as soon as every blob it needs is in its repository (containers/image copies
  // image by image), at most `concurrency` images at once beside the blobs: images become whole as the copy
  // goes. Without keepGoing the first failure is thrown at the end: a blob's stops all new work, a manifest's
  // stops the manifests only, so the blobs still all go in (a re-run then has manifests left, not bytes).
  // A fatal error (keepGoing's isFatal) stops both wherever it comes from.
  const readiness = new ImageReadiness(images);
  let stopped: { readonly error: unknown } | undefined;
  let blobsStopped = false;
  const stop = (error: unknown, blobsToo: boolean): void => {
    stopped ??= { error };
    if (blobsToo) blobsStopped = true;
  };
  const running = new Set<Promise<void>>();
  const startManifests = (): void => {
    while (running.size < concurrency && readiness.hasReady && stopped === undefined) {
      const run: Promise<void> = copyImageManifests(readiness.next()!)
        .catch((error: unknown) => stop(error, options.isFatal?.(error) === true))
        .finally(() => {
          running.delete(run);
          startManifests();
        });
      running.add(run);
    }
  };
  const copyBlob = async (blobStep: BlobStep, mountFrom: string | undefined): Promise<void> => {
    if (blobsStopped) throw stopped!.error;
    let placed: boolean;
    try {
      placed = await copyBlobStep(blobStep, mountFrom);
    } catch (error) {
      stop(error, true);
      throw error;
    }
    // A blob that failed (keepGoing) leaves its images waiting: their manifests are never written.
    if (placed) readiness.blobPlaced(blobStep.image.repository, blobStep.blob.digest);
    startManifests();
  };
  startManifests();
  await mapBounded(firstSteps, concurrency, (blobStep) => copyBlob(blobStep, undefined))
    .then(() => mapBounded(laterSteps, concurrency, (blobStep) => copyBlob(blobStep, firstRepository.get(blobStep.blob.digest))))
    .catch(() => undefined); // the error is in `stopped`
  while (running.size > 0) await Promise.all(running);
  if (stopped !== undefined) throw stopped.error;

  if (failures.size > 0) throw new CopyIncomplete([...failures.values()]);
  await destination.commit(signal);
  const { blobsSent, blobsMounted, blobsPresent, bytesSent, manifestsPut, manifestsPresent, tagsPut, tagsPresent, sparseIndexesRefused } = tally;
  return { images: images.length, blobsSent, blobsMounted, blobsPresent, bytesSent, manifestsPut, manifestsPresent, tagsPut, tagsPresent, sparseIndexesRefused };
}

/** A manifest's bytes from the source, checked against its digest here: a source need not check what it reads (a layout, a bundle). */
async function fetchVerifiedManifest(source: ImageSource, image: CopyImage, entry: { digest: Digest; mediaType: string }, signal: AbortSignal | undefined): Promise<ManifestBytes> {
  const fetched = await source.getManifest({ ...image.source, digest: entry.digest }, signal ? { signal } : {});
  const actual = sha256Of(fetched.bytes);
  if (actual !== entry.digest) {
    const mismatch = new DigestMismatchError(entry.digest, actual, `manifest ${entry.digest} of image ${image.name} read from ${source.name ?? repositoryName(image.source)}`);
    throw new UserError('DIGEST_MISMATCH', mismatch.message, { subject: { kind: 'image', name: image.name }, hint: 'the source holds other bytes under that digest (a damaged file or medium): repair or re-create it, then run again', cause: mismatch });
  }
  return { digest: entry.digest, mediaType: entry.mediaType, bytes: fetched.bytes };
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
 * The blob's bytes from `offset`, checked against its digest and size on the way, exactly once: by the
 * source when it declares `verifiesBlobs` (the registry client), else here. With `prefixHash` (the
 * destination's own bytes [0, offset) hashed) only the rest is read from the source; without it the whole
 * blob is read and hashed and the part the destination already has dropped, so a resumed upload is
 * verified as a whole too. A failed check errors the stream before its last chunk is passed on
 * (HoldLastChunk): no destination ever sees a blob whole whose digest is wrong. A destination that
 * resumes partial blobs (ImageDestination.resumesPartialBlobs) gets every byte at once instead: it keeps
 * a blob only when its stream ended, and the bytes before an error are its progress.
 */
function verifiedBlob(source: ImageSource, image: CopyImage, blob: BlobRef, at: { offset: number; prefixHash: Hash | undefined; signal: AbortSignal | undefined; holdBack: boolean }): Readable {
  const { offset, prefixHash, signal, holdBack } = at;
  const from = prefixHash !== undefined ? offset : 0;
  // A source that verifies takes the prefix hash itself; otherwise it is the copy's own check that continues it.
  const sourceVerifies = source.verifiesBlobs === true;
  const bytes = source.blobStream(image.source, blob, {
    ...(from > 0 ? { offset: from } : {}),
    ...(from > 0 && sourceVerifies && prefixHash ? { prefixHash } : {}),
    ...(signal ? { signal } : {}),
  });
  const stages: [Readable, ...Transform[]] = [bytes];
  if (!sourceVerifies) stages.push(new VerifyingStream(blob.digest, blob.size, `blob ${blob.digest} of image ${image.name}`, from > 0 ? prefixHash : undefined, from));
  if (holdBack) stages.push(new HoldLastChunk());
  if (offset > from) stages.push(new SkipBytes(offset - from));
  if (stages.length === 1) return bytes; // a verified source into a destination that holds nothing back: as it is
  // The last stage is handed out as it is (no extra pass-through per chunk): pipeline destroys it with the error.
  const out = stages[stages.length - 1]!;
  pipeline(stages).catch((err: unknown) => out.destroy(err as Error));
  return out;
}
