// Resolves a release pullspec (by tag or digest, single-arch or a manifest list) to its digest, version
// and component images, reading the payload's image-references for the wanted platform.

import type { Digest } from '../oci/digest.js';
import { parseManifest, type ImageIndex, type ImageManifest, type PlatformDescriptor } from '../oci/manifest.js';
import { DEFAULT_PLATFORM, formatPlatform, platformMatches, type Platform } from '../oci/platform.js';
import { digestReference, formatReference, type DigestReference, type Reference } from '../oci/reference.js';
import type { FetchedManifest, ImageSource } from '../registry/source.js';
import { UserError } from '../util/errors.js';
import { parseImageReferences, type ReleaseComponent } from './image-stream.js';
import { readPayloadFiles } from './payload.js';
import { parseReleaseMetadata } from './release-metadata.js';

export interface ResolvedRelease {
  /** What was asked for, by digest: the manifest list's digest when the release is multi-arch. */
  readonly reference: DigestReference;
  readonly requestedAs: string;
  readonly tag?: string;
  /** The top manifest as fetched (exact bytes). */
  readonly manifest: FetchedManifest;
  /** The per-platform payload whose files were read: the top manifest itself for a single-arch release. */
  readonly payload: { readonly digest: Digest; readonly platform?: Platform; readonly manifest: ImageManifest };
  readonly version: string;
  readonly previous: readonly string[];
  readonly metadata: Readonly<Record<string, string>>;
  readonly components: readonly ReleaseComponent[];
}

/** Entries of an index that are images, not attestations or other artifacts (BuildKit marks those unknown/unknown). */
export function runnableChildren(index: ImageIndex): PlatformDescriptor[] {
  return index.manifests.filter((m) => !(m.platform?.os === 'unknown' && m.platform.architecture === 'unknown'));
}

/**
 * The index entry for `platform`, as oc chooses it: a single-entry list is always taken; otherwise the
 * first entry whose platform matches. `where` names the image in the error.
 */
export function selectChild(index: ImageIndex, platform: Platform, where: string): PlatformDescriptor {
  if (index.manifests.length === 1) return index.manifests[0]!;
  const match = index.manifests.find((m) => m.platform !== undefined && platformMatches(platform, m.platform));
  if (match) return match;
  const available = runnableChildren(index).map((m) => (m.platform ? formatPlatform(m.platform) : 'unknown'));
  throw new UserError('PLATFORM_NOT_FOUND', `${where}: no matching image found in manifest list for ${formatPlatform(platform)}: available ${available.join(', ') || 'none'}`, {
  });
}

export async function resolveRelease(source: ImageSource, ref: Reference, options: { platform?: Platform } = {}): Promise<ResolvedRelease> {
  const requestedAs = formatReference(ref);
  const top = await source.getManifest(ref);
  const parsed = parseManifest(top.bytes, top.mediaType, `release image ${requestedAs}`);
  let payload: ResolvedRelease['payload'];
  if (parsed.kind === 'index') {
    const child = selectChild(parsed, options.platform ?? DEFAULT_PLATFORM, `release image ${requestedAs}`);
    const childRef = digestReference(ref, child.digest);
    const fetched = await source.getManifest(childRef);
    const childManifest = parseManifest(fetched.bytes, fetched.mediaType, `release image ${formatReference(childRef)}`);
    if (childManifest.kind !== 'image') {
      throw new UserError('RELEASE_NESTED_INDEX', `release image ${requestedAs}: the manifest list entry ${child.digest} is itself a manifest list`, { subject: { kind: 'image', name: requestedAs } });
    }
    payload = { digest: child.digest, ...(child.platform ? { platform: child.platform } : {}), manifest: childManifest };
  } else {
    payload = { digest: top.digest, manifest: parsed };
  }
  const files = await readPayloadFiles(source, ref, payload.manifest, requestedAs);
  const stream = parseImageReferences(files.imageReferences, requestedAs);
  const metadata = files.releaseMetadata ? parseReleaseMetadata(files.releaseMetadata, requestedAs) : undefined;
  return {
    reference: digestReference(ref, top.digest),
    requestedAs,
    ...(ref.tag !== undefined ? { tag: ref.tag } : {}),
    manifest: top,
    payload,
    // oc takes the version from the ImageStream's name; release-metadata is optional.
    version: stream.version || metadata?.version || '',
    previous: metadata?.previous ?? [],
    metadata: metadata?.metadata ?? {},
    components: stream.components,
  };
}
