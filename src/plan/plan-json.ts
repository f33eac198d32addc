// The stable JSON form of a BundlePlan (`bundle plan --json`, docs/plan-json.md): schemaVersion 1.
// Fields are only ever added; a change in meaning gets a new schemaVersion.

import { formatPlatform } from '../oci/platform.js';
import { formatReference, repositoryName } from '../oci/reference.js';
import { COMPRESSED_LAYER_RATIO } from './plan.js';
import { newestRelease, type BundlePlan, type PlannedRelease } from './plan.js';

export const PLAN_JSON_SCHEMA_VERSION = 1;

/** Unique bytes over bytes with repeats: how much deduplication saves (1 = nothing shared). */
export function dedupRatio(plan: BundlePlan): number {
  return plan.totals.uniqueBytes === 0 ? 1 : plan.totals.bytesWithRepeats / plan.totals.uniqueBytes;
}

function releaseToJson(release: PlannedRelease): object {
  return {
    requestedAs: release.requestedAs,
    name: formatReference(release.reference),
    repository: repositoryName(release.reference),
    digest: release.reference.digest,
    version: release.version,
    previous: release.previous ?? [],
    componentCount: release.componentCount,
    // How many signatures --signature-store holds for it; null when no store was asked.
    signatures: release.signatures?.length ?? null,
  };
}

export function planToJson(plan: BundlePlan): object {
  const release = newestRelease(plan.releases);
  return {
    schemaVersion: PLAN_JSON_SCHEMA_VERSION,
    // The newest release, as before several releases could be planned; `releases` lists them all.
    release: release ? releaseToJson(release) : null,
    releases: plan.releases.map((r) => ({
      ...releaseToJson(r),
      channel: r.channel ?? null,
      components: r.components.map((c) => ({ name: c.name, image: formatReference(c.reference) })),
    })),
    channels: plan.channels.map((c) => ({ ...c, versions: [...c.versions] })),
    blocked: plan.blocked.map((b) => ({ ...b })),
    // With --signatures: how many signatures/referrers were found and for how many images; null when not asked.
    signatures: plan.signatures ? { ...plan.signatures } : null,
    platforms: plan.platforms.map(formatPlatform),
    images: plan.images.map((i) => ({
      name: formatReference(i.reference),
      repository: repositoryName(i.reference),
      digest: i.reference.digest,
      requestedAs: i.requestedAs,
      tag: i.tag ?? null,
      origin: i.origin,
      component: i.component ?? null,
      subject: i.subject ?? null,
      artifactType: i.artifactType ?? null,
      mediaType: i.mediaType,
      platforms: i.platforms.map(formatPlatform),
      manifests: i.manifests,
      blobs: i.blobs,
    })),
    blobs: plan.blobs.map((b) => ({
      digest: b.digest,
      size: b.size,
      mediaType: b.mediaType,
      role: b.role,
      repositories: b.repositories,
      uncompressedSize: b.uncompressedSize,
      uncompressedEstimated: b.uncompressedEstimated,
    })),
    totals: {
      ...plan.totals,
      dedupRatio: Math.round(dedupRatio(plan) * 1000) / 1000,
      uncompressedEstimated: plan.blobs.some((b) => b.uncompressedEstimated),
      compressedLayerRatio: COMPRESSED_LAYER_RATIO,
    },
    // Added within schemaVersion 1: null unless planned with --since PREV.
    delta: plan.delta
      ? {
          since: plan.delta.since,
          sinceKind: plan.delta.sinceKind,
          bases: plan.delta.bases.map((b) => ({ ...b })),
          newBlobs: plan.delta.newBlobs,
          newBytes: plan.delta.newBytes,
          carriedBlobs: plan.delta.carriedBlobs,
          carriedBytes: plan.delta.carriedBytes,
          baseBlobs: plan.delta.baseBlobs.map((b) => ({ ...b })),
          baseBytes: plan.delta.baseBytes,
        }
      : null,
  };
}
