// Delta plans (`bundle plan|create --since PREV`): what an update bundle can leave out because PREV — an
// earlier bundle or a node's inventory — already has it. Only layers are left out: every manifest and config
// of the new images is carried even when PREV has it, so the delta's index and image checks are complete.

import { open } from 'node:fs/promises';
import path from 'node:path';
import { SEAL_SUFFIX, type BundleBase } from '../bundle/format.js';
import { openBundle } from '../bundle/reader.js';
import { sha256Of, type Digest } from '../oci/digest.js';
import { readInventory } from '../node/inventory.js';
import { errnoCode, UserError } from '../util/errors.js';
import type { BundlePlan, PlannedDelta } from './plan.js';

/** What PREV holds, as far as a delta may rely on it. */
export interface PreviousContent {
  readonly since: string;
  readonly kind: 'bundle' | 'inventory';
  /** The bundles that hold `blobs`: they become the delta's bases. */
  readonly bases: readonly BundleBase[];
  /** Every blob digest reachable through `bases`. */
  readonly blobs: ReadonlySet<string>;
}

/** An inventory is a JSON object; a bundle is a tar (or its volumes) or a seal named NAME.seal.json. */
async function looksLikeJsonObject(file: string): Promise<boolean> {
  if (file.endsWith(SEAL_SUFFIX)) return false;
  let handle;
  try {
    handle = await open(file, 'r');
  } catch (err) {
    // A split bundle given by its common name has no file of that name: the bundle reader finds its volumes.
    if (errnoCode(err) === 'ENOENT') return false;
    throw new UserError('SINCE_UNREADABLE', `cannot read --since ${file}: ${errnoCode(err) ?? (err as Error).message}`, { subject: { kind: 'path', name: file } });
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
 * on any node that has it), and the chain's dependencies follow from its own `bases`. An inventory makes
 * every bundle it lists a base: it says which blobs the node has, not which bundle holds each.
 */
export async function readPrevious(since: string): Promise<PreviousContent> {
  if (await looksLikeJsonObject(since)) {
    const inventory = await readInventory(since);
    if (inventory.bundles.length === 0) {
      throw new UserError('SINCE_EMPTY', `--since ${since}: the node inventory lists no bundles, so a delta against it would have no base`, {
        subject: { kind: 'path', name: since },
      });
    }
    return {
      since,
      kind: 'inventory',
      bases: inventory.bundles.map((b) => ({ name: path.basename(b.path), manifestDigest: b.manifestDigest as Digest })),
      blobs: new Set(inventory.blobs.map((b) => b.digest)),
    };
  }
  const opened = await openBundle(since);
  try {
    const manifest = opened.manifest;
    return {
      since,
      kind: 'bundle',
      bases: [{ name: opened.name, manifestDigest: sha256Of(opened.manifestBytes) }],
      blobs: new Set<string>([...manifest.blobs.map((b) => b.digest), ...(manifest.baseBlobs ?? [])]),
    };
  } finally {
    await opened.close();
  }
}

/**
 * The delta of `plan` against `previous`: the layers PREV has leave `blobs` (recorded as base blobs); every
 * manifest and config stays. Totals are those of what the delta holds. A plan PREV has nothing in common
 * with is still a delta (all new, no base blob): the caller asked for one and the bases are recorded.
 */
export function deltaPlan(plan: BundlePlan, previous: PreviousContent): BundlePlan {
  const kept = plan.blobs.filter((b) => b.role !== 'layer' || !previous.blobs.has(b.digest));
  const left = plan.blobs.filter((b) => b.role === 'layer' && previous.blobs.has(b.digest));
  const carried = kept.filter((b) => previous.blobs.has(b.digest));
  const fresh = kept.filter((b) => !previous.blobs.has(b.digest));
  const bytes = (blobs: ReadonlyArray<{ size: number }>) => blobs.reduce((n, b) => n + b.size, 0);
  const delta: PlannedDelta = {
    since: previous.since,
    sinceKind: previous.kind,
    bases: previous.bases,
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
      uncompressedBytes: kept.reduce((n, b) => n + b.uncompressedSize, 0),
    },
    delta,
  };
}

/** `plan` itself without --since, its delta against PREV with it. */
export async function planSince(plan: BundlePlan, since: string | undefined): Promise<BundlePlan> {
  return since === undefined ? plan : deltaPlan(plan, await readPrevious(since));
}
