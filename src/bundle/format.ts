// Bundle format v1, the thing that crosses the air gap (docs/bundle-format.md is the prose version).
//
// A bundle is one tar stream, optionally split into volumes ("NAME.001", "NAME.002", … whose
// concatenation is the tar). The tar is at the same time an OCI image layout, so skopeo reads it as
// `oci-archive:`. Entry order is fixed: pin-preload.json (this BundleManifest), oci-layout, index.json,
// the directories blobs/ and blobs/sha256/, then blobs/sha256/<hex> sorted by role (manifests, configs,
// layers) and then by digest; every mtime, uid and gid is 0, so the same plan gives the same bytes.
//
// The volumes' sizes and sha256 cannot be inside the tar they hash, so they live in the seal, a small
// JSON file next to the volumes ("NAME.seal.json") that also pins the manifest by digest; the detached
// signature ("NAME.sig") is over the seal's exact bytes, and so covers the manifest and every blob.

import { digestHex, isDigest, type Digest } from '../oci/digest.js';

export const BUNDLE_FORMAT = 'pin-preload.bundle';
/** The version of a bundle without signatures: what every reader since format 1 reads. */
export const BUNDLE_FORMAT_VERSION = 1;
/**
 * Version 2: a bundle that a reader of version 1 only must refuse (it does, naming the version) — a delta
 * (with `bases`: its images need blobs it does not hold, so that reader would serve images with missing
 * layers), or one carrying signatures or referrers (images of origin "signature", which that reader would
 * take for images to pin). Every other bundle stays version 1, byte for byte, so older readers keep reading it.
 */
export const BUNDLE_FORMAT_VERSION_2 = 2;
export type BundleFormatVersion = typeof BUNDLE_FORMAT_VERSION | typeof BUNDLE_FORMAT_VERSION_2;
export const READABLE_FORMAT_VERSIONS: readonly BundleFormatVersion[] = [BUNDLE_FORMAT_VERSION, BUNDLE_FORMAT_VERSION_2];

/** The version a bundle is written as: 2 only for a delta or when it carries signatures. */
export function formatVersionFor(images: ReadonlyArray<{ readonly origin: string }>, delta: boolean): BundleFormatVersion {
  return delta || images.some((i) => i.origin === 'signature') ? BUNDLE_FORMAT_VERSION_2 : BUNDLE_FORMAT_VERSION;
}

export function isReadableFormatVersion(version: unknown): version is BundleFormatVersion {
  return READABLE_FORMAT_VERSIONS.includes(version as BundleFormatVersion);
}
export const MANIFEST_ENTRY = 'pin-preload.json';
export const SEAL_SUFFIX = '.seal.json';

/** The bundle (its tar's path) that the seal at `sealPath` seals. */
export function sealedBundlePath(sealPath: string): string {
  return sealPath.endsWith(SEAL_SUFFIX) ? sealPath.slice(0, -SEAL_SUFFIX.length) : sealPath;
}
export const SIGNATURE_SUFFIX = '.sig';
/**
 * In a node's bundle dir, `.NAME.importing` stands next to NAME's files while `import` renames them into place
 * (volumes, signature, seal last): an unsealed NAME there is not a bundle yet; a dead import's claim tells the
 * next import which files to remove.
 */
export const importClaimName = (name: string): string => `.${name}.importing`;
/** Blob entries are named as in an OCI image layout: blobs/sha256/<hex>. */
export const BLOB_ENTRY_PREFIX = 'blobs/sha256/';
export const blobEntryName = (digest: Digest): string => `${BLOB_ENTRY_PREFIX}${digestHex(digest)}`;
/** The digest a blob entry's name claims; unchecked, as a damaged tar may name anything (isDigest tells). */
export const blobEntryDigest = (name: string): string => `sha256:${name.slice(BLOB_ENTRY_PREFIX.length)}`;
/**
 * A tar entry as errors name it: a blob by its digest ("blob sha256:…"), the others by their file name — among
 * them the directory blobs/sha256/ itself and, in a damaged tar, a name under it that is no digest.
 */
export function describeEntry(name: string): string {
  const digest = name.startsWith(BLOB_ENTRY_PREFIX) ? blobEntryDigest(name) : undefined;
  return digest !== undefined && isDigest(digest) ? `blob ${digest}` : name;
}
/** Volume names carry three digits (NAME.001 … NAME.999). */
export const MAX_VOLUMES = 999;

export interface BundleImage {
  /** Source reference by digest: "quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:…". */
  readonly name: string;
  /** "quay.io/openshift-release-dev/ocp-v4.0-art-dev" */
  readonly repository: string;
  readonly digest: Digest;
  readonly mediaType: string;
  /** The tag it was resolved from, served by the mirror under that tag. */
  readonly tag?: string;
  /** "signature": a signature or referrer of the image `subject` names (format version 2), served, never pinned. */
  readonly origin: 'release' | 'component' | 'extra' | 'signature';
  readonly component?: string;
  /** For origin "signature": the digest of the image (in the same repository) it signs or refers to. */
  readonly subject?: Digest;
  /** For origin "signature": the artifact's artifactType, when it declares one. */
  readonly artifactType?: string;
  /** "linux/amd64", … */
  readonly platforms: readonly string[];
  /** Every manifest of the image, top first. */
  readonly manifests: readonly Digest[];
  /** Every config and layer blob of the image. */
  readonly blobs: readonly Digest[];
}

export interface BundleBlob {
  readonly digest: Digest;
  readonly size: number;
  readonly mediaType: string;
  readonly role: 'manifest' | 'config' | 'layer';
  readonly uncompressedSize: number;
  readonly uncompressedEstimated: boolean;
}

/** One release of a bundle: its payload and the component images it names (written since pin-preload 0.1 day 2). */
export interface BundleRelease {
  /** Payload by digest: "quay.io/openshift-release-dev/ocp-release@sha256:…". */
  readonly name: string;
  readonly digest: Digest;
  readonly version: string;
  /** The channel it was chosen from, when bundled by --channel or an ImageSetConfiguration. */
  readonly channel?: string;
  /** image-references tag name → image by digest (an entry of `images`); blocked components left out. */
  readonly components: ReadonlyArray<{ readonly name: string; readonly image: string }>;
  /** Its release signatures (signature-1 first), bytes inline; absent unless bundled with --signature-store. */
  readonly signatures?: ReadonlyArray<{ readonly digest: Digest; readonly size: number; readonly base64: string }>;
}

/** A bundle a delta needs beside it: identified by its manifest digest (what its seal pins), named for people. */
export interface BundleBase {
  /** The base's file name (the tar, or the split volumes' common name), e.g. "ocp-4.16.3.tar". */
  readonly name: string;
  /** sha256 of the base's pin-preload.json entry, as its seal's manifestDigest says. */
  readonly manifestDigest: Digest;
}

export interface BundleManifest {
  readonly format: typeof BUNDLE_FORMAT;
  /** 1, or 2 for a delta or a bundle carrying signatures (see BUNDLE_FORMAT_VERSION_2). */
  readonly formatVersion: BundleFormatVersion;
  readonly tool: { readonly name: 'pin-preload'; readonly version: string };
  /** RFC 3339; from SOURCE_DATE_EPOCH when set, so that rebuilds are byte-identical. */
  readonly created: string;
  /** The bundle's newest release (the highest version among `releases`, the later one on a tie), kept for readers that know only one. */
  readonly release?: { readonly name: string; readonly digest: Digest; readonly version: string };
  /** Every release, oldest first along a channel's path; absent in bundles written before it existed. */
  readonly releases?: readonly BundleRelease[];
  readonly platforms: readonly string[];
  readonly images: readonly BundleImage[];
  /** Sorted by digest; each stored once in the tar. */
  readonly blobs: readonly BundleBlob[];
  /**
   * A delta bundle's bases (`bundle create --since`): the bundles that hold `baseBlobs`. Present, and
   * non-empty, exactly when formatVersion is 2. A base may itself be a delta (a chain).
   */
  readonly bases?: readonly BundleBase[];
  /** Blobs the images need that this bundle leaves to its bases (layers only: manifests and configs are always carried), sorted by digest. */
  readonly baseBlobs?: readonly Digest[];
  /**
   * Reserved. pin-preload writes leave it out, so that a split bundle's volumes concatenate to exactly the
   * unsplit tar; the volumes and their sizes are in the seal.
   */
  readonly splitSize?: number;
}

export interface SealVolume {
  /** File name only (no directory): volumes are found next to the seal. */
  readonly name: string;
  readonly size: number;
  readonly sha256: string;
}

export interface BundleSeal {
  readonly format: typeof BUNDLE_FORMAT;
  readonly formatVersion: BundleFormatVersion;
  /** sha256 of the exact bytes of the pin-preload.json entry. */
  readonly manifestDigest: Digest;
  readonly totalSize: number;
  readonly volumes: readonly SealVolume[];
}
