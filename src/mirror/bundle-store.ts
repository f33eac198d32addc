// The MirrorStore over registered bundles: lookups are prepared statements on the bundle index, blobs
// are read straight from the volumes' byte ranges. Several bundles at once: a blob in any is served,
// and a tag in several resolves to the newest bundle's (by created, then by registration).

import path from 'node:path';
import { sealedBundlePath } from '../bundle/format.js';
import { locateBundle, type OpenedBundle } from '../bundle/reader.js';
import { VolumeSet } from '../bundle/volumes.js';
import type { Digest } from '../oci/digest.js';
import type { Descriptor } from '../oci/manifest.js';
import { repositoryName, type Repository } from '../oci/reference.js';
import { openStateDatabase, type StateDatabase } from '../state/database.js';
import { fileSegmentsBody } from './blob-body.js';
import { OpenFiles } from './open-files.js';
import {
  bundlePathOf,
  checkBases,
  indexBundle,
  indexIsCurrent,
  listIndexedBundles,
  prepareMirrorTables,
  removeIndexedBundle,
  setBundleProblem,
  type RegisteredBundle,
} from './bundle-index.js';
import { resolveByContent, resolveRepository, type RepositoryDirectory, type RequestedName } from './names.js';
import type { BlobBody, ByteRange, Lookup, ManifestReference, MirrorStore, StoredBlob, StoredManifest } from './store.js';

export type { RegisteredBundle } from './bundle-index.js';

/** Only bundles whose files are as indexed are served. */
const READY = 'b.problem IS NULL';
const NEWEST_FIRST = 'ORDER BY b.created DESC, b.id DESC';

interface ManifestRow {
  digest: string;
  media_type: string;
  size: number;
  default_child: string | null;
}

interface BlobRow {
  bundle_id: number;
  offset: number;
  size: number;
}

export class BundleStore implements MirrorStore, RepositoryDirectory {
  private readonly statements;
  /** path → repositories, rebuilt when the database changes (here or in another process, e.g. import). */
  private directory = new Map<string, Repository[]>();
  private directoryVersion = -1;
  /** PRAGMA data_version as read in this event-loop turn, if it was (see dataVersion()). */
  private turnDataVersion: number | undefined;
  private readonly volumeSets = new Map<number, VolumeSet>();
  /** Volume fds kept open across blob downloads; retired with the other caches (a bundle changed or went). */
  private readonly volumeFiles = new OpenFiles();
  /** Lookups already answered (manifest requests repeat a lot: every node pulls the same images). */
  private readonly lookups = new BoundedCache<string, StoredManifest | Digest | null>(8192);
  private readonly bytes = new BoundedCache<Digest, Buffer>(2048);
  /** Where each blob lies (or that it is in no bundle): a GET looks it up twice (stat, then open), a pull of many images often. */
  private readonly blobRows = new BoundedCache<Digest, BlobRow | null>(8192);

  private constructor(
    private readonly db: StateDatabase,
    /** Whether close() closes the database (only when the store opened it itself). */
    private readonly ownsDatabase: boolean,
  ) {
    prepareMirrorTables(db);
    this.statements = {
      repositories: db.prepare(`SELECT DISTINCT r.domain, r.path FROM mirror_repository_manifests r JOIN mirror_bundles b ON b.id = r.bundle_id WHERE ${READY}`),
      manifestInRepository: db.prepare(
        `SELECT m.digest, m.media_type, m.size, m.default_child FROM mirror_repository_manifests r
         JOIN mirror_manifests m ON m.digest = r.digest AND m.bundle_id = r.bundle_id
         JOIN mirror_bundles b ON b.id = r.bundle_id
         WHERE r.path = ? AND r.domain = ? AND r.digest = ? AND ${READY} ${NEWEST_FIRST} LIMIT 1`,
      ),
      tag: db.prepare(
        `SELECT t.digest FROM mirror_tags t JOIN mirror_bundles b ON b.id = t.bundle_id
         WHERE t.path = ? AND t.domain = ? AND t.tag = ? AND ${READY} ${NEWEST_FIRST} LIMIT 1`,
      ),
      tags: db.prepare(`SELECT DISTINCT t.tag FROM mirror_tags t JOIN mirror_bundles b ON b.id = t.bundle_id WHERE t.path = ? AND t.domain = ? AND ${READY}`),
      manifestBytes: db.prepare(`SELECT m.bytes FROM mirror_manifests m JOIN mirror_bundles b ON b.id = m.bundle_id WHERE m.digest = ? AND ${READY} LIMIT 1`),
      blob: db.prepare(`SELECT l.bundle_id, l.offset, l.size FROM mirror_blobs l JOIN mirror_bundles b ON b.id = l.bundle_id WHERE l.digest = ? AND ${READY} ${NEWEST_FIRST} LIMIT 1`),
      referrers: db.prepare(
        `SELECT DISTINCT m.digest, m.referrer FROM mirror_manifests m
         JOIN mirror_repository_manifests r ON r.digest = m.digest AND r.bundle_id = m.bundle_id
         JOIN mirror_bundles b ON b.id = m.bundle_id
         WHERE m.subject = ? AND r.path = ? AND r.domain = ? AND ${READY}`,
      ),
      volumes: db.prepare('SELECT volumes FROM mirror_bundles WHERE id = ?'),
      // Changes when another connection commits: the cheap per-request check that our caches are current.
      dataVersion: db.prepare('PRAGMA data_version').pluck(),
    };
  }

  /** Opens the store on a state database (a file path or an open database) and checks every bundle's files. */
  static async open(database: string | StateDatabase): Promise<BundleStore> {
    const owns = typeof database === 'string';
    const db = typeof database === 'string' ? openStateDatabase(database) : database;
    try {
      const store = new BundleStore(db, owns);
      await store.refresh();
      return store;
    } catch (err) {
      if (owns) db.close();
      throw err;
    }
  }

  /**
   * Re-checks every registered bundle against its files (seal digest, volume sizes and mtimes): a
   * changed bundle is re-indexed, one that cannot be is kept registered but not served, with why.
   */
  async refresh(): Promise<RegisteredBundle[]> {
    for (const bundle of listIndexedBundles(this.db)) {
      if (await indexIsCurrent(bundle)) {
        if (bundle.problem !== undefined) setBundleProblem(this.db, bundle.id, null);
        continue;
      }
      try {
        await indexBundle(this.db, bundle.path);
      } catch (err) {
        setBundleProblem(this.db, bundle.id, err instanceof Error ? err.message : String(err));
      }
    }
    checkBases(this.db);
    this.forgetCaches();
    return this.listBundles();
  }

  /**
   * Registers a bundle (its tar, any volume, or its seal; or the bundle opened already, which is then
   * neither opened again nor closed) and indexes it unless an index of the same files exists. Idempotent;
   * throws a UserError naming the bundle when it cannot be read.
   */
  async registerBundle(bundle: string | OpenedBundle): Promise<RegisteredBundle> {
    const files = typeof bundle === 'string' ? await locateBundle(bundle) : bundle;
    const bundlePath = bundlePathOf(files);
    const existing = this.listBundles().find((b) => b.path === bundlePath);
    if (existing && (await indexIsCurrent(existing, files))) {
      if (existing.problem === undefined) return existing;
      setBundleProblem(this.db, existing.id, null);
      checkBases(this.db);
      this.forgetCaches();
      return this.listBundles().find((b) => b.id === existing.id) ?? existing;
    }
    const registered = await indexBundle(this.db, typeof bundle === 'string' ? bundlePath : bundle);
    checkBases(this.db);
    this.forgetCaches();
    return this.listBundles().find((b) => b.id === registered.id) ?? registered;
  }

  /** Stops serving a bundle; true when it was registered. Its files are not touched. */
  async unregisterBundle(file: string): Promise<boolean> {
    let bundlePath: string;
    try {
      bundlePath = bundlePathOf(await locateBundle(file));
    } catch {
      // The files may be gone already: name the bundle as it was registered.
      const absolute = path.resolve(file);
      bundlePath = sealedBundlePath(absolute);
    }
    const removed = removeIndexedBundle(this.db, bundlePath);
    checkBases(this.db);
    this.forgetCaches();
    return removed;
  }

  listBundles(): RegisteredBundle[] {
    return listIndexedBundles(this.db);
  }

  /** Closes the database if the store opened it (a database passed to open() stays the caller's). */
  close(): void {
    this.volumeFiles.retireAll();
    if (this.ownsDatabase) this.db.close();
  }

  private forgetCaches(): void {
    this.directoryVersion = -1;
    this.volumeSets.clear();
    this.volumeFiles.retireAll();
    this.lookups.clear();
    this.bytes.clear();
    this.blobRows.clear();
  }

  /**
   * SQLite's data_version, which changes when another connection (an import in another process) commits.
   * Read once per event-loop turn: the requests one turn answers all arrived before it began, and under
   * load many are answered in one turn, so the read stops costing a statement per request.
   */
  private dataVersion(): number {
    if (this.turnDataVersion === undefined) {
      this.turnDataVersion = this.statements.dataVersion.get() as number;
      setImmediate(() => (this.turnDataVersion = undefined));
    }
    return this.turnDataVersion;
  }

  repositoriesAtPath(repoPath: string): readonly Repository[] {
    const version = this.dataVersion();
    if (version !== this.directoryVersion) {
      const directory = new Map<string, Repository[]>();
      for (const row of this.statements.repositories.all() as Repository[]) {
        directory.set(row.path, [...(directory.get(row.path) ?? []), { domain: row.domain, path: row.path }]);
      }
      for (const repos of directory.values()) repos.sort((a, b) => (a.domain < b.domain ? -1 : a.domain > b.domain ? 1 : 0));
      this.forgetCaches();
      this.directory = directory;
      this.directoryVersion = version;
    }
    return this.directory.get(repoPath) ?? [];
  }

  private manifestIn(repository: Repository, digest: Digest): StoredManifest | undefined {
    const key = `${repository.domain}/${repository.path}@${digest}`;
    const cached = this.lookups.get(key);
    if (cached !== undefined) return cached === null ? undefined : (cached as StoredManifest);
    const row = this.statements.manifestInRepository.get(repository.path, repository.domain, digest) as ManifestRow | undefined;
    const manifest = row ? this.toManifest(repository, row) : undefined;
    this.lookups.set(key, manifest ?? null);
    return manifest;
  }

  private taggedDigest(repository: Repository, tag: string): Digest | undefined {
    const key = `${repository.domain}/${repository.path}:${tag}`;
    const cached = this.lookups.get(key);
    if (cached !== undefined) return cached === null ? undefined : (cached as Digest);
    const row = this.statements.tag.get(repository.path, repository.domain, tag) as { digest: Digest } | undefined;
    this.lookups.set(key, row?.digest ?? null);
    return row?.digest;
  }

  private toManifest(repository: Repository, row: ManifestRow): StoredManifest {
    return {
      repository,
      digest: row.digest as Digest,
      mediaType: row.media_type,
      size: row.size,
      ...(row.default_child !== null ? { defaultChild: row.default_child as Digest } : {}),
    };
  }

  resolveManifest(name: RequestedName, reference: ManifestReference): Lookup<StoredManifest> {
    if (reference.digest !== undefined) {
      const digest = reference.digest;
      let manifest: StoredManifest | undefined;
      const found = resolveByContent(this, name, (repo) => (manifest = this.manifestIn(repo, digest)) !== undefined);
      if ('miss' in found) return found;
      return manifest ?? { miss: 'MANIFEST_UNKNOWN', message: `manifest ${digest} is not in repository ${name.name}` };
    }
    const resolved = resolveRepository(this, name);
    if ('miss' in resolved) return resolved;
    const repo = resolved.repository;
    const tagged = this.taggedDigest(repo, reference.tag);
    const manifest = tagged && this.manifestIn(repo, tagged);
    return manifest ?? { miss: 'MANIFEST_UNKNOWN', message: `tag ${reference.tag} is not in repository ${repositoryName(repo)}` };
  }

  async manifestBytes(manifest: StoredManifest): Promise<Buffer> {
    const cached = this.bytes.get(manifest.digest);
    if (cached) return cached;
    const row = this.statements.manifestBytes.get(manifest.digest) as { bytes: Buffer } | undefined;
    if (!row) throw new Error(`manifest ${manifest.digest} vanished from the bundle index`);
    this.bytes.set(manifest.digest, row.bytes);
    return row.bytes;
  }

  /** The blob's row, from the cache (current: resolving the name first checks data_version, which clears it) or the index. */
  private blobRow(digest: Digest): BlobRow | undefined {
    const cached = this.blobRows.get(digest);
    if (cached !== undefined) return cached ?? undefined;
    const row = this.statements.blob.get(digest) as BlobRow | undefined;
    this.blobRows.set(digest, row ?? null);
    return row;
  }

  statBlob(name: RequestedName, digest: Digest): Lookup<StoredBlob> {
    const found = resolveByContent(this, name, () => true);
    if ('miss' in found) return found;
    const row = this.blobRow(digest);
    if (!row) return { miss: 'BLOB_UNKNOWN', message: `blob ${digest} is not in any registered bundle` };
    return { digest, size: row.size };
  }

  private volumeSet(bundleId: number): VolumeSet {
    let set = this.volumeSets.get(bundleId);
    if (!set) {
      const row = this.statements.volumes.get(bundleId) as { volumes: string } | undefined;
      if (!row) throw new Error(`bundle ${bundleId} vanished from the index`);
      // Used only for offset arithmetic (pieces()): it opens no file itself.
      set = new VolumeSet(JSON.parse(row.volumes) as Array<{ path: string; size: number }>);
      this.volumeSets.set(bundleId, set);
    }
    return set;
  }

  openBlob(blob: StoredBlob, range?: ByteRange): BlobBody {
    const row = this.blobRow(blob.digest);
    if (!row) throw new Error(`blob ${blob.digest} vanished from the bundle index`);
    const start = range?.start ?? 0;
    const end = range?.end ?? row.size - 1;
    const volumes = this.volumeSet(row.bundle_id);
    const pieces = volumes.pieces(row.offset + start, end - start + 1);
    return fileSegmentsBody(pieces.map((p) => ({ path: volumes.volumes[p.volume]!.path, offset: p.localOffset, length: p.length })), this.volumeFiles);
  }

  tags(name: RequestedName): Lookup<{ readonly tags: readonly string[] }> {
    const resolved = resolveRepository(this, name);
    if ('miss' in resolved) return resolved;
    const rows = this.statements.tags.all(resolved.repository.path, resolved.repository.domain) as Array<{ tag: string }>;
    return { tags: rows.map((r) => r.tag).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)) };
  }

  repositories(): readonly string[] {
    const rows = this.statements.repositories.all() as Repository[];
    return rows.map(repositoryName).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  referrers(name: RequestedName, digest: Digest, artifactType?: string): Lookup<{ readonly manifests: readonly Descriptor[] }> {
    const resolved = resolveRepository(this, name);
    if ('miss' in resolved) return resolved;
    const rows = this.statements.referrers.all(digest, resolved.repository.path, resolved.repository.domain) as Array<{ digest: string; referrer: string }>;
    const seen = new Set<string>();
    const manifests: Descriptor[] = [];
    for (const row of rows) {
      if (seen.has(row.digest)) continue;
      seen.add(row.digest);
      const descriptor = JSON.parse(row.referrer) as Descriptor;
      if (artifactType === undefined || descriptor.artifactType === artifactType) manifests.push(descriptor);
    }
    return { manifests };
  }
}

/** A Map that forgets its oldest entries past `limit` (lookups are cheap to redo; memory must stay bounded). */
class BoundedCache<K, V> {
  private readonly entries = new Map<K, V>();
  constructor(private readonly limit: number) {}

  get(key: K): V | undefined {
    return this.entries.get(key);
  }

  set(key: K, value: V): void {
    if (this.entries.size >= this.limit) this.entries.delete(this.entries.keys().next().value as K);
    this.entries.set(key, value);
  }

  clear(): void {
    this.entries.clear();
  }
}
