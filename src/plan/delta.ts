// Delta plans (`bundle plan|create --since PREV`): what an update bundle can leave out because PREV — an
// earlier bundle or a node's inventory — already has it. Only layers are left out: every manifest and config
// of the new images is carried even when PREV has it, so the delta's index and image checks are complete.

import { open, stat } from 'node:fs/promises';
import path from 'node:path';
import { SEAL_SUFFIX, type BundleBase } from '../bundle/format.js';
import { locateBundle, readManifestEntry } from '../bundle/reader.js';
import { sha256Of, type Digest } from '../oci/digest.js';
import { inventoryBlobDigests, inventoryBlobHolders, readInventory } from '../node/inventory.js';
import { errnoCode, isUserError, UserError } from '../util/errors.js';
import type { BundlePlan, PlannedDelta } from './plan.js';

/** What PREV holds, as far as a delta may rely on it. */
export interface PreviousContent {
  readonly since: string;
  readonly kind: 'bundle' | 'inventory';
  /** The bundles that hold `blobs`, oldest first: the delta's bases are taken from them (basesUsed). */
  readonly bases: readonly BundleBase[];
  /** Every blob digest reachable through `bases`. */
  readonly blobs: ReadonlySet<Digest>;
  /**
   * Which of `bases` (indexes) hold each blob, when PREV says so (an inventory that names each blob's
   * bundles). Without it every one of `bases` is a base of the delta.
   */
  readonly holders?: ReadonlyMap<Digest, readonly number[]>;
}

/** `option` names where PREV was given: "--since", or the spec key ("since in FILE"). */
function unreadable(option: string, since: string, why: string, hint?: string): UserError {
  return new UserError('SINCE_UNREADABLE', `cannot read ${option} ${since}: ${why}`, { subject: { kind: 'path', name: since }, hint });
}

/** An inventory is a JSON object; a bundle is a tar (or its volumes) or a seal named NAME.seal.json. */
async function looksLikeJsonObject(file: string, option: string): Promise<boolean> {
  if (file.endsWith(SEAL_SUFFIX)) return false;
  let handle;
  try {
    // A directory opens but does not read (EISDIR): say so before anything else.
    if ((await stat(file)).isDirectory()) throw unreadable(option, file, 'it is a directory');
    handle = await open(file, 'r');
  } catch (err) {
    if (isUserError(err)) throw err;
    // A split bundle given by its common name has no file of that name: the bundle reader finds its volumes.
    if (errnoCode(err) === 'ENOENT') return false;
    throw unreadable(option, file, errnoCode(err) ?? (err as Error).message);
  }
  try {
    const head = Buffer.alloc(64);
    const { bytesRead } = await handle.read(head, 0, head.length, 0);
    return head.subarray(0, bytesRead).toString('utf8').trimStart().startsWith('{');
  } finally {
    await handle.close();
  }
}

/**
 * Reads PREV: a bundle (its tar, any volume, or its seal) or a node inventory (`pin-preload inventory`).
 * A bundle is the one base; a delta given as PREV also offers the blobs it leaves to its own bases (they are
 * on any node that has it), and the chain's dependencies follow from its own `bases`. Of an inventory, the
 * bundles the delta leaves blobs to become its bases (basesUsed); an inventory too old to say which bundle
 * holds each blob makes every bundle it lists a base.
 * Of a bundle only the manifest entry is read: its seal and first volume are enough (the other volumes of a
 * split bundle may stay on the media). Anything that keeps PREV from being read is SINCE_UNREADABLE, so the
 * CLI can read it before the plan's registry round trips.
 */
export async function readPrevious(since: string, option = '--since'): Promise<PreviousContent> {
  try {
    return await readPreviousContent(since, option);
  } catch (err) {
    if (!isUserError(err) || err.code === 'SINCE_UNREADABLE' || err.code === 'SINCE_EMPTY') throw err;
    // "No bundle there" gets --since's own hint (a bundle or an inventory); a damaged one keeps its reader's.
    throw unreadable(option, since, err.message, err.code === 'BUNDLE_NOT_FOUND' ? undefined : err.hint);
  }
}

async function readPreviousContent(since: string, option: string): Promise<PreviousContent> {
  if (await looksLikeJsonObject(since, option)) {
    const inventory = await readInventory(since);
    if (inventory.bundles.length === 0) {
      throw new UserError('SINCE_EMPTY', `${option} ${since}: the node inventory lists no bundles, so a delta against it would have no base`, {
        subject: { kind: 'path', name: since },
      });
    }
    // Oldest first (stable: bundles made at the same time keep the inventory's order), so "newest" is the
    // highest index in basesUsed.
    const bundles = [...inventory.bundles].sort((a, b) => cmp(a.created ?? '', b.created ?? ''));
    const holders = inventoryBlobHolders(inventory);
    const indexOf = new Map(bundles.map((b, i) => [b.manifestDigest, i]));
    return {
      since,
      kind: 'inventory',
      bases: bundles.map((b) => ({ name: path.basename(b.path), manifestDigest: b.manifestDigest as Digest })),
      blobs: inventoryBlobDigests(inventory),
      ...(holders !== undefined ? { holders: new Map([...holders].map(([digest, held]) => [digest, held.flatMap((d) => indexOf.get(d) ?? [])])) } : {}),
    };
  }
  const files = await locateBundle(since);
  const { manifest, manifestBytes } = await readManifestEntry(files);
  return {
    since,
    kind: 'bundle',
    bases: [{ name: files.name, manifestDigest: sha256Of(manifestBytes) }],
    blobs: new Set<Digest>([...manifest.blobs.map((b) => b.digest), ...(manifest.baseBlobs ?? [])]),
  };
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * The bases a delta that leaves `left` to PREV needs: the bundles that hold at least one of those blobs. A
 * blob one bundle alone holds decides that bundle; a blob several hold is left to one already chosen, else to
 * the newest of them. Why the newest: the mirror serves a blob from any served bundle (one holder is enough),
 * and retiring removes the bundles of the oldest releases first, so tying the delta to the newest holder keeps
 * no old bundle on the node longer than the delta's own release needs. Deterministic: `left` is in plan order
 * and `bases` in age order. PREV without holders (a bundle, an old inventory): all of its bases.
 */
export function basesUsed(previous: PreviousContent, left: readonly Digest[]): readonly BundleBase[] {
  const holders = previous.holders;
  if (holders === undefined) return previous.bases;
  const held = left.map((digest) => holders.get(digest) ?? []);
  const chosen = new Set<number>();
  for (const h of held) if (h.length === 1) chosen.add(h[0]!);
  for (const h of held) if (h.length > 1 && !h.some((i) => chosen.has(i))) chosen.add(Math.max(...h));
  return previous.bases.filter((_, i) => chosen.has(i));
}

/**
 * The delta of `plan` against `previous`: the layers PREV has leave `blobs` (recorded as base blobs); every
 * manifest and config stays. Totals are those of what the delta holds. A plan a bundle PREV has nothing in
 * common with is still a delta (all new, no base blob): the caller asked for one and the base is recorded. Of
 * an inventory only the bundles used are (basesUsed): none when the node has none of the layers, and then the
 * bundle is written as a full one.
 */
export function deltaPlan(plan: BundlePlan, previous: PreviousContent): BundlePlan {
  const kept = plan.blobs.filter((b) => b.role !== 'layer' || !previous.blobs.has(b.digest));
  const left = plan.blobs.filter((b) => b.role === 'layer' && previous.blobs.has(b.digest));
  const carried = kept.filter((b) => previous.blobs.has(b.digest));
  const fresh = kept.filter((b) => !previous.blobs.has(b.digest));
  const bytes = (blobs: ReadonlyArray<{ size: number }>) => blobs.reduce((n, b) => n + b.size, 0);
  // Each image counted on its own, over what the delta holds: the dedup ratio is then the delta's own.
  const keptSize = new Map(kept.map((b) => [b.digest, b.size]));
  const bytesWithRepeats = plan.images.reduce((n, image) => n + [...new Set([...image.manifests, ...image.blobs])].reduce((m, d) => m + (keptSize.get(d) ?? 0), 0), 0);
  const delta: PlannedDelta = {
    since: previous.since,
    sinceKind: previous.kind,
    bases: basesUsed(previous, left.map((b) => b.digest)),
    baseBlobs: left.map((b) => ({ digest: b.digest, size: b.size })),
    newBlobs: fresh.length,
    newBytes: bytes(fresh),
    carriedBlobs: carried.length,
    carriedBytes: bytes(carried),
    baseBytes: bytes(left),
  };
  return {
    ...plan,
    blobs: kept,
    totals: {
      ...plan.totals,
      uniqueBlobs: kept.length,
      uniqueBytes: bytes(kept),
      bytesWithRepeats,
      uncompressedBytes: kept.reduce((n, b) => n + b.uncompressedSize, 0),
    },
    delta,
  };
}

/** `plan` itself without --since, its delta against PREV (read before planning) with it. */
export function planSince(plan: BundlePlan, previous: PreviousContent | undefined): BundlePlan {
  return previous === undefined ? plan : deltaPlan(plan, previous);
}
