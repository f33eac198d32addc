// An OCI image layout directory as an ImageDestination (`bundle push --to oci:DIR`): blobs and manifests are
// files under blobs/<alg>/, each whole or absent; the images are named in index.json, merged in at commit.
//
// One layout holds every image of a copy, so an image's name in index.json (the
// org.opencontainers.image.ref.name annotation) carries its repository: "REPOSITORY@sha256:HEX" for every
// top-level manifest and for the top manifest of every image the copy was given (nameImages: a pinned
// platform manifest is named even when its multi-arch index is copied too; other children of an index are
// reached through it), and "REPOSITORY:TAG" for every tag.
// Both read back as `skopeo copy oci:DIR:NAME …` (containers/image splits at the first colon and accepts
// ':' and '@' in the name, as the image-spec's ref grammar does); a bundle's own index.json uses the same
// by-digest names. Tags are not the only way in: an image pushed by digest is named by digest.

import { randomBytes } from 'node:crypto';
import { createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { clearWorkDir, lockWorkDir, type WorkLock } from '../bundle/work-lock.js';
import { sha256Of, type Digest } from '../oci/digest.js';
import { layoutBlobPath, readLayoutIndex, REF_NAME_ANNOTATION, writeLayoutIndex, writeOciLayoutIfAbsent, type LayoutIndex } from '../oci/image-layout.js';
import { ManifestError, parseManifest } from '../oci/manifest.js';
import { MediaType } from '../oci/media-types.js';
import { fsyncDir } from '../util/atomic-file.js';
import { errnoCode, isUserError, UserError } from '../util/errors.js';
import type { CopyImage } from './copy.js';
import type { BlobRef, BlobReuse, ImageDestination, ManifestBytes } from './destination.js';

/** Our lock and the partial files of blobs being written; same file system as blobs/, so a rename is atomic. */
export const LAYOUT_WORK_DIR = '.pin-preload';

interface IndexEntry {
  readonly mediaType: string;
  readonly digest: Digest;
  readonly size: number;
}

/** A manifest the copy put or found in a repository, with the children it lists (an index's). */
interface ManifestInRepository extends IndexEntry {
  readonly children: readonly Digest[];
}

function refNameOf(entry: Readonly<Record<string, unknown>>): string | undefined {
  const name = (entry.annotations as Record<string, unknown> | undefined)?.[REF_NAME_ANNOTATION];
  return typeof name === 'string' ? name : undefined;
}

/** What the copy needs to know of a manifest here: its media type and, for an index, its children. */
function describeManifest(bytes: Buffer, digest: Digest, mediaType: string | undefined): ManifestInRepository {
  try {
    const parsed = parseManifest(bytes, mediaType, `manifest ${digest}`);
    return { mediaType: parsed.mediaType, digest, size: bytes.length, children: parsed.kind === 'index' ? parsed.manifests.map((m) => m.digest) : [] };
  } catch (err) {
    // The copy verified the bytes against the digest; a document we cannot parse is still stored and named.
    if (!(err instanceof ManifestError)) throw err;
    return { mediaType: mediaType ?? 'application/octet-stream', digest, size: bytes.length, children: [] };
  }
}

export class LayoutDestination implements ImageDestination {
  readonly name: string;
  private readonly workDir: string;
  /** Blobs written by this destination: a later repository that needs one has it "mounted", not "present". */
  private readonly written = new Set<Digest>();
  /** Per repository, the manifests the copy put or found there; the top-level ones get a by-digest name. */
  private readonly manifests = new Map<string, Map<Digest, ManifestInRepository>>();
  private readonly tags = new Map<string, IndexEntry>();
  /** Per repository, the top manifests of the images the copy was given (nameImages). */
  private readonly imageTops = new Map<string, Set<Digest>>();
  /**
   * Directories whose entries index.json will depend on: those a blob or manifest was renamed into or found
   * in (a killed run may have renamed it without the directory's fsync; its data was fsynced before the
   * rename, so the entry is what may be lost), and the parents of directories this
   * run created (DIR in its parent, blobs/ and blobs/sha256). Fsynced once at commit, before index.json.
   */
  private readonly syncBeforeIndex: Set<string>;

  private constructor(
    readonly dir: string,
    /** index.json as open() found it: what a tag names (commit reads it again to merge). */
    private readonly existing: LayoutIndex | undefined,
    private readonly lock: WorkLock,
    createdIn: readonly string[],
  ) {
    this.name = `oci:${dir}`;
    this.workDir = path.join(dir, LAYOUT_WORK_DIR);
    this.syncBeforeIndex = new Set(createdIn);
  }

  /**
   * Opens (creating it if need be) the layout at `dir` for one writer: a second pin-preload writing the same
   * layout is refused while this one runs. Partial blob files a killed run left behind are removed.
   */
  static async open(dir: string): Promise<LayoutDestination> {
    const absolute = path.resolve(dir);
    const createdIn = await makeDirs(absolute).catch((err: unknown) => {
      throw new UserError('LAYOUT_INVALID', `${absolute} cannot hold an OCI image layout: ${errnoCode(err) ?? (err as Error).message}`, { subject: { kind: 'path', name: absolute }, cause: err });
    });
    const lock = await lockWorkDir(path.join(absolute, LAYOUT_WORK_DIR), `oci:${absolute}`);
    try {
      await clearWorkDir(path.join(absolute, LAYOUT_WORK_DIR));
      return new LayoutDestination(absolute, await readLayoutIndex(absolute, 'empty'), lock, createdIn);
    } catch (err) {
      await lock.release();
      throw err;
    }
  }

  /**
   * Names by digest, at commit, the top manifest of each of these images (the last of its manifests) once the
   * copy has put or found it, even when it is also a child of another image's index. Called before the copy.
   */
  nameImages(images: ReadonlyArray<Pick<CopyImage, 'repository' | 'manifests'>>): void {
    for (const image of images) {
      const top = image.manifests[image.manifests.length - 1];
      if (top === undefined) continue;
      let tops = this.imageTops.get(image.repository);
      if (tops === undefined) this.imageTops.set(image.repository, (tops = new Set()));
      tops.add(top.digest);
    }
  }

  /** Present when the file is there with the blob's size: it was renamed into place only when whole and verified. */
  async reuseBlob(_repository: string, blob: BlobRef, mountFrom: string | undefined): Promise<BlobReuse> {
    const file = layoutBlobPath(this.dir, blob.digest);
    const size = await fs.stat(file).then(
      (stat) => stat.size,
      (err: unknown) => {
        if (errnoCode(err) === 'ENOENT') return undefined;
        throw err;
      },
    );
    if (size !== blob.size) return 'absent';
    this.syncBeforeIndex.add(path.dirname(file));
    return mountFrom !== undefined && this.written.has(blob.digest) ? 'mounted' : 'present';
  }

  /**
   * Writes the blob from its first byte at every try (no resume): the copy reads and hashes the whole blob
   * from the source at every try anyway, so resuming would save only local writes, and a partial file of a
   * killed run was never checked.
   */
  async putBlob(_repository: string, blob: BlobRef, open: (offset: number) => Readable, signal?: AbortSignal): Promise<number> {
    await this.writeBlob(blob, open(0), signal);
    this.written.add(blob.digest);
    return blob.size;
  }

  async hasManifest(repository: string, digest: Digest): Promise<boolean> {
    let bytes: Buffer;
    try {
      bytes = await fs.readFile(layoutBlobPath(this.dir, digest));
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return false;
      throw err;
    }
    if (sha256Of(bytes) !== digest) return false; // not ours, or damaged: putManifest replaces it
    this.syncBeforeIndex.add(path.dirname(layoutBlobPath(this.dir, digest)));
    this.remember(repository, describeManifest(bytes, digest, undefined));
    return true;
  }

  async putManifest(repository: string, manifest: ManifestBytes, signal?: AbortSignal): Promise<void> {
    await this.writeBlob({ digest: manifest.digest, size: manifest.bytes.length }, Readable.from([manifest.bytes]), signal);
    this.remember(repository, describeManifest(manifest.bytes, manifest.digest, manifest.mediaType));
  }

  async tagDigest(repository: string, tag: string): Promise<Digest | undefined> {
    const name = `${repository}:${tag}`;
    const put = this.tags.get(name);
    if (put !== undefined) return put.digest;
    const entry = this.existing?.entries.find((e) => refNameOf(e) === name);
    return typeof entry?.digest === 'string' ? (entry.digest as Digest) : undefined;
  }

  async putTag(repository: string, tag: string, manifest: ManifestBytes): Promise<void> {
    this.tags.set(`${repository}:${tag}`, { mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.bytes.length });
  }

  /**
   * Names every image in index.json, after making the blobs' directory entries durable, so that index.json
   * never names a file a crash could lose. index.json is read again here, not taken from open(): a push can
   * run for hours, and what another tool (skopeo) named meanwhile must stay. The merge keeps every entry and
   * top-level field it does not name (a name given again is replaced, as a moved tag must be). Unchanged names
   * write nothing. A failed write is PUSH_FAILED with a hint about the layout's file system.
   */
  async commit(): Promise<void> {
    try {
      for (const dir of this.syncBeforeIndex) await fsyncDir(dir);
      const current = await readLayoutIndex(this.dir, 'empty');
      const document = mergedIndex(current, this.namedEntries());
      if (document !== undefined) await writeLayoutIndex(this.dir, document);
      else await writeOciLayoutIfAbsent(this.dir);
    } catch (err) {
      throw this.writeFailure(err, 'writing index.json');
    }
  }

  async close(): Promise<void> {
    await this.lock.release();
  }

  /** The names this copy gives: REPOSITORY@DIGEST for each top-level manifest, REPOSITORY:TAG for each tag. */
  private namedEntries(): Map<string, IndexEntry> {
    const named = new Map<string, IndexEntry>();
    for (const [repository, manifests] of this.manifests) {
      const children = new Set([...manifests.values()].flatMap((m) => m.children));
      const tops = this.imageTops.get(repository);
      for (const manifest of manifests.values()) {
        if (!children.has(manifest.digest) || tops?.has(manifest.digest)) named.set(`${repository}@${manifest.digest}`, manifest);
      }
    }
    for (const [name, entry] of this.tags) named.set(name, entry);
    return named;
  }

  private remember(repository: string, manifest: ManifestInRepository): void {
    let manifests = this.manifests.get(repository);
    if (manifests === undefined) this.manifests.set(repository, (manifests = new Map()));
    manifests.set(manifest.digest, manifest);
  }

  /** The bytes into a partial file, fsynced, then renamed to the digest's path: the path holds the whole blob or nothing. */
  private async writeBlob(blob: BlobRef, bytes: Readable, signal: AbortSignal | undefined): Promise<void> {
    const target = layoutBlobPath(this.dir, blob.digest);
    const partial = path.join(this.workDir, `${path.basename(target)}.${randomBytes(4).toString('hex')}.partial`);
    // Errors of the layout's file system get a hint about it; the source's (a damaged blob, a bad read) pass as they are.
    let writeError: unknown;
    let streaming = false;
    try {
      for (const dir of await makeDirs(path.dirname(target))) this.syncBeforeIndex.add(dir);
      const file = createWriteStream(partial, { flags: 'wx' }).once('error', (err) => (writeError ??= err));
      streaming = true;
      await (signal !== undefined ? pipeline(bytes, file, { signal }) : pipeline(bytes, file));
      streaming = false;
      // The copy's stream ends only on bytes that match the digest and size; a short file here is a bug, not damage.
      const size = await syncFile(partial);
      if (size !== blob.size) throw new Error(`blob ${blob.digest}: wrote ${size} bytes of ${blob.size}`);
      await fs.rename(partial, target);
    } catch (err) {
      await fs.rm(partial, { force: true });
      throw streaming && err !== writeError ? err : this.writeFailure(err, `writing blob ${blob.digest}`);
    }
    this.syncBeforeIndex.add(path.dirname(target));
  }

  /** A file system error of the layout as PUSH_FAILED whose hint points at the layout, not at a registry. */
  private writeFailure(err: unknown, what: string): unknown {
    const code = errnoCode(err);
    if (isUserError(err) || code === undefined || code === 'ABORT_ERR') return err;
    return new UserError('PUSH_FAILED', `${what} into ${this.name}: ${code} (${(err as Error).message})`, {
      subject: { kind: 'path', name: this.dir },
      hint: `free space in (or fix the permissions of) ${this.dir}'s file system, then run the same command again: what is written stays`,
      cause: err,
    });
  }
}

/**
 * `mkdir -p`, returning the directories in which it created an entry (the parent of each directory it
 * created): their fsync makes the new directories durable.
 */
async function makeDirs(dir: string): Promise<string[]> {
  const first = await fs.mkdir(dir, { recursive: true });
  if (first === undefined) return [];
  const parents: string[] = [];
  for (let at = dir; ; at = path.dirname(at)) {
    parents.push(path.dirname(at));
    if (at === first || at === path.dirname(at)) break;
  }
  return parents;
}

/**
 * index.json with the copy's names merged into `current` (as read at commit): entries already there keep
 * their place, a name given again names the new manifest, new names follow in the copy's order, and every
 * other field stays. Undefined when every name is there already, as it is (nothing to write).
 */
function mergedIndex(current: LayoutIndex | undefined, named: ReadonlyMap<string, IndexEntry>): Record<string, unknown> | undefined {
  const before = current?.entries ?? [];
  const beforeByName = new Map<string, Readonly<Record<string, unknown>>>();
  for (const entry of before) {
    const name = refNameOf(entry);
    if (name !== undefined) beforeByName.set(name, entry);
  }
  if (current !== undefined && [...named].every(([name, entry]) => sameEntry(beforeByName.get(name), entry))) return undefined;
  const manifests = [
    ...before.map((entry) => {
      const name = refNameOf(entry);
      const now = name !== undefined ? named.get(name) : undefined;
      return now !== undefined ? indexEntry(name!, now) : entry;
    }),
    ...[...named].filter(([name]) => !beforeByName.has(name)).map(([name, entry]) => indexEntry(name, entry)),
  ];
  return { schemaVersion: 2, mediaType: MediaType.ociIndex, ...(current?.document ?? {}), manifests };
}

/** fsync (Linux syncs the file through any descriptor of it); returns the file's size. */
async function syncFile(file: string): Promise<number> {
  const handle = await fs.open(file, 'r');
  try {
    await handle.sync();
    return (await handle.stat()).size;
  } finally {
    await handle.close();
  }
}

function sameEntry(entry: Readonly<Record<string, unknown>> | undefined, now: IndexEntry): boolean {
  return entry !== undefined && entry.digest === now.digest && entry.mediaType === now.mediaType && entry.size === now.size;
}

function indexEntry(name: string, entry: IndexEntry): Record<string, unknown> {
  return { mediaType: entry.mediaType, digest: entry.digest, size: entry.size, annotations: { [REF_NAME_ANNOTATION]: name } };
}
