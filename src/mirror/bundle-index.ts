// The mirror's index of registered bundles in the state database: digest → (bundle, offset, size, media
// type), repository → tags and manifests, manifest bytes. Built once per bundle from its manifest entry
// and its tar headers only, so a restart serves at once; rebuilt when the bundle's files change.

import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { BundleBase, BundleManifest } from '../bundle/format.js';
import { missingFromChain } from '../bundle/bundle-manifest.js';
import { locateBundle, openBundle, readSmallRange, type BundleFiles, type OpenedBundle } from '../bundle/reader.js';
import { sha256Of, type Digest } from '../oci/digest.js';
import { isManifestMediaType } from '../oci/media-types.js';
import { parseReference, type Repository } from '../oci/reference.js';
import { migrate, type Migration, type StateDatabase } from '../state/database.js';
import { UserError } from '../util/errors.js';
import { manifestFacts } from './manifest-facts.js';

export const MIRROR_MIGRATIONS: readonly Migration[] = [
  {
    module: 'mirror',
    version: 1,
    sql: `
      CREATE TABLE mirror_bundles (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        path TEXT NOT NULL UNIQUE,
        manifest_digest TEXT NOT NULL,
        created TEXT NOT NULL,
        release TEXT,
        volumes TEXT NOT NULL,
        total_size INTEGER NOT NULL,
        images INTEGER NOT NULL,
        blobs INTEGER NOT NULL,
        registered_at TEXT NOT NULL,
        problem TEXT
      );
      CREATE TABLE mirror_blobs (
        bundle_id INTEGER NOT NULL REFERENCES mirror_bundles(id) ON DELETE CASCADE,
        digest TEXT NOT NULL,
        offset INTEGER NOT NULL,
        size INTEGER NOT NULL,
        media_type TEXT NOT NULL,
        PRIMARY KEY (digest, bundle_id)
      );
      CREATE TABLE mirror_manifests (
        bundle_id INTEGER NOT NULL REFERENCES mirror_bundles(id) ON DELETE CASCADE,
        digest TEXT NOT NULL,
        media_type TEXT NOT NULL,
        size INTEGER NOT NULL,
        bytes BLOB NOT NULL,
        default_child TEXT,
        subject TEXT,
        referrer TEXT,
        PRIMARY KEY (digest, bundle_id)
      );
      CREATE TABLE mirror_repository_manifests (
        bundle_id INTEGER NOT NULL REFERENCES mirror_bundles(id) ON DELETE CASCADE,
        domain TEXT NOT NULL,
        path TEXT NOT NULL,
        digest TEXT NOT NULL,
        PRIMARY KEY (path, domain, digest, bundle_id)
      );
      CREATE TABLE mirror_tags (
        bundle_id INTEGER NOT NULL REFERENCES mirror_bundles(id) ON DELETE CASCADE,
        domain TEXT NOT NULL,
        path TEXT NOT NULL,
        tag TEXT NOT NULL,
        digest TEXT NOT NULL,
        PRIMARY KEY (path, domain, tag, bundle_id)
      );
      CREATE INDEX mirror_blobs_bundle ON mirror_blobs(bundle_id);
      CREATE INDEX mirror_manifests_bundle ON mirror_manifests(bundle_id);
      CREATE INDEX mirror_manifests_subject ON mirror_manifests(subject) WHERE subject IS NOT NULL;
      CREATE INDEX mirror_repository_manifests_bundle ON mirror_repository_manifests(bundle_id);
      CREATE INDEX mirror_tags_bundle ON mirror_tags(bundle_id);
    `,
  },
  {
    // A delta bundle's bases (JSON list of {name, manifestDigest}); NULL for a full bundle.
    module: 'mirror',
    version: 2,
    sql: 'ALTER TABLE mirror_bundles ADD COLUMN bases TEXT;',
  },
];

/** The problem a delta gets while a base is not served; the prefix tells it from a problem of its own files. */
export const BASE_PROBLEM_PREFIX = 'delta bundle without its base: ';

/** Manifests bigger than this are not images (a 1000-entry index is ~200 KiB); refusing bounds memory. */
const MAX_STORED_MANIFEST = 4 * 1024 * 1024;

/** A volume as indexed: its size and mtime tell whether the index still describes it. */
export interface IndexedVolume {
  readonly path: string;
  readonly size: number;
  readonly mtimeMs: number;
}

/** A registered bundle as listBundles() reports it. */
export interface RegisteredBundle {
  readonly id: number;
  /** dir/name of the bundle (the tar, or the split volumes' common name). */
  readonly path: string;
  readonly manifestDigest: Digest;
  readonly created: string;
  readonly release?: string;
  readonly volumes: readonly IndexedVolume[];
  readonly totalSize: number;
  readonly images: number;
  readonly blobs: number;
  readonly registeredAt: string;
  /** A delta's bases: it is served only while every one of them is. */
  readonly bases?: readonly BundleBase[];
  /** Why the bundle is not served (its files vanished or changed and could not be re-indexed). */
  readonly problem?: string;
}

interface BundleRow {
  id: number;
  path: string;
  manifest_digest: string;
  created: string;
  release: string | null;
  volumes: string;
  total_size: number;
  images: number;
  blobs: number;
  registered_at: string;
  problem: string | null;
  bases: string | null;
}

export function rowToBundle(row: BundleRow): RegisteredBundle {
  return {
    id: row.id,
    path: row.path,
    manifestDigest: row.manifest_digest as Digest,
    created: row.created,
    ...(row.release !== null ? { release: row.release } : {}),
    volumes: JSON.parse(row.volumes) as IndexedVolume[],
    totalSize: row.total_size,
    images: row.images,
    blobs: row.blobs,
    registeredAt: row.registered_at,
    ...(row.bases !== null ? { bases: JSON.parse(row.bases) as BundleBase[] } : {}),
    ...(row.problem !== null ? { problem: row.problem } : {}),
  };
}

export function prepareMirrorTables(db: StateDatabase): void {
  migrate(db, MIRROR_MIGRATIONS);
}

export function bundlePathOf(files: BundleFiles): string {
  return path.join(files.dir, files.name);
}

async function statVolumes(volumes: BundleFiles['volumes']): Promise<IndexedVolume[]> {
  const out: IndexedVolume[] = [];
  for (const v of volumes) {
    const st = await fs.stat(v.path);
    out.push({ path: v.path, size: st.size, mtimeMs: Math.trunc(st.mtimeMs) });
  }
  return out;
}

/**
 * Whether the index row still describes the files on disk: same seal digest (when sealed), same
 * volumes with the same sizes and mtimes. Reads only the seal (unless given the bundle's files, located
 * already) and stats the volumes.
 */
export async function indexIsCurrent(bundle: RegisteredBundle, located?: BundleFiles): Promise<boolean> {
  let files: BundleFiles;
  let now: IndexedVolume[];
  try {
    files = located ?? (await locateBundle(bundle.path));
    now = await statVolumes(files.volumes);
  } catch {
    return false;
  }
  if (files.seal && files.seal.manifestDigest !== bundle.manifestDigest) return false;
  if (now.length !== bundle.volumes.length) return false;
  return now.every((v, i) => {
    const was = bundle.volumes[i]!;
    return v.path === was.path && v.size === was.size && v.mtimeMs === was.mtimeMs;
  });
}

/** Everything the index holds for one bundle, gathered (async reads) before one write transaction. */
interface BundleIndexRows {
  readonly bundle: Omit<BundleRow, 'id' | 'registered_at' | 'problem'>;
  readonly blobs: Array<[Digest, number, number, string]>;
  readonly manifests: Array<[Digest, string, number, Buffer, string | null, string | null, string | null]>;
  readonly repositoryManifests: Array<[string, string, Digest]>;
  readonly tags: Array<[string, string, string, Digest]>;
}

function imageRepository(name: string, where: string): Repository {
  try {
    const ref = parseReference(name);
    return { domain: ref.domain, path: ref.path };
  } catch (err) {
    throw new UserError('BUNDLE_DAMAGED', `${where}: image repository "${name}" is not a valid repository: ${(err as Error).message}`, {
      subject: { kind: 'bundle', name: where },
      hint: 'run "pin-preload bundle verify" on it, or re-create the bundle',
    });
  }
}

async function gatherRows(opened: OpenedBundle): Promise<BundleIndexRows> {
  const where = bundlePathOf(opened);
  const manifest: BundleManifest = opened.manifest;
  const locations = await opened.locateBlobs();
  const blobs: BundleIndexRows['blobs'] = [];
  const manifests: BundleIndexRows['manifests'] = [];
  const mediaTypes = new Map<Digest, string>();
  for (const image of manifest.images) mediaTypes.set(image.digest, image.mediaType);
  for (const blob of manifest.blobs) {
    const at = locations.get(blob.digest)!; // locateBlobs checked that every listed blob is in the tar
    blobs.push([blob.digest, at.offset, at.size, blob.mediaType]);
    if (blob.role !== 'manifest') continue;
    const mediaType = isManifestMediaType(blob.mediaType) ? blob.mediaType : (mediaTypes.get(blob.digest) ?? blob.mediaType);
    if (at.size > MAX_STORED_MANIFEST) throw new UserError('BUNDLE_DAMAGED', `${where}: manifest ${blob.digest} is ${at.size} bytes, too big to be an image manifest`, { subject: { kind: 'bundle', name: where } });
    const bytes = await readSmallRange(opened, at.offset, at.size);
    if (sha256Of(bytes) !== blob.digest) {
      throw new UserError('BUNDLE_DAMAGED', `${where}: manifest ${blob.digest} does not match its digest`, { subject: { kind: 'bundle', name: where } });
    }
    const facts = manifestFacts(bytes, blob.digest, mediaType, `${where}: manifest ${blob.digest}`);
    manifests.push([
      blob.digest,
      mediaType,
      bytes.length,
      bytes,
      facts.defaultChild ?? null,
      facts.referrer?.subject ?? null,
      facts.referrer ? JSON.stringify(facts.referrer.descriptor) : null,
    ]);
  }
  const repositoryManifests: BundleIndexRows['repositoryManifests'] = [];
  const tags: BundleIndexRows['tags'] = [];
  for (const image of manifest.images) {
    const repo = imageRepository(image.repository, where);
    for (const digest of new Set([image.digest, ...image.manifests])) repositoryManifests.push([repo.domain, repo.path, digest]);
    if (image.tag !== undefined) tags.push([repo.domain, repo.path, image.tag, image.digest]);
  }
  return {
    bundle: {
      path: where,
      manifest_digest: sha256Of(opened.manifestBytes),
      created: manifest.created,
      release: manifest.release ? `${manifest.release.version} (${manifest.release.name})` : null,
      volumes: JSON.stringify(await statVolumes(opened.volumes)),
      total_size: opened.totalSize,
      images: manifest.images.length,
      blobs: manifest.blobs.length,
      bases: manifest.bases ? JSON.stringify(manifest.bases.map((b) => ({ name: b.name, manifestDigest: b.manifestDigest }))) : null,
    },
    blobs,
    manifests,
    repositoryManifests,
    tags,
  };
}

/**
 * Reads the bundle's manifest entry and tar headers and (re)writes its index rows in one transaction. A
 * bundle given opened stays open (it is its opener's to close).
 */
export async function indexBundle(db: StateDatabase, bundle: string | OpenedBundle): Promise<RegisteredBundle> {
  let rows: BundleIndexRows;
  if (typeof bundle !== 'string') rows = await gatherRows(bundle);
  else {
    const opened = await openBundle(bundle);
    try {
      rows = await gatherRows(opened);
    } finally {
      await opened.close();
    }
  }
  const write = db.transaction((): number => {
    db.prepare('DELETE FROM mirror_bundles WHERE path = ?').run(rows.bundle.path);
    const b = rows.bundle;
    const id = Number(
      db
        .prepare(
          `INSERT INTO mirror_bundles (path, manifest_digest, created, release, volumes, total_size, images, blobs, bases, registered_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ','now'))`,
        )
        .run(b.path, b.manifest_digest, b.created, b.release, b.volumes, b.total_size, b.images, b.blobs, b.bases).lastInsertRowid,
    );
    const blob = db.prepare('INSERT OR IGNORE INTO mirror_blobs (bundle_id, digest, offset, size, media_type) VALUES (?, ?, ?, ?, ?)');
    for (const r of rows.blobs) blob.run(id, ...r);
    const manifest = db.prepare('INSERT OR IGNORE INTO mirror_manifests (bundle_id, digest, media_type, size, bytes, default_child, subject, referrer) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
    for (const r of rows.manifests) manifest.run(id, ...r);
    const repoManifest = db.prepare('INSERT OR IGNORE INTO mirror_repository_manifests (bundle_id, domain, path, digest) VALUES (?, ?, ?, ?)');
    for (const r of rows.repositoryManifests) repoManifest.run(id, ...r);
    const tag = db.prepare('INSERT OR REPLACE INTO mirror_tags (bundle_id, domain, path, tag, digest) VALUES (?, ?, ?, ?, ?)');
    for (const r of rows.tags) tag.run(id, ...r);
    return id;
  });
  const id = write();
  return rowToBundle(db.prepare('SELECT * FROM mirror_bundles WHERE id = ?').get(id) as BundleRow);
}

export function listIndexedBundles(db: StateDatabase): RegisteredBundle[] {
  return (db.prepare('SELECT * FROM mirror_bundles ORDER BY id').all() as BundleRow[]).map(rowToBundle);
}

export function setBundleProblem(db: StateDatabase, id: number, problem: string | null): void {
  db.prepare('UPDATE mirror_bundles SET problem = ? WHERE id = ?').run(problem, id);
}

export function removeIndexedBundle(db: StateDatabase, bundlePath: string): boolean {
  return db.prepare('DELETE FROM mirror_bundles WHERE path = ?').run(bundlePath).changes > 0;
}

/**
 * Marks every registered delta whose bases are not all served (missing, or not served themselves: a chain,
 * by missingFromChain) as not served, naming the first base along its chain that is not, and serves again
 * those whose bases came back. Without it the delta's manifests would be served and its layers answered 404
 * (they live in the base).
 */
export function checkBases(db: StateDatabase): void {
  const bundles = listIndexedBundles(db);
  const ownProblem = (b: RegisteredBundle) => b.problem !== undefined && !b.problem.startsWith(BASE_PROBLEM_PREFIX);
  const served = bundles.filter((b) => !ownProblem(b)).map((b) => ({ manifestDigest: b.manifestDigest as string, bases: b.bases ?? [] }));
  for (const b of bundles) {
    if (ownProblem(b)) continue;
    const absent = missingFromChain(b.bases ?? [], served)[0];
    const problem = absent
      ? `${BASE_PROBLEM_PREFIX}its base ${absent.name} (${absent.manifestDigest}) is not in the bundle dir or not served; import the base again or remove this delta`
      : null;
    if ((b.problem ?? null) !== problem) setBundleProblem(db, b.id, problem);
  }
}
