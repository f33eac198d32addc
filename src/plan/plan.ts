// A bundle plan: every image of a selection resolved to digests, with every blob it needs, deduplicated.
// `bundle plan` prints it; `bundle create` downloads exactly it. Built by resolve.ts.

import type { Digest } from '../oci/digest.js';
import type { DigestReference } from '../oci/reference.js';
import type { Platform } from '../oci/platform.js';
import { compareVersions } from '../release/update-graph.js';
import type { ReleaseSignature } from '../release/release-signature.js';

/** Manifest fetches in flight at once when planning. */
export const DEFAULT_CONCURRENCY = 16;

/**
 * Compressed layers' uncompressed size is estimated as 3 × their size. Container layers of binaries and
 * RPM content typically inflate 2–4× under gzip or zstd; we take the high side on purpose, since the
 * estimate feeds free-space checks where running out is worse than over-asking (the MCO uses 2×
 * compressed size for the same purpose). Uncompressed tar layers and JSON blobs are exact.
 */
export const COMPRESSED_LAYER_RATIO = 3;

/** "signature": a signature or referrer of another image (its `subject`), carried with --signatures, never pinned. */
export type ImageOrigin = 'release' | 'component' | 'extra' | 'signature';

export interface PlannedImage {
  /** The source reference by digest, e.g. quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:… */
  readonly reference: DigestReference;
  /** How the user (or the release) named it, e.g. "quay.io/…/ocp-release:4.16.3-x86_64" or the digest form. */
  readonly requestedAs: string;
  /** The tag the image was resolved from, if any; bundles keep it so the mirror can serve it by tag. */
  readonly tag?: string;
  readonly origin: ImageOrigin;
  /** The release component (image-references tag name), for origin "component". */
  readonly component?: string;
  /** For origin "signature": the digest of the image it signs or refers to. */
  readonly subject?: Digest;
  /** For origin "signature": the artifact's declared artifactType, if any. */
  readonly artifactType?: string;
  /** Media type of the top manifest (an index for multi-arch images). */
  readonly mediaType: string;
  /** Platforms whose manifests are included (for an index: the selected children only). */
  readonly platforms: readonly Platform[];
  /** Digests of every manifest of this image: the top one first, then the selected children. */
  readonly manifests: readonly Digest[];
  /** Digests of every config and layer blob of this image, in manifest order, repeats removed. */
  readonly blobs: readonly Digest[];
}

export type BlobRole = 'manifest' | 'config' | 'layer';

export interface PlannedBlob {
  readonly digest: Digest;
  readonly size: number;
  readonly mediaType: string;
  readonly role: BlobRole;
  /** Repositories (domain/path) that reference it; it is fetched from the first one. */
  readonly repositories: readonly string[];
  /** For manifests only: the exact bytes already fetched at plan time (small; never layer data). */
  readonly bytes?: Buffer;
  /** Uncompressed size: exact for uncompressed layers and JSON, otherwise an estimate (see `estimated`). */
  readonly uncompressedSize: number;
  readonly uncompressedEstimated: boolean;
}

export interface PlannedRelease {
  readonly reference: DigestReference;
  readonly requestedAs: string;
  readonly version: string;
  readonly previous?: readonly string[];
  readonly componentCount: number;
  /** Its component images (image-references tag name → image by digest), blocked ones left out. */
  readonly components: ReadonlyArray<{ readonly name: string; readonly reference: DigestReference }>;
  /** The channel it was chosen from, if any. */
  readonly channel?: string;
  /** Its signatures from --signature-store (signature-1, -2, …), checked; absent when no store was given. */
  readonly signatures?: readonly ReleaseSignature[];
}

/** A channel request as resolved through the update graph (`plan` shows the path). */
export interface PlannedChannel {
  readonly name: string;
  readonly arch: string;
  readonly graphUrl: string;
  /** 'version': one release; 'shortest-path': the update path min → … → max; 'range': every release in between. */
  readonly mode: 'version' | 'shortest-path' | 'range';
  readonly minVersion: string;
  readonly maxVersion: string;
  /** Oldest first. */
  readonly versions: readonly string[];
}

/** An image left out because an ImageSetConfiguration blockedImages entry matched it. */
export interface BlockedPlanImage {
  readonly requestedAs: string;
  readonly pattern: string;
  readonly patternOrigin: string;
}

export interface BundlePlan {
  /** Every release bundled, in selection order (channel paths oldest first); blobs shared across them once. */
  readonly releases: readonly PlannedRelease[];
  readonly channels: readonly PlannedChannel[];
  readonly blocked: readonly BlockedPlanImage[];
  readonly platforms: readonly Platform[];
  readonly images: readonly PlannedImage[];
  /** With --signatures: how many signatures and referrers (images of origin "signature") were found, for how many images. */
  readonly signatures?: { readonly artifacts: number; readonly subjects: number };
  /** Unique blobs (manifests, configs, layers) sorted by digest. */
  readonly blobs: readonly PlannedBlob[];
  readonly totals: {
    readonly images: number;
    readonly uniqueBlobs: number;
    readonly uniqueBytes: number;
    /** Bytes if every image were stored on its own (blobs counted once per image that uses them). */
    readonly bytesWithRepeats: number;
    readonly uncompressedBytes: number;
  };
  /** Set for a delta (`--since PREV`, see delta.ts): what the bundle leaves to PREV's bundles. */
  readonly delta?: PlannedDelta;
}

/** What a delta plan leaves out and why (`bundle plan|create --since PREV`). */
export interface PlannedDelta {
  /** PREV as given on the command line. */
  readonly since: string;
  readonly sinceKind: 'bundle' | 'inventory';
  /** The bundles the delta needs beside it (recorded in its manifest as `bases`). */
  readonly bases: ReadonlyArray<{ readonly name: string; readonly manifestDigest: Digest }>;
  /** Layers the images need that PREV has: left out of `blobs`, recorded as `baseBlobs`. */
  readonly baseBlobs: ReadonlyArray<{ readonly digest: Digest; readonly size: number }>;
  /** Blobs PREV lacks (in `blobs`). */
  readonly newBlobs: number;
  readonly newBytes: number;
  /** Manifests and configs PREV has but the delta carries anyway, so its index is complete (in `blobs`). */
  readonly carriedBlobs: number;
  readonly carriedBytes: number;
  /** Bytes of `baseBlobs`: what the delta saves. */
  readonly baseBytes: number;
}

/** The newest of several releases by version (the one a cluster updates to); the later one when versions tie. */
export function newestRelease<R extends { readonly version: string }>(releases: readonly R[]): R | undefined {
  return releases.reduce<R | undefined>((best, r) => (best === undefined || compareVersions(r.version, best.version) >= 0 ? r : best), undefined);
}
