// The bundle manifest (pin-preload.json, the tar's first entry): built from a plan, serialised into a
// fixed reserved size so later-learned uncompressed sizes never move a byte offset, and parsed back.

import { BUNDLE_FORMAT, BUNDLE_FORMAT_VERSION_2, formatVersionFor, isReadableFormatVersion, READABLE_FORMAT_VERSIONS, type BundleBase, type BundleBlob, type BundleImage, type BundleManifest, type BundleRelease } from './format.js';
import { newestRelease, type BundlePlan } from '../plan/plan.js';
import { formatPlatform } from '../oci/platform.js';
import { formatReference, repositoryName } from '../oci/reference.js';
import { isDigest, type Digest } from '../oci/digest.js';
import { TOOL_VERSION } from '../version.js';
import { UserError } from '../util/errors.js';

/** Bundle manifests larger than this are refused when reading (a 200-image release is ~1 MiB). */
export const MAX_MANIFEST_SIZE = 64 * 1024 * 1024;

export interface UncompressedSize {
  readonly size: number;
  readonly estimated: boolean;
}

/** The manifest for `plan`; `uncompressed` overrides the plan's per-blob figures (learned while downloading). */
export function buildBundleManifest(
  plan: BundlePlan,
  options: { created: string; splitSize?: number; uncompressed?: ReadonlyMap<Digest, UncompressedSize> },
): BundleManifest {
  const images: BundleImage[] = plan.images.map((image) => ({
    name: formatReference({ domain: image.reference.domain, path: image.reference.path, digest: image.reference.digest }),
    repository: repositoryName(image.reference),
    digest: image.reference.digest,
    mediaType: image.mediaType,
    ...(image.tag !== undefined ? { tag: image.tag } : {}),
    origin: image.origin,
    ...(image.component !== undefined ? { component: image.component } : {}),
    ...(image.subject !== undefined ? { subject: image.subject } : {}),
    ...(image.artifactType !== undefined ? { artifactType: image.artifactType } : {}),
    platforms: image.platforms.map(formatPlatform),
    manifests: [...image.manifests],
    blobs: [...image.blobs],
  }));
  const blobs: BundleBlob[] = [...plan.blobs]
    .sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0))
    .map((blob) => {
      const learned = options.uncompressed?.get(blob.digest);
      return {
        digest: blob.digest,
        size: blob.size,
        mediaType: blob.mediaType,
        role: blob.role,
        uncompressedSize: learned?.size ?? blob.uncompressedSize,
        uncompressedEstimated: learned?.estimated ?? blob.uncompressedEstimated,
      };
    });
  const newest = newestRelease(plan.releases);
  // A delta against an inventory that leaves nothing to the node's bundles has no base: it is a full bundle.
  const delta = plan.delta !== undefined && plan.delta.bases.length > 0 ? plan.delta : undefined;
  return {
    format: BUNDLE_FORMAT,
    formatVersion: formatVersionFor(plan.images, delta !== undefined),
    tool: { name: 'pin-preload', version: TOOL_VERSION },
    created: options.created,
    ...(newest ? { release: { name: formatReference(newest.reference), digest: newest.reference.digest, version: newest.version } } : {}),
    ...(plan.releases.length > 0
      ? {
          releases: plan.releases.map((r) => ({
            name: formatReference(r.reference),
            digest: r.reference.digest,
            version: r.version,
            ...(r.channel !== undefined ? { channel: r.channel } : {}),
            components: r.components.map((c) => ({ name: c.name, image: formatReference(c.reference) })),
            ...(r.signatures !== undefined ? { signatures: r.signatures.map((sig) => ({ digest: sig.digest, size: sig.bytes.length, base64: sig.bytes.toString('base64') })) } : {}),
          })),
        }
      : {}),
    platforms: plan.platforms.map(formatPlatform),
    images,
    blobs,
    ...(delta
      ? {
          bases: delta.bases.map((b) => ({ name: b.name, manifestDigest: b.manifestDigest })),
          baseBlobs: delta.baseBlobs.map((b) => b.digest).sort(),
        }
      : {}),
    ...(options.splitSize !== undefined ? { splitSize: options.splitSize } : {}),
  };
}

/** A delta's bases (empty for a full bundle). */
export function bundleBases(manifest: BundleManifest): readonly BundleBase[] {
  return manifest.bases ?? [];
}

/** A bundle as a delta chain sees it: its manifest digest and the bases it needs (none for a full bundle). */
export interface ChainLink {
  readonly manifestDigest: string;
  readonly bases: readonly BundleBase[];
}

/**
 * The delta-chain rule, the one place it is written: the bases that `bases` needs and `present` lacks,
 * following chains (a present base that is itself a delta needs its own bases), each once, in walk order.
 * Empty when the chain is whole: the node's import and sync and the mirror's index all decide by it.
 */
export function missingFromChain(bases: readonly BundleBase[], present: readonly ChainLink[]): BundleBase[] {
  const byDigest = new Map(present.map((link) => [link.manifestDigest, link]));
  const missing: BundleBase[] = [];
  const seen = new Set<string>();
  const walk = (needed: readonly BundleBase[]) => {
    for (const base of needed) {
      if (seen.has(base.manifestDigest)) continue;
      seen.add(base.manifestDigest);
      const found = byDigest.get(base.manifestDigest);
      if (found) walk(found.bases);
      else missing.push(base);
    }
  };
  walk(bases);
  return missing;
}

/** The images a node pins and a cluster's PinnedImageSets name: all but the signatures and referrers carried with them. */
export function pinnableImages(manifest: Pick<BundleManifest, 'images'>): readonly BundleImage[] {
  return manifest.images.filter((image) => image.origin !== 'signature');
}

/** A bundle's releases: `releases` when written, else the single `release` of older bundles (no component list). */
export function bundleReleases(manifest: BundleManifest): readonly BundleRelease[] {
  if (manifest.releases) return manifest.releases;
  return manifest.release ? [{ ...manifest.release, components: [] }] : [];
}

function serialize(manifest: BundleManifest): string {
  return `${JSON.stringify(manifest, null, 2)}\n`;
}

/**
 * Bytes the manifest entry gets in the tar: its size with every uncompressed size at its widest (16 digits,
 * `false`), so any figure learned later still fits and the layout is fixed by the plan alone.
 */
export function reservedManifestSize(manifest: BundleManifest): number {
  const widest: BundleManifest = {
    ...manifest,
    blobs: manifest.blobs.map((b) => ({ ...b, uncompressedSize: Number.MAX_SAFE_INTEGER, uncompressedEstimated: false })),
  };
  return Buffer.byteLength(serialize(widest), 'utf8');
}

/** The manifest's bytes padded with trailing spaces (valid JSON whitespace) to exactly `reservedSize`. */
export function serializeManifest(manifest: BundleManifest, reservedSize: number): Buffer {
  const text = serialize(manifest);
  const length = Buffer.byteLength(text, 'utf8');
  if (length > reservedSize) throw new Error(`bundle manifest (${length} bytes) exceeds its reserved ${reservedSize} bytes`);
  return Buffer.from(text + ' '.repeat(reservedSize - length), 'utf8');
}

function invalid(where: string, why: string): UserError {
  return new UserError('BUNDLE_MANIFEST_INVALID', `${where}: invalid bundle manifest (pin-preload.json): ${why}`, {
    subject: { kind: 'path', name: where },
  });
}

function digestList(v: unknown, where: string, what: string): Digest[] {
  if (!Array.isArray(v) || !v.every((d) => typeof d === 'string' && isDigest(d))) throw invalid(where, `${what} must be a list of digests`);
  return v as Digest[];
}

/** Parses pin-preload.json, checking the format version and the shape of every image and blob. */
export function parseBundleManifest(bytes: Buffer, where: string): BundleManifest {
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
  } catch (err) {
    throw invalid(where, `not JSON (${(err as Error).message})`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw invalid(where, 'not a JSON object');
  if (doc.format !== BUNDLE_FORMAT) throw invalid(where, `format is ${JSON.stringify(doc.format)}, expected "${BUNDLE_FORMAT}"`);
  if (!isReadableFormatVersion(doc.formatVersion)) {
    throw new UserError('BUNDLE_FORMAT_UNSUPPORTED', `${where}: bundle format version ${String(doc.formatVersion)} is not supported (this pin-preload reads versions ${READABLE_FORMAT_VERSIONS.join(', ')})`, {
      subject: { kind: 'path', name: where },
    });
  }
  if (!Array.isArray(doc.images)) throw invalid(where, 'images must be a list');
  if (!Array.isArray(doc.blobs)) throw invalid(where, 'blobs must be a list');
  doc.blobs.forEach((b: unknown, i) => {
    const blob = (b ?? {}) as Record<string, unknown>;
    if (typeof blob.digest !== 'string' || !isDigest(blob.digest)) throw invalid(where, `blob ${i + 1} has a bad digest`);
    if (typeof blob.size !== 'number' || !Number.isSafeInteger(blob.size) || blob.size < 0) throw invalid(where, `blob ${blob.digest} has a bad size`);
    if (blob.role !== 'manifest' && blob.role !== 'config' && blob.role !== 'layer') throw invalid(where, `blob ${blob.digest} has a bad role`);
  });
  doc.images.forEach((im: unknown, i) => {
    const image = (im ?? {}) as Record<string, unknown>;
    if (typeof image.name !== 'string' || typeof image.repository !== 'string') throw invalid(where, `image ${i + 1} has no name or repository`);
    if (typeof image.digest !== 'string' || !isDigest(image.digest)) throw invalid(where, `image ${image.name} has a bad digest`);
    digestList(image.manifests, where, `image ${image.name}: manifests`);
    digestList(image.blobs, where, `image ${image.name}: blobs`);
    if (image.origin === 'signature' && (typeof image.subject !== 'string' || !isDigest(image.subject))) throw invalid(where, `signature ${image.name} has no subject digest`);
  });
  if (doc.releases !== undefined) {
    if (!Array.isArray(doc.releases)) throw invalid(where, 'releases must be a list');
    doc.releases.forEach((r: unknown, i) => {
      const release = (r ?? {}) as Record<string, unknown>;
      if (typeof release.name !== 'string' || typeof release.version !== 'string') throw invalid(where, `release ${i + 1} has no name or version`);
      if (typeof release.digest !== 'string' || !isDigest(release.digest)) throw invalid(where, `release ${release.name} has a bad digest`);
      const components = release.components;
      if (!Array.isArray(components) || !components.every((c) => typeof c?.name === 'string' && typeof c?.image === 'string')) throw invalid(where, `release ${release.name}: components must be a list of {name, image}`);
      const signatures = release.signatures;
      const signatureShape = (sig: { digest?: unknown; size?: unknown; base64?: unknown } | null) => typeof sig?.digest === 'string' && isDigest(sig.digest) && Number.isSafeInteger(sig.size) && typeof sig.base64 === 'string';
      if (signatures !== undefined && (!Array.isArray(signatures) || !signatures.every(signatureShape))) throw invalid(where, `release ${release.name}: signatures must be a list of {digest, size, base64}`);
    });
  }
  // Version 2 is what keeps a version-1 reader away from these two (format.ts, BUNDLE_FORMAT_VERSION_2).
  if (doc.bases !== undefined && doc.formatVersion !== BUNDLE_FORMAT_VERSION_2) throw invalid(where, 'bases needs format version 2');
  if (doc.formatVersion !== BUNDLE_FORMAT_VERSION_2 && doc.images.some((i: { origin?: unknown } | null) => i?.origin === 'signature')) throw invalid(where, 'signatures need format version 2');
  if (doc.bases !== undefined) {
    if (!Array.isArray(doc.bases) || doc.bases.length === 0) throw invalid(where, 'bases must be a non-empty list');
    doc.bases.forEach((b: unknown, i) => {
      const base = (b ?? {}) as Record<string, unknown>;
      if (typeof base.name !== 'string' || typeof base.manifestDigest !== 'string' || !isDigest(base.manifestDigest)) throw invalid(where, `base ${i + 1} needs a name and a manifestDigest`);
    });
    digestList(doc.baseBlobs ?? [], where, 'baseBlobs');
  } else if (doc.baseBlobs !== undefined) throw invalid(where, 'baseBlobs needs bases');
  if (typeof doc.created !== 'string') throw invalid(where, 'created must be a string');
  return doc as unknown as BundleManifest;
}
