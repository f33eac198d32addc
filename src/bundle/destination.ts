// `bundle create`'s side of the copy pipeline: an ImageDestination that writes each blob and manifest at its
// precomputed offset in the preallocated volume files, with the resume journal (src/bundle/journal.ts).

import { createHash, type Hash } from 'node:crypto';
import type { BlobRef, BlobReuse, ImageDestination, ManifestBytes, OpenBlob } from '../copy/destination.js';
import { DigestMismatchError, sha256Digest, sha256Of, type Digest } from '../oci/digest.js';
import type { UncompressedSize } from './bundle-manifest.js';
import type { BlobTask } from './blob-tasks.js';
import type { CreateProgressMeter } from './create-progress.js';
import type { Journal, BlobDone } from './journal.js';
import type { LayoutEntry } from './layout.js';
import type { ResumePoint } from './resume.js';
import { hasGzipTrailer, sizeFromGzipTrailer } from './uncompressed.js';
import type { VolumeSet } from './volumes.js';
import { batchBufferPool, writeBatches } from './write-batches.js';

/** Bytes of one write batch (one pwrite): a buffer per blob being fetched, reused from blob to blob. */
const BATCH_BYTES = 1024 * 1024;

/**
 * Bytes a blob may run ahead of its journal slot while streaming: progress is recorded every this many bytes,
 * not per network chunk, and exactly when the stream ends or fails. A run killed mid-blob re-fetches at most
 * this much; a resumed run re-checks the recorded prefix, so a coarser slot never costs correctness.
 */
const PROGRESS_RECORD_BYTES = 1024 * 1024;

/**
 * Makes finished blobs durable in groups: one fdatasync of each volume they lie in, then one append of all
 * their journal lines. A blob joins the group that starts after its last write returned, so its bytes are on
 * disk before its line is: what the journal calls done is durable, with one fsync per group, not per blob.
 */
class DoneCommitter {
  private queue: Array<{ done: BlobDone; volumes: readonly number[]; settle: (err?: unknown) => void }> = [];
  private running = false;

  constructor(
    private readonly volumes: VolumeSet,
    private readonly journal: Journal,
  ) {}

  commit(done: BlobDone, volumes: readonly number[]): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ done, volumes, settle: (err) => (err === undefined ? resolve() : reject(err)) });
      this.kick();
    });
  }

  private kick(): void {
    if (this.running || this.queue.length === 0) return;
    this.running = true;
    const group = this.queue.splice(0);
    void this.flush(group).then(() => {
      this.running = false;
      this.kick();
    });
  }

  private async flush(group: typeof this.queue): Promise<void> {
    try {
      for (const v of new Set(group.flatMap((g) => g.volumes))) await this.volumes.syncVolume(v);
      await this.journal.recordDone(group.map((g) => g.done));
      for (const g of group) g.settle();
    } catch (err) {
      for (const g of group) g.settle(err ?? new Error('journal commit failed'));
    }
  }
}

export type BundleDestinationEvent = { readonly kind: 'blob-retry'; readonly digest: Digest; readonly reason: string };

export interface BundleDestinationOptions {
  readonly name: string;
  readonly volumes: VolumeSet;
  readonly journal: Journal;
  /** One per blob entry of the layout: where each blob goes and its journal slot. */
  readonly tasks: readonly BlobTask[];
  /** What an earlier run left (done blobs, partial positions). */
  readonly resume: ResumePoint;
  readonly meter: CreateProgressMeter;
  readonly onEvent?: ((event: BundleDestinationEvent) => void) | undefined;
}

/**
 * The bundle's volumes as a copy destination. It is one blob store: the repository a blob is copied for does
 * not matter, and one the journal records done is 'present' for every image. A blob is written at its layout
 * offset in batches; a partial one from an earlier run continues where its journal slot says, its prefix
 * re-hashed from disk and handed to the copy (OpenBlob's prefixHash), so only the rest is fetched; a resumed
 * blob whose whole does not verify is fetched again from 0, once. A blob is done (journal line) only when
 * verified and fsynced. Manifests are written at their offsets the same way; tags live in pin-preload.json
 * and are not written here. The writer (src/bundle/writer.ts) seals and publishes after the copy.
 */
export class BundleDestination implements ImageDestination {
  readonly name: string;
  /** Bytes before a stream's error are journal progress, and a blob is done only when its stream ended. */
  readonly resumesPartialBlobs = true;
  /** Bytes of blobs on disk: done blobs whole, partial ones as far as written in this run. */
  bytesDone: number;
  /** Bytes fetched by this run (resumed work excluded). */
  bytesFetched = 0;
  /** Blobs verified, durable and recorded done, with what they taught about their uncompressed size. */
  readonly done = new Map<Digest, UncompressedSize>();
  private readonly volumes: VolumeSet;
  private readonly journal: Journal;
  private readonly committer: DoneCommitter;
  private readonly byDigest: ReadonlyMap<Digest, BlobTask>;
  /** Bytes of each blob on disk so far, by task index, once this run has touched it. */
  private readonly positions = new Map<number, number>();
  /** The position last written to each blob's journal slot. */
  private readonly recorded = new Map<number, number>();
  /** One batch buffer per blob streaming at once (the copy's concurrency), kept for the next blobs. */
  private readonly batchBuffers = batchBufferPool(BATCH_BYTES, 16);

  constructor(private readonly options: BundleDestinationOptions) {
    this.name = options.name;
    this.volumes = options.volumes;
    this.journal = options.journal;
    this.committer = new DoneCommitter(options.volumes, options.journal);
    this.byDigest = new Map(options.tasks.map((t) => [t.blob.digest, t]));
    for (const [digest, size] of options.resume.done) this.done.set(digest, size);
    // Partly written blobs are counted when their copy starts (putBlob).
    this.bytesDone = options.resume.bytesDone;
  }

  /** Download progress, throttled by the meter unless `force`. */
  report(force = false): void {
    this.options.meter.report('download', this, force);
  }

  private task(digest: Digest): BlobTask {
    const task = this.byDigest.get(digest);
    // The copy is given the plan's blobs only (a delta's base blobs are left out before): anything else is a bug.
    if (!task) throw new Error(`blob ${digest} has no place in the bundle's layout`);
    return task;
  }

  async reuseBlob(_repository: string, blob: BlobRef): Promise<BlobReuse> {
    return this.done.has(this.task(blob.digest).blob.digest) ? 'present' : 'absent';
  }

  /** Writes (or resumes) one blob into its data range; records it done only when verified and fsynced. */
  async putBlob(_repository: string, blob: BlobRef, open: OpenBlob): Promise<number> {
    const task = this.task(blob.digest);
    const { index } = task;
    if (!this.positions.has(index)) {
      const from = this.options.resume.resumeFrom[index] ?? 0;
      this.positions.set(index, from);
      this.recorded.set(index, from);
      this.bytesDone += from; // the prefix an earlier run wrote is on disk: progress, not fetched again
    }
    // Counted here, not as a difference of bytesFetched: other blobs' putBlob calls add to that meanwhile.
    let fetched = 0;
    let from = this.positions.get(index)!;
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        if (from >= task.blob.size) await this.checkWritten(task);
        else await this.stream(task, open, from, (length) => (fetched += length));
        await this.markDone(task);
        break;
      } catch (err) {
        if (!(err instanceof DigestMismatchError)) throw err;
        // Bytes that do not verify are never trusted by a later run; a resumed blob is fetched again from 0, once.
        await this.setPosition(index, 0);
        if (from === 0 || attempt > 0) throw err;
        this.options.onEvent?.({ kind: 'blob-retry', digest: task.blob.digest, reason: `${err.message}; fetching it again from the start` });
        from = 0;
      }
    }
    this.report();
    return fetched;
  }

  async hasManifest(_repository: string, digest: Digest): Promise<boolean> {
    return this.done.has(this.task(digest).blob.digest);
  }

  /** Manifest bytes (verified by the copy) go to their offset like any blob, without a stream. */
  async putManifest(_repository: string, manifest: ManifestBytes): Promise<void> {
    const task = this.task(manifest.digest);
    const actual = sha256Of(manifest.bytes);
    if (actual !== task.blob.digest || manifest.bytes.length !== task.blob.size) throw new DigestMismatchError(task.blob.digest, actual, `manifest ${task.blob.digest}`);
    await this.volumes.write(manifest.bytes, task.entry.dataOffset);
    await this.setPosition(task.index, manifest.bytes.length);
    await this.markDone(task);
    this.report();
  }

  async tagDigest(): Promise<Digest | undefined> {
    return undefined; // tags are in the bundle manifest (pin-preload.json), written when it is sealed
  }

  async putTag(): Promise<void> {
    // See tagDigest.
  }

  async commit(): Promise<void> {
    // Every blob and manifest was made durable and recorded done before its put returned (DoneCommitter);
    // the bundle manifest, the fsync of everything and the seal follow in the writer once the copy is whole.
  }

  /** Closes the volume files and the journal (both idempotent): the writer's finally calls it on every path. */
  async close(): Promise<void> {
    await this.volumes.close();
    this.journal.close();
  }

  /**
   * Sets how far blob `index` is written, keeping bytesDone in step, and its journal slot when it moved by
   * PROGRESS_RECORD_BYTES or more, or `always`.
   */
  private async setPosition(index: number, position: number, always = true): Promise<void> {
    this.bytesDone += position - (this.positions.get(index) ?? 0);
    this.positions.set(index, position);
    if (!always && Math.abs(position - (this.recorded.get(index) ?? 0)) < PROGRESS_RECORD_BYTES) return;
    this.recorded.set(index, position);
    await this.journal.recordProgress(index, position);
  }

  private async markDone(task: BlobTask): Promise<void> {
    const uncompressed = await this.uncompressedSize(task);
    // The committer syncs each volume of a group once, so repeats here cost nothing.
    await this.committer.commit({ digest: task.blob.digest, uncompressed }, this.volumes.pieces(task.entry.dataOffset, task.entry.size).map((p) => p.volume));
    this.done.set(task.blob.digest, uncompressed);
  }

  /** A blob written to its end by an earlier run that stopped before recording it done: check it in place. */
  private async checkWritten(task: BlobTask): Promise<void> {
    const actual = sha256Digest((await this.hashWritten(task.entry, task.blob.size)).digest('hex'));
    if (actual !== task.blob.digest) throw new DigestMismatchError(task.blob.digest, actual, `blob ${task.blob.digest} (on disk)`);
  }

  /** Streams the blob from `from` into place; bytes before `from` are re-hashed from the volume and passed on, not fetched. */
  private async stream(task: BlobTask, open: OpenBlob, from: number, onFetched: (length: number) => void): Promise<void> {
    const { blob, entry } = task;
    const source = from > 0 ? open(from, await this.hashWritten(entry, from)) : open(0);
    const buffer = this.batchBuffers.tryAcquire()!; // never refused: the pool bounds only what it keeps
    let position = from;
    try {
      for await (const { bytes, short } of writeBatches(source, buffer)) {
        if (position + bytes.length > blob.size) throw new DigestMismatchError(blob.digest, `(more than ${blob.size} bytes)`, `blob ${blob.digest}`);
        await this.volumes.write(bytes, entry.dataOffset + position);
        position += bytes.length;
        this.bytesFetched += bytes.length;
        onFetched(bytes.length);
        await this.setPosition(task.index, position, short);
        this.report();
      }
    } finally {
      this.batchBuffers.release(buffer);
      // A failed or finished stream leaves its exact position: a re-run fetches only what is missing.
      if (this.recorded.get(task.index) !== position) await this.setPosition(task.index, position);
    }
  }

  private async hashWritten(entry: LayoutEntry, length: number): Promise<Hash> {
    const hash = createHash('sha256');
    for await (const chunk of this.volumes.createReadStream(entry.dataOffset, length)) hash.update(chunk as Buffer);
    return hash;
  }

  private async uncompressedSize(task: BlobTask): Promise<UncompressedSize> {
    const { blob, entry } = task;
    if (blob.role !== 'layer' || !blob.uncompressedEstimated || !hasGzipTrailer(blob.mediaType, blob.size)) {
      return { size: blob.uncompressedSize, estimated: blob.uncompressedEstimated };
    }
    const trailer = Buffer.alloc(4);
    await this.volumes.read(trailer, entry.dataOffset + blob.size - 4, 4);
    return sizeFromGzipTrailer(trailer.readUInt32LE(0), blob.size, blob.uncompressedSize);
  }
}
