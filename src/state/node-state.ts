// What the node side remembers in the state database: imported bundles, every desired image and how far it
// got (pending → present → pinned | failed), and a MachineConfigNode-like status (generations + conditions).

import type { Migration, StateDatabase } from './database.js';
import { migrate } from './database.js';

export const NODE_MIGRATIONS: readonly Migration[] = [
  {
    module: 'node',
    version: 1,
    sql: `
      CREATE TABLE node_bundles (
        path TEXT PRIMARY KEY,
        manifest_digest TEXT NOT NULL,
        release TEXT,
        image_count INTEGER NOT NULL,
        -- seal digest + volume sizes and mtimes: "unchanged since it was verified" without re-reading it
        fingerprint TEXT NOT NULL,
        imported_at TEXT NOT NULL,
        verified INTEGER NOT NULL DEFAULT 0,
        verified_at TEXT
      );
      CREATE TABLE node_images (
        name TEXT PRIMARY KEY,
        bundle TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'present', 'pinned', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        updated_at TEXT NOT NULL
      );
      CREATE TABLE node_status (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        desired_set TEXT NOT NULL DEFAULT '',
        desired_generation INTEGER NOT NULL DEFAULT 0,
        current_generation INTEGER NOT NULL DEFAULT 0,
        last_failed_generation INTEGER NOT NULL DEFAULT 0,
        last_failed_generation_error TEXT NOT NULL DEFAULT '',
        progressing_status TEXT NOT NULL DEFAULT 'False',
        progressing_reason TEXT NOT NULL DEFAULT 'AsExpected',
        progressing_message TEXT NOT NULL DEFAULT '',
        progressing_transition TEXT NOT NULL DEFAULT '',
        degraded_status TEXT NOT NULL DEFAULT 'False',
        degraded_reason TEXT NOT NULL DEFAULT 'AsExpected',
        degraded_message TEXT NOT NULL DEFAULT '',
        degraded_transition TEXT NOT NULL DEFAULT '',
        storage_required INTEGER,
        storage_available INTEGER,
        pinning TEXT NOT NULL DEFAULT '',
        updated_at TEXT NOT NULL DEFAULT ''
      );
      INSERT INTO node_status (id) VALUES (1);
    `,
  },
  {
    module: 'node',
    version: 2,
    sql: `
      -- when the runtime first reported the image pinned (NULL while it is not)
      ALTER TABLE node_images ADD COLUMN pinned_at TEXT;
      -- the runtime as CRI Version names it ("containerd 1.7.24"), from the last sync
      ALTER TABLE node_status ADD COLUMN runtime TEXT NOT NULL DEFAULT '';
      -- images that left the desired set: their pin is removed (unpinned_at; NULL = not yet), never the image
      CREATE TABLE node_unpinned (
        name TEXT PRIMARY KEY,
        bundle TEXT NOT NULL,
        was_pinned INTEGER NOT NULL,
        left_at TEXT NOT NULL,
        unpinned_at TEXT
      );
    `,
  },
  {
    module: 'node',
    version: 3,
    sql: `
      -- releases retired by [pins] keep_releases: their own images unpinned (never deleted from the runtime)
      CREATE TABLE node_retired_releases (
        name TEXT PRIMARY KEY,
        version TEXT NOT NULL,
        bundles TEXT NOT NULL,
        retired_at TEXT NOT NULL
      );
      -- bundles retirement removed from the bundle dir
      CREATE TABLE node_removed_bundles (
        path TEXT PRIMARY KEY,
        manifest_digest TEXT NOT NULL,
        removed_at TEXT NOT NULL
      );
    `,
  },
];

/** Unpinned images kept on record for status: the most recent ones (a release upgrade unpins a few hundred). */
export const MAX_UNPINNED_RECORDS = 1000;

/** The MCO caps lastFailedGenerationError at this many characters. */
export const MAX_FAILED_GENERATION_ERROR = 32768;

export type ImageState = 'pending' | 'present' | 'pinned' | 'failed';
export type ConditionStatus = 'True' | 'False';
export type FailureReason = 'PrefetchFailed' | 'StorageInsufficient';

export interface BundleRecord {
  readonly path: string;
  readonly manifestDigest: string;
  readonly release: string | undefined;
  readonly imageCount: number;
  readonly fingerprint: string;
  readonly importedAt: string;
  readonly verified: boolean;
  readonly verifiedAt: string | undefined;
}

export interface ImageRecord {
  readonly name: string;
  readonly bundle: string;
  readonly state: ImageState;
  readonly attempts: number;
  readonly lastError: string | undefined;
  readonly updatedAt: string;
  /** When the runtime first reported it pinned; undefined while it is not pinned. */
  readonly pinnedAt: string | undefined;
}

/** An image that left the desired set (its bundle was removed): its pin is removed, the image is not. */
export interface UnpinnedRecord {
  readonly name: string;
  readonly bundle: string;
  /** It was recorded pinned when it left the set. */
  readonly wasPinned: boolean;
  readonly leftAt: string;
  /** When its pin was removed from the runtime; undefined until the sync that does it. */
  readonly unpinnedAt: string | undefined;
}

/** A release retired by [pins] keep_releases. */
export interface RetiredReleaseRecord {
  readonly name: string;
  readonly version: string;
  /** The bundles that carried it when it was retired. */
  readonly bundles: readonly string[];
  readonly retiredAt: string;
}

/** A bundle retirement removed from the bundle dir. */
export interface RemovedBundleRecord {
  readonly path: string;
  readonly manifestDigest: string;
  readonly removedAt: string;
}

export interface Condition {
  readonly type: 'PinnedImageSetsProgressing' | 'PinnedImageSetsDegraded';
  readonly status: ConditionStatus;
  readonly reason: string;
  readonly message: string;
  readonly lastTransitionTime: string;
}

export interface NodeStatus {
  readonly desiredGeneration: number;
  readonly currentGeneration: number;
  readonly lastFailedGeneration: number;
  readonly lastFailedGenerationError: string;
  readonly conditions: readonly [Condition, Condition];
  /** Set when the last failure was StorageInsufficient. */
  readonly storage: { readonly requiredBytes: number; readonly availableBytes: number } | undefined;
  /** How the runtime protects the images from GC ("crio pinned_images", or why they are not protected). */
  readonly pinning: string;
  /** The runtime as CRI Version named it at the last sync ("containerd 1.7.24"); "" before any. */
  readonly runtime: string;
  readonly updatedAt: string;
}

export const PROGRESSING_REASON = 'ImagePrefetch';
export const AS_EXPECTED = 'AsExpected';

function now(): string {
  return new Date().toISOString();
}

interface StatusRow {
  desired_set: string;
  desired_generation: number;
  current_generation: number;
  last_failed_generation: number;
  last_failed_generation_error: string;
  progressing_status: ConditionStatus;
  progressing_reason: string;
  progressing_message: string;
  progressing_transition: string;
  degraded_status: ConditionStatus;
  degraded_reason: string;
  degraded_message: string;
  degraded_transition: string;
  storage_required: number | null;
  storage_available: number | null;
  pinning: string;
  runtime: string;
  updated_at: string;
}

/** The node's state tables behind small methods, each one transaction. */
export class NodeState {
  constructor(readonly db: StateDatabase) {
    migrate(db, NODE_MIGRATIONS);
  }

  // ---- bundles ----

  /** Records (or refreshes) a bundle; a changed fingerprint makes it unverified again. */
  upsertBundle(bundle: { path: string; manifestDigest: string; release?: string; imageCount: number; fingerprint: string }): void {
    this.db
      .prepare(
        `INSERT INTO node_bundles (path, manifest_digest, release, image_count, fingerprint, imported_at, verified)
         VALUES (@path, @manifestDigest, @release, @imageCount, @fingerprint, @now, 0)
         ON CONFLICT (path) DO UPDATE SET
           verified = CASE WHEN fingerprint = excluded.fingerprint AND manifest_digest = excluded.manifest_digest THEN verified ELSE 0 END,
           verified_at = CASE WHEN fingerprint = excluded.fingerprint AND manifest_digest = excluded.manifest_digest THEN verified_at ELSE NULL END,
           manifest_digest = excluded.manifest_digest, release = excluded.release,
           image_count = excluded.image_count, fingerprint = excluded.fingerprint`,
      )
      .run({ ...bundle, release: bundle.release ?? null, now: now() });
  }

  markBundleVerified(path: string, fingerprint: string): void {
    this.db.prepare('UPDATE node_bundles SET verified = 1, verified_at = ? WHERE path = ? AND fingerprint = ?').run(now(), path, fingerprint);
  }

  /** Whether `path` was verified with exactly this fingerprint. */
  isBundleVerified(path: string, fingerprint: string): boolean {
    return this.db.prepare('SELECT 1 FROM node_bundles WHERE path = ? AND fingerprint = ? AND verified = 1').get(path, fingerprint) !== undefined;
  }

  /** Forgets bundles no longer in the bundle dir. */
  retainBundles(paths: readonly string[]): void {
    const keep = new Set(paths);
    this.db.transaction(() => {
      for (const b of this.bundles()) if (!keep.has(b.path)) this.db.prepare('DELETE FROM node_bundles WHERE path = ?').run(b.path);
    })();
  }

  bundles(): BundleRecord[] {
    const rows = this.db.prepare('SELECT * FROM node_bundles ORDER BY path').all() as Array<Record<string, unknown>>;
    return rows.map((r) => ({
      path: r.path as string,
      manifestDigest: r.manifest_digest as string,
      release: (r.release as string | null) ?? undefined,
      imageCount: r.image_count as number,
      fingerprint: r.fingerprint as string,
      importedAt: r.imported_at as string,
      verified: r.verified === 1,
      verifiedAt: (r.verified_at as string | null) ?? undefined,
    }));
  }

  // ---- the desired set and generations ----

  /**
   * Declares the desired set of images, keyed by `setKey` (the sorted manifest digests of the bundles).
   * A new key starts a new generation (generations never decrease); images of the set not yet known are
   * added as pending; images no longer desired move to the unpinned list, waiting for their pin to be removed
   * (they stay in the runtime). Returns the desired generation.
   */
  setDesired(setKey: string, images: ReadonlyArray<{ name: string; bundle: string }>): number {
    return this.db.transaction(() => {
      const row = this.statusRow();
      let generation = row.desired_generation;
      if (row.desired_set !== setKey || generation === 0) {
        generation += 1;
        this.db.prepare('UPDATE node_status SET desired_set = ?, desired_generation = ?, updated_at = ? WHERE id = 1').run(setKey, generation, now());
      }
      const desired = new Set(images.map((i) => i.name));
      const at = now();
      const leave = this.db.prepare(
        `INSERT INTO node_unpinned (name, bundle, was_pinned, left_at, unpinned_at) VALUES (?, ?, ?, ?, NULL)
         ON CONFLICT (name) DO UPDATE SET bundle = excluded.bundle, was_pinned = excluded.was_pinned, left_at = excluded.left_at, unpinned_at = NULL`,
      );
      const forget = this.db.prepare('DELETE FROM node_images WHERE name = ?');
      for (const known of this.images()) {
        if (desired.has(known.name)) continue;
        leave.run(known.name, known.bundle, known.state === 'pinned' ? 1 : 0, at);
        forget.run(known.name);
      }
      const insert = this.db.prepare(
        `INSERT INTO node_images (name, bundle, state, attempts, updated_at) VALUES (?, ?, 'pending', 0, ?)
         ON CONFLICT (name) DO UPDATE SET bundle = excluded.bundle`,
      );
      const back = this.db.prepare('DELETE FROM node_unpinned WHERE name = ?');
      for (const image of images) {
        insert.run(image.name, image.bundle, at);
        back.run(image.name); // desired again: no longer on the unpinned list
      }
      return generation;
    })();
  }

  // ---- images ----

  images(): ImageRecord[] {
    const rows = this.db.prepare('SELECT * FROM node_images ORDER BY name').all() as Array<Record<string, unknown>>;
    return rows.map((r) => ({
      name: r.name as string,
      bundle: r.bundle as string,
      state: r.state as ImageState,
      attempts: r.attempts as number,
      lastError: (r.last_error as string | null) ?? undefined,
      updatedAt: r.updated_at as string,
      pinnedAt: (r.pinned_at as string | null) ?? undefined,
    }));
  }

  image(name: string): ImageRecord | undefined {
    return this.images().find((i) => i.name === name);
  }

  /** The runtime has it (ImageStatus said so). A pinned image stays pinned only if it is still present. */
  markPresent(names: readonly string[]): void {
    this.db.transaction(() => {
      const stmt = this.db.prepare(
        `UPDATE node_images SET state = CASE WHEN state = 'pinned' THEN 'pinned' ELSE 'present' END, last_error = NULL, updated_at = ? WHERE name = ?`,
      );
      const at = now();
      for (const name of names) stmt.run(at, name);
    })();
  }

  /** The runtime does not have it (any more): back to pending, whatever it was. */
  markMissing(names: readonly string[]): void {
    this.db.transaction(() => {
      const stmt = this.db.prepare(`UPDATE node_images SET state = 'pending', pinned_at = NULL, updated_at = ? WHERE name = ?`);
      const at = now();
      for (const name of names) stmt.run(at, name);
    })();
  }

  /** One pull attempt ended (successfully or not). */
  recordAttempt(name: string, error?: string): void {
    this.db
      .prepare(`UPDATE node_images SET attempts = attempts + 1, last_error = ?, updated_at = ? WHERE name = ?`)
      .run(error ?? null, now(), name);
  }

  markFailed(name: string, error: string): void {
    this.db.prepare(`UPDATE node_images SET state = 'failed', last_error = ?, updated_at = ? WHERE name = ?`).run(error, now(), name);
  }

  /**
   * Pinned: only for images that are present (the final ImageStatus confirmed them after the pinned file
   * was written); anything else is refused, so no crash can leave an absent image recorded as pinned.
   */
  markPinned(names: readonly string[]): void {
    this.db.transaction(() => {
      const stmt = this.db.prepare(
        `UPDATE node_images SET state = 'pinned', pinned_at = COALESCE(pinned_at, @at), updated_at = @at WHERE name = @name AND state IN ('present', 'pinned')`,
      );
      const at = now();
      for (const name of names) {
        if (stmt.run({ at, name }).changes !== 1) throw new Error(`refusing to record ${name} as pinned: it is not recorded as present`);
      }
    })();
  }

  /** Pinned images whose pin went away (e.g. the pinned file was removed) are merely present; `except` stay. */
  unpinAll(except: readonly string[] = []): void {
    const keep = new Set(except);
    this.db.transaction(() => {
      const stmt = this.db.prepare(`UPDATE node_images SET state = 'present', pinned_at = NULL, updated_at = ? WHERE name = ? AND state = 'pinned'`);
      const at = now();
      for (const image of this.images()) if (image.state === 'pinned' && !keep.has(image.name)) stmt.run(at, image.name);
    })();
  }

  /**
   * The end of a successful sync, in one transaction: every desired image present (the final ImageStatus saw
   * it), `pinned` exactly those the runtime reports pinned (keeping when each was first pinned), current
   * generation = desired.
   */
  recordSynced(present: readonly string[], pinned: readonly string[], pinning: string): void {
    this.db.transaction(() => {
      this.unpinAll(pinned);
      this.markPresent(present);
      this.markPinned(pinned);
      this.recordSuccess(pinning);
    })();
  }

  // ---- images that left the desired set ----

  /** Images that left the desired set and whose pin is not removed yet. */
  leavingImages(): string[] {
    return (this.db.prepare('SELECT name FROM node_unpinned WHERE unpinned_at IS NULL ORDER BY name').all() as Array<{ name: string }>).map((r) => r.name);
  }

  /** Their pin is removed from the runtime (or there was none to remove); keeps the most recent records only. */
  markUnpinned(names: readonly string[]): void {
    this.db.transaction(() => {
      const stmt = this.db.prepare('UPDATE node_unpinned SET unpinned_at = ? WHERE name = ? AND unpinned_at IS NULL');
      const at = now();
      for (const name of names) stmt.run(at, name);
      this.db
        .prepare(
          `DELETE FROM node_unpinned WHERE unpinned_at IS NOT NULL AND name NOT IN
             (SELECT name FROM node_unpinned ORDER BY left_at DESC, name LIMIT ?)`,
        )
        .run(MAX_UNPINNED_RECORDS);
    })();
  }

  /** Most recent first. */
  unpinnedImages(): UnpinnedRecord[] {
    const rows = this.db.prepare('SELECT * FROM node_unpinned ORDER BY left_at DESC, name').all() as Array<Record<string, unknown>>;
    return rows.map((r) => ({
      name: r.name as string,
      bundle: r.bundle as string,
      wasPinned: r.was_pinned === 1,
      leftAt: r.left_at as string,
      unpinnedAt: (r.unpinned_at as string | null) ?? undefined,
    }));
  }

  // ---- retirement ([pins] keep_releases) ----

  /** Records releases as retired (their images leave the desired set at the next setDesired). */
  recordRetiredReleases(releases: ReadonlyArray<{ name: string; version: string; bundles: readonly string[] }>): void {
    this.db.transaction(() => {
      const stmt = this.db.prepare('INSERT INTO node_retired_releases (name, version, bundles, retired_at) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO NOTHING');
      const at = now();
      for (const r of releases) stmt.run(r.name, r.version, r.bundles.join(','), at);
    })();
  }

  recordRemovedBundle(path: string, manifestDigest: string): void {
    this.db
      .prepare('INSERT INTO node_removed_bundles (path, manifest_digest, removed_at) VALUES (?, ?, ?) ON CONFLICT (path) DO UPDATE SET manifest_digest = excluded.manifest_digest, removed_at = excluded.removed_at')
      .run(path, manifestDigest, now());
  }

  /** Most recent first. */
  retiredReleases(): RetiredReleaseRecord[] {
    const rows = this.db.prepare('SELECT * FROM node_retired_releases ORDER BY retired_at DESC, name').all() as Array<Record<string, string>>;
    return rows.map((r) => ({ name: r.name!, version: r.version!, bundles: r.bundles! === '' ? [] : r.bundles!.split(','), retiredAt: r.retired_at! }));
  }

  /** Most recent first. */
  removedBundles(): RemovedBundleRecord[] {
    const rows = this.db.prepare('SELECT * FROM node_removed_bundles ORDER BY removed_at DESC, path').all() as Array<Record<string, string>>;
    return rows.map((r) => ({ path: r.path!, manifestDigest: r.manifest_digest!, removedAt: r.removed_at! }));
  }

  // ---- status ----

  /** The runtime as CRI Version named it ("containerd 1.7.24"). */
  recordRuntime(runtime: string): void {
    this.db.prepare('UPDATE node_status SET runtime = ? WHERE id = 1').run(runtime);
  }

  private statusRow(): StatusRow {
    return this.db.prepare('SELECT * FROM node_status WHERE id = 1').get() as StatusRow;
  }

  /** Progressing=True (ImagePrefetch): a sync of the desired generation started. */
  startProgressing(message: string): void {
    this.setConditions({ progressing: ['True', PROGRESSING_REASON, message] });
  }

  /** The desired generation is fully in place: current = desired, both conditions False/AsExpected. */
  recordSuccess(pinning: string): void {
    this.db.transaction(() => {
      this.db
        .prepare('UPDATE node_status SET current_generation = desired_generation, storage_required = NULL, storage_available = NULL, pinning = ? WHERE id = 1')
        .run(pinning);
      this.setConditions({ progressing: ['False', AS_EXPECTED, ''], degraded: ['False', AS_EXPECTED, ''] });
    })();
  }

  /** The sync of the desired generation failed; `error` is kept whole up to the MCO's limit. */
  recordFailure(reason: FailureReason, error: string, storage?: { requiredBytes: number; availableBytes: number }): void {
    this.db.transaction(() => {
      this.db
        .prepare(
          `UPDATE node_status SET last_failed_generation = desired_generation, last_failed_generation_error = ?,
             storage_required = ?, storage_available = ? WHERE id = 1`,
        )
        .run(truncateError(error), storage?.requiredBytes ?? null, storage?.availableBytes ?? null);
      this.setConditions({ progressing: ['False', reason, ''], degraded: ['True', reason, truncateError(error)] });
    })();
  }

  status(): NodeStatus {
    const r = this.statusRow();
    return {
      desiredGeneration: r.desired_generation,
      currentGeneration: r.current_generation,
      lastFailedGeneration: r.last_failed_generation,
      lastFailedGenerationError: r.last_failed_generation_error,
      conditions: [
        { type: 'PinnedImageSetsProgressing', status: r.progressing_status, reason: r.progressing_reason, message: r.progressing_message, lastTransitionTime: r.progressing_transition },
        { type: 'PinnedImageSetsDegraded', status: r.degraded_status, reason: r.degraded_reason, message: r.degraded_message, lastTransitionTime: r.degraded_transition },
      ],
      storage: r.storage_required === null || r.storage_available === null ? undefined : { requiredBytes: r.storage_required, availableBytes: r.storage_available },
      pinning: r.pinning,
      runtime: r.runtime,
      updatedAt: r.updated_at,
    };
  }

  /** Like Kubernetes conditions: lastTransitionTime moves only when the status flips. */
  private setConditions(change: { progressing?: [ConditionStatus, string, string]; degraded?: [ConditionStatus, string, string] }): void {
    const at = now();
    const row = this.statusRow();
    for (const [name, value] of Object.entries(change) as Array<['progressing' | 'degraded', [ConditionStatus, string, string]]>) {
      const [status, reason, message] = value;
      const previous = row[`${name}_status`];
      const transition = previous !== status || row[`${name}_transition`] === '' ? at : row[`${name}_transition`];
      this.db
        .prepare(`UPDATE node_status SET ${name}_status = ?, ${name}_reason = ?, ${name}_message = ?, ${name}_transition = ?, updated_at = ? WHERE id = 1`)
        .run(status, reason, message, transition, at);
    }
  }
}

export function truncateError(error: string): string {
  return error.length <= MAX_FAILED_GENERATION_ERROR ? error : `${error.slice(0, MAX_FAILED_GENERATION_ERROR - 14)} …(truncated)`;
}
