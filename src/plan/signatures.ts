// Finds what signs or describes each planned image (bundle create --signatures): cosign's signature under
// the `sha256-<hex>.sig` tag, and OCI 1.1 referrers through the referrers API or, where a registry answers
// 404 for that API, its `sha256-<hex>` fallback tag. None is normal; any other registry error names the image.

import type { Digest } from '../oci/digest.js';
import { ManifestError, parseManifest, type Descriptor } from '../oci/manifest.js';
import { cosignSignatureTag, referrersFallbackTag } from '../oci/referrers.js';
import { digestReference, formatReference, type Reference, type Repository } from '../oci/reference.js';
import type { FetchedManifest } from '../registry/source.js';
import { UserError } from '../util/errors.js';
import type { ManifestCache } from './manifest-cache.js';
import type { PlannedImage } from './plan.js';
import { imageBlobUses, type BlobUse, type ResolvedImage } from './resolve.js';

/** The manifest a tag names, or undefined when the registry answers 404 for it. */
async function manifestIfAny(source: ManifestCache, ref: Reference): Promise<FetchedManifest | undefined> {
  try {
    return await source.getManifest(ref);
  } catch (err) {
    if (err instanceof UserError && err.code === 'MANIFEST_UNKNOWN') return undefined;
    throw err;
  }
}

/**
 * One carried artifact: its top manifest (an image manifest, or the fallback tag's index) and, for an index,
 * every child whatever its platform (artifacts have none), each with its config and layers.
 */
async function resolveArtifact(source: ManifestCache, repo: Repository, top: FetchedManifest, subject: Digest, tag: string | undefined, where: string): Promise<ResolvedImage> {
  const parsed = parseManifest(top.bytes, top.mediaType, where);
  const uses: BlobUse[] = [{ descriptor: { mediaType: top.mediaType, digest: top.digest, size: top.bytes.length }, role: 'manifest', bytes: top.bytes }];
  const manifests: Digest[] = [top.digest];
  if (parsed.kind === 'image') uses.push(...imageBlobUses(parsed));
  else {
    const children = parsed.manifests.filter((c, i) => parsed.manifests.findIndex((d) => d.digest === c.digest) === i);
    const fetched = await Promise.all(children.map((child) => source.getManifest(digestReference(repo, child.digest))));
    for (const child of fetched) {
      const manifest = parseManifest(child.bytes, child.mediaType, `${where} (${child.digest})`);
      // A referrer that is itself an index is carried as its top manifest only; its own children are not followed.
      manifests.push(child.digest);
      uses.push({ descriptor: { mediaType: child.mediaType, digest: child.digest, size: child.bytes.length }, role: 'manifest', bytes: child.bytes });
      if (manifest.kind === 'image') uses.push(...imageBlobUses(manifest));
    }
  }
  const reference = digestReference(repo, top.digest);
  const image: PlannedImage = {
    reference,
    requestedAs: tag !== undefined ? formatReference({ ...repo, tag }) : formatReference(reference),
    ...(tag !== undefined ? { tag } : {}),
    origin: 'signature',
    subject,
    ...(parsed.artifactType !== undefined ? { artifactType: parsed.artifactType } : {}),
    mediaType: top.mediaType,
    platforms: [],
    manifests,
    blobs: [...new Set(uses.filter((u) => u.role !== 'manifest').map((u) => u.descriptor.digest))],
  };
  return { image, uses };
}

/** The referrers of `subject` by the API, or undefined when the registry has no referrers API (404). */
async function referrersByApi(source: ManifestCache, repo: Repository, subject: Digest, where: string): Promise<readonly Descriptor[] | undefined> {
  let index: FetchedManifest;
  try {
    index = await source.getReferrers(repo, subject);
  } catch (err) {
    if (err instanceof UserError && err.code === 'MANIFEST_UNKNOWN') return undefined;
    throw err;
  }
  const parsed = parseManifest(index.bytes, index.mediaType, `${where}: referrers index`);
  if (parsed.kind !== 'index') throw new UserError('MANIFEST_INVALID', `${where}: the referrers API answered a ${parsed.mediaType}, not an image index`, { subject: { kind: 'image', name: where } });
  return parsed.manifests;
}

async function findArtifacts(source: ManifestCache, image: PlannedImage, where: string): Promise<ResolvedImage[]> {
  const repo: Repository = { domain: image.reference.domain, path: image.reference.path };
  const subject = image.reference.digest;
  const found: ResolvedImage[] = [];
  const sigTag = cosignSignatureTag(subject);
  const signature = await manifestIfAny(source, { ...repo, tag: sigTag });
  if (signature) found.push(await resolveArtifact(source, repo, signature, subject, sigTag, `${where}: ${sigTag}`));
  const listed = await referrersByApi(source, repo, subject, where);
  if (listed) {
    for (const descriptor of listed) {
      const referrer = await source.getManifest(digestReference(repo, descriptor.digest));
      found.push(await resolveArtifact(source, repo, referrer, subject, undefined, `${where}: referrer ${descriptor.digest}`));
    }
    return found;
  }
  const fallbackTag = referrersFallbackTag(subject);
  const fallback = await manifestIfAny(source, { ...repo, tag: fallbackTag });
  if (fallback) found.push(await resolveArtifact(source, repo, fallback, subject, fallbackTag, `${where}: ${fallbackTag}`));
  return found;
}

/** Every signature and referrer of the image, each planned as an image of origin "signature" with its subject. */
export async function resolveSignatures(source: ManifestCache, image: PlannedImage): Promise<ResolvedImage[]> {
  const where = `signatures of image ${formatReference(image.reference)}`;
  try {
    return await findArtifacts(source, image, where);
  } catch (err) {
    if (err instanceof ManifestError) throw new UserError('MANIFEST_INVALID', err.message, { subject: { kind: 'image', name: formatReference(image.reference) } });
    if (err instanceof UserError && !err.message.includes(where)) {
      throw new UserError(err.code, `${where}: ${err.message}`, { hint: err.hint, subject: { kind: 'image', name: formatReference(image.reference) }, cause: err });
    }
    throw err;
  }
}
