// Retiring old pins ([pins] keep_releases): the releases across the bundle dir ordered newest first, the newest
// N kept, and everything that belongs only to older ones unpinned; bundles no kept release needs leave the
// bundle dir. Pure planning here; preload applies a plan only once the newest release is all pinned, so a
// failed update never loses the old pins.
//
// Who an image belongs to: a release's payload image and the component images it lists belong to that
// release; any other image of a bundle (extra images, `--image`) belongs to the bundle itself and ages with
// it: it is kept while any bundle holding it is kept. A bundle is removed when all of its releases are
// retired (a bundle without releases is never removed by retirement) and no kept bundle depends on it.

import { bundleBases, bundleReleases, pinnableImages } from '../bundle/bundle-manifest.js';
import type { BundleRelease } from '../bundle/format.js';
import { compareVersions, parseVersion } from '../release/update-graph.js';
import type { NodeState } from '../state/node-state.js';
import { bundleSetKey, desiredImages, removeBundleFromDir, type DesiredImage, type NodeBundle } from './bundle-dir.js';

export interface NodeRelease {
  /** Payload by digest: the release's identity across bundles. */
  readonly name: string;
  readonly version: string;
  /** Paths of the bundles that carry it. */
  readonly bundles: readonly string[];
}

export interface RetirementPlan {
  /** Newest first; the first is the release the node updates to. */
  readonly kept: readonly NodeRelease[];
  /** Beyond the newest N, newest first. */
  readonly retired: readonly NodeRelease[];
  /** How releases were ordered: by semver, or by bundle import order when a version is missing or not semver. */
  readonly orderedBy: 'version' | 'import order';
  /** Images of the newest release: all must be pinned before anything is retired. */
  readonly newestImages: readonly string[];
  /** Bundles whose every release is retired and that no kept bundle depends on. */
  readonly removableBundles: readonly NodeBundle[];
  /** Bundles whose every release is retired but that a kept bundle depends on (a delta's base): kept. */
  readonly heldBundles: readonly NodeBundle[];
  /** Owners of each image: release names, or `bundle:PATH` for an image that belongs to its bundle. */
  readonly owners: ReadonlyMap<string, ReadonlySet<string>>;
}

/**
 * The bundles (manifest digests) a bundle needs in the bundle dir to be served whole: a delta's bases
 * (bundle-manifest `bases`); a full bundle needs none. Chains follow through planRetirement's fixed point.
 */
export function bundleDependencies(bundle: NodeBundle): readonly string[] {
  return bundleBases(bundle.manifest).map((b) => b.manifestDigest);
}

const bundleOwner = (bundle: NodeBundle): string => `bundle:${bundle.path}`;

/** Who each image of the bundles belongs to (see the file comment). */
export function imageOwners(bundles: readonly NodeBundle[]): Map<string, Set<string>> {
  const owners = new Map<string, Set<string>>();
  const own = (image: string, owner: string) => {
    let set = owners.get(image);
    if (!set) owners.set(image, (set = new Set()));
    set.add(owner);
  };
  for (const bundle of bundles) {
    const releases = bundleReleases(bundle.manifest);
    const claimed = new Set<string>();
    for (const release of releases) {
      for (const image of releaseImages(release, bundle)) {
        own(image, release.name);
        claimed.add(image);
      }
    }
    for (const image of pinnableImages(bundle.manifest)) if (!claimed.has(image.name)) own(image.name, bundleOwner(bundle));
  }
  return owners;
}

/**
 * A release's payload and components. Bundles written before `releases[]` name no components: there every
 * non-extra image of the bundle is taken to belong to its release.
 */
function releaseImages(release: BundleRelease, bundle: NodeBundle): string[] {
  if (release.components.length === 0) return pinnableImages(bundle.manifest).filter((i) => i.origin !== 'extra').map((i) => i.name);
  return [release.name, ...release.components.map((c) => c.image)];
}

/**
 * Plans retirement over the bundles in the bundle dir. `importedAt` (bundle path → RFC 3339) orders releases
 * when their versions cannot be; `dependsOn` names the manifest digests a bundle needs (bundleDependencies).
 */
export function planRetirement(
  bundles: readonly NodeBundle[],
  keepReleases: number,
  importedAt: ReadonlyMap<string, string>,
  dependsOn: (bundle: NodeBundle) => readonly string[] = bundleDependencies,
): RetirementPlan {
  // Each release once (a release may sit in several bundles), with its import position.
  const byName = new Map<string, { name: string; version: string; bundles: string[]; position: [string, number] }>();
  const ordered = [...bundles].sort((a, b) => cmp(importedAt.get(a.path) ?? '', importedAt.get(b.path) ?? '') || cmp(a.path, b.path));
  ordered.forEach((bundle) => {
    bundleReleases(bundle.manifest).forEach((r, i) => {
      const known = byName.get(r.name);
      if (known) known.bundles.push(bundle.path);
      else byName.set(r.name, { name: r.name, version: r.version, bundles: [bundle.path], position: [importedAt.get(bundle.path) ?? '', i] });
    });
  });
  const releases = [...byName.values()];
  const bySemver = releases.every((r) => parseVersion(r.version) !== undefined);
  // Newest first; in import order, a later import (or a later release of the same bundle) is newer.
  releases.sort((a, b) => (bySemver ? compareVersions(b.version, a.version) : 0) || cmp(b.position[0], a.position[0]) || b.position[1] - a.position[1]);
  const strip = (r: (typeof releases)[number]): NodeRelease => ({ name: r.name, version: r.version, bundles: r.bundles });
  const kept = releases.slice(0, keepReleases).map(strip);
  const retired = releases.slice(keepReleases).map(strip);
  const retiredNames = new Set(retired.map((r) => r.name));

  // Bundles whose releases are all retired go, unless a kept bundle (transitively) depends on them.
  const candidates = bundles.filter((b) => {
    const rs = bundleReleases(b.manifest);
    return rs.length > 0 && rs.every((r) => retiredNames.has(r.name));
  });
  const held = new Set<NodeBundle>();
  let changed = true;
  while (changed) {
    changed = false;
    const needed = new Set(bundles.filter((b) => !candidates.includes(b) || held.has(b)).flatMap((b) => dependsOn(b)));
    for (const c of candidates) {
      if (!held.has(c) && needed.has(c.manifestDigest)) {
        held.add(c);
        changed = true;
      }
    }
  }
  const owners = imageOwners(bundles);
  const newest = kept[0]?.name;
  const newestImages = newest === undefined ? [] : [...owners].filter(([, o]) => o.has(newest)).map(([image]) => image).sort();
  return {
    kept,
    retired,
    orderedBy: bySemver ? 'version' : 'import order',
    newestImages,
    removableBundles: candidates.filter((c) => !held.has(c)),
    heldBundles: candidates.filter((c) => held.has(c)),
    owners,
  };
}

/**
 * Images to leave out of the desired set: those whose every owner is a retired release in `applied` (the
 * releases already retired on this node). Bundle-owned images stay while their bundle is in the bundle dir.
 */
export function retiredImages(plan: RetirementPlan, applied: ReadonlySet<string>): Set<string> {
  const retired = new Set(plan.retired.map((r) => r.name).filter((n) => applied.has(n)));
  const out = new Set<string>();
  if (retired.size === 0) return out;
  for (const [image, owners] of plan.owners) if ([...owners].every((o) => retired.has(o))) out.add(image);
  return out;
}

/** The node's desired image set: every bundled image but those of releases already retired here. */
export interface DesiredSet {
  /** Identifies the set: a changed key is a new desired generation. */
  readonly setKey: string;
  readonly images: readonly DesiredImage[];
  readonly retirement: RetirementPlan;
  /** Releases already retired on this node. */
  readonly applied: ReadonlySet<string>;
}

/**
 * One computation of the desired set for preload and import alike, so an import never brings back, as
 * pending, the images of a release already retired (and a new generation that only flips them back).
 */
export function desiredSet(bundles: readonly NodeBundle[], keepReleases: number, state: Pick<NodeState, 'bundles' | 'retiredReleases'>): DesiredSet {
  const retirement = planRetirement(bundles, keepReleases, new Map(state.bundles().map((b) => [b.path, b.importedAt])));
  const applied = new Set(state.retiredReleases().map((r) => r.name));
  const leftOut = retiredImages(retirement, applied);
  const images = desiredImages(bundles).filter((i) => !leftOut.has(i.name));
  // Retiring releases of a bundle that stays (it holds a kept release too) changes the set as well.
  const setKey = bundleSetKey(bundles) + (leftOut.size > 0 ? ` retired:${retirement.retired.filter((r) => applied.has(r.name)).map((r) => r.name).sort().join(',')}` : '');
  return { setKey, images, retirement, applied };
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** What one retirement did: the releases retired and the bundles removed from the bundle dir. */
export interface RetirementResult {
  readonly releases: ReadonlyArray<{ readonly name: string; readonly version: string }>;
  readonly bundles: readonly string[];
}

/**
 * Applies `plan` once the newest release is all pinned (`pinned`: images the runtime reports pinned): records
 * the newly retired releases and removes the removable bundles (seal first). Returns undefined when there is
 * nothing new to retire or the newest release is not all pinned yet (a failed or unfinished update retires
 * nothing); the caller then syncs again so the usual unpinning takes the retired images out.
 */
export async function applyRetirement(
  plan: RetirementPlan,
  applied: ReadonlySet<string>,
  pinned: ReadonlySet<string>,
  io: {
    readonly recordReleases: (releases: readonly NodeRelease[]) => void;
    readonly recordRemovedBundle: (bundle: NodeBundle) => void;
    readonly log: (line: string) => void;
  },
): Promise<RetirementResult | undefined> {
  if (plan.retired.length === 0 || plan.newestImages.length === 0) return undefined;
  const releases = plan.retired.filter((r) => !applied.has(r.name));
  if (releases.length === 0 && plan.removableBundles.length === 0) return undefined;
  const waiting = plan.newestImages.filter((i) => !pinned.has(i));
  if (waiting.length > 0) {
    io.log(`retirement waits: ${waiting.length} image(s) of the newest release ${plan.kept[0]!.version || plan.kept[0]!.name} are not pinned yet`);
    return undefined;
  }
  const order = plan.orderedBy === 'version' ? 'by version' : 'by bundle import order (a release version is missing or not semver)';
  if (releases.length > 0) {
    io.recordReleases(releases);
    io.log(`retired ${releases.length} release(s) beyond the newest ${plan.kept.length} (${order}): ${releases.map((r) => r.version || r.name).join(', ')}`);
  }
  for (const held of plan.heldBundles) io.log(`kept bundle ${held.path}: its releases are retired but a kept bundle depends on it`);
  const removed: string[] = [];
  for (const bundle of plan.removableBundles) {
    await removeBundleFromDir(bundle.sealPath);
    io.recordRemovedBundle(bundle);
    removed.push(bundle.path);
    io.log(`removed bundle ${bundle.path} from the bundle dir: no kept release needs it`);
  }
  return { releases: releases.map((r) => ({ name: r.name, version: r.version })), bundles: removed };
}
