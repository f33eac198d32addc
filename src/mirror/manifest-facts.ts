// What the mirror needs to know about a stored manifest beyond its bytes, computed once at indexing:
// the referrer descriptor (when it has a subject) and, for Docker manifest lists, the linux/amd64 child.

import type { Digest } from '../oci/digest.js';
import { ManifestError, parseManifest, type Descriptor } from '../oci/manifest.js';
import { DEFAULT_PLATFORM, platformMatches } from '../oci/platform.js';
import type { ReferrerRecord } from './store.js';

export interface ManifestFacts {
  readonly referrer?: ReferrerRecord;
  /** For an index: the child for linux/amd64 (what a client that does not accept lists gets). */
  readonly defaultChild?: Digest;
}

/** The facts of a manifest; one we cannot parse (an unusual artifact) has none and is still served as stored. */
export function manifestFacts(bytes: Buffer, digest: Digest, mediaType: string, where: string): ManifestFacts {
  let manifest;
  try {
    manifest = parseManifest(bytes, mediaType, where);
  } catch (err) {
    if (err instanceof ManifestError) return {};
    throw err;
  }
  let referrer: ReferrerRecord | undefined;
  if (manifest.subject) {
    const artifactType = manifest.artifactType ?? (manifest.kind === 'image' ? manifest.config.mediaType : undefined);
    const descriptor: Descriptor = {
      mediaType,
      digest,
      size: bytes.length,
      ...(artifactType !== undefined ? { artifactType } : {}),
      ...(manifest.annotations !== undefined ? { annotations: manifest.annotations } : {}),
    };
    referrer = { subject: manifest.subject.digest, descriptor };
  }
  const child = manifest.kind === 'index' ? manifest.manifests.find((m) => m.platform && platformMatches(DEFAULT_PLATFORM, m.platform)) : undefined;
  return { ...(referrer ? { referrer } : {}), ...(child ? { defaultChild: child.digest } : {}) };
}
