// Image manifests and indexes (OCI and Docker schema2) parsed from their exact bytes into typed values.
// The bytes stay the source of truth: digests are over them, and they are stored and served unchanged.

import { digestProblem, type Digest } from './digest.js';
import { isImageManifestMediaType, isIndexMediaType, type ManifestMediaType } from './media-types.js';
import type { Platform } from './platform.js';

export interface Descriptor {
  readonly mediaType: string;
  readonly digest: Digest;
  readonly size: number;
  readonly annotations?: Readonly<Record<string, string>>;
  readonly artifactType?: string;
}

export interface PlatformDescriptor extends Descriptor {
  readonly platform?: Platform;
}

export interface ImageManifest {
  readonly kind: 'image';
  readonly mediaType: ManifestMediaType;
  readonly config: Descriptor;
  readonly layers: readonly Descriptor[];
  readonly subject?: Descriptor;
  readonly artifactType?: string;
  readonly annotations?: Readonly<Record<string, string>>;
}

export interface ImageIndex {
  readonly kind: 'index';
  readonly mediaType: ManifestMediaType;
  readonly manifests: readonly PlatformDescriptor[];
  readonly subject?: Descriptor;
  readonly artifactType?: string;
  readonly annotations?: Readonly<Record<string, string>>;
}

export type Manifest = ImageManifest | ImageIndex;

export class ManifestError extends Error {
  readonly code = 'MANIFEST_INVALID';
  constructor(readonly where: string, why: string) {
    super(`${where}: invalid manifest: ${why}`);
    this.name = 'ManifestError';
  }
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function stringMap(v: unknown): Record<string, string> | undefined {
  if (!isObject(v)) return undefined;
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) if (typeof val === 'string') out[k] = val;
  return out;
}

function parseDescriptor(v: unknown, where: string): PlatformDescriptor {
  if (!isObject(v)) throw new ManifestError(where, 'descriptor is not an object');
  const { mediaType, digest, size } = v;
  if (typeof mediaType !== 'string' || mediaType === '') throw new ManifestError(where, 'descriptor without mediaType');
  if (typeof digest !== 'string' || digestProblem(digest)) throw new ManifestError(where, `descriptor with bad digest ${JSON.stringify(digest)}`);
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw new ManifestError(where, `descriptor ${digest} with bad size`);
  const out: { -readonly [K in keyof PlatformDescriptor]: PlatformDescriptor[K] } = { mediaType, digest: digest as Digest, size };
  const annotations = stringMap(v.annotations);
  if (annotations) out.annotations = annotations;
  if (typeof v.artifactType === 'string') out.artifactType = v.artifactType;
  if (isObject(v.platform) && typeof v.platform.os === 'string' && typeof v.platform.architecture === 'string') {
    out.platform = {
      os: v.platform.os,
      architecture: v.platform.architecture,
      ...(typeof v.platform.variant === 'string' && v.platform.variant !== '' ? { variant: v.platform.variant } : {}),
    };
  }
  return out;
}

/**
 * Parses manifest bytes. `contentType` is what the registry (or the bundle) said; when absent or generic,
 * the document's own mediaType field decides, and a document with `manifests` is an index.
 */
export function parseManifest(bytes: Uint8Array, contentType: string | undefined, where: string): Manifest {
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    throw new ManifestError(where, 'not JSON');
  }
  if (!isObject(doc)) throw new ManifestError(where, 'not a JSON object');
  if (doc.schemaVersion !== 2) throw new ManifestError(where, `unsupported schemaVersion ${JSON.stringify(doc.schemaVersion)} (only schema 2 manifests are supported)`);
  const declared = typeof doc.mediaType === 'string' ? doc.mediaType : undefined;
  let mediaType = contentType && (isIndexMediaType(contentType) || isImageManifestMediaType(contentType)) ? contentType : declared;
  if (mediaType === undefined) mediaType = Array.isArray(doc.manifests) ? 'application/vnd.oci.image.index.v1+json' : 'application/vnd.oci.image.manifest.v1+json';
  const common = {
    mediaType: mediaType as ManifestMediaType,
    ...(doc.subject !== undefined ? { subject: parseDescriptor(doc.subject, where) } : {}),
    ...(typeof doc.artifactType === 'string' ? { artifactType: doc.artifactType } : {}),
    ...(stringMap(doc.annotations) ? { annotations: stringMap(doc.annotations)! } : {}),
  };
  if (isIndexMediaType(mediaType)) {
    if (!Array.isArray(doc.manifests)) throw new ManifestError(where, 'index without a manifests array');
    return { kind: 'index', ...common, manifests: doc.manifests.map((d) => parseDescriptor(d, where)) };
  }
  if (isImageManifestMediaType(mediaType)) {
    if (!Array.isArray(doc.layers)) throw new ManifestError(where, 'image manifest without a layers array');
    return { kind: 'image', ...common, config: parseDescriptor(doc.config, where), layers: doc.layers.map((d) => parseDescriptor(d, where)) };
  }
  throw new ManifestError(where, `unsupported media type "${mediaType}"`);
}

/** Every blob (config and layers) an image manifest references. */
export function referencedBlobs(manifest: ImageManifest): Descriptor[] {
  return [manifest.config, ...manifest.layers];
}
