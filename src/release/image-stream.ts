// The release payload's `release-manifests/image-references`: an ImageStream naming every component image.
// Parsed and validated exactly as `oc adm release extract/mirror` do (openshift/oc pkg/cli/admin/release).

import { UserError } from '../util/errors.js';
import { isDigestReference, parseReference, type DigestReference } from '../oci/reference.js';

export interface ReleaseComponent {
  /** The ImageStream tag name, e.g. "machine-config-operator". */
  readonly name: string;
  readonly reference: DigestReference;
}

export interface ReleaseImageStream {
  /** `metadata.name`: the release version, e.g. "4.16.3". */
  readonly version: string;
  /** Tags with a DockerImage `from`, in file order. */
  readonly components: readonly ReleaseComponent[];
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function unrecognized(release: string, why: string): UserError {
  return new UserError('RELEASE_IMAGE_REFERENCES_INVALID', `unrecognized image-references in release payload ${release}: ${why}`, { subject: { kind: 'image', name: release } });
}

/**
 * Parses image-references bytes from the payload `release` (named in errors). Like oc: kind and apiVersion
 * must match, tags whose `from` is missing or not a DockerImage are skipped, and every image must be by
 * digest, because a release that points at tags could change under a mirrored cluster.
 */
export function parseImageReferences(bytes: Uint8Array | string, release: string): ReleaseImageStream {
  let doc: unknown;
  try {
    doc = JSON.parse(typeof bytes === 'string' ? bytes : Buffer.from(bytes).toString('utf8'));
  } catch (err) {
    throw unrecognized(release, `not JSON (${(err as Error).message})`);
  }
  if (!isObject(doc)) throw unrecognized(release, 'not a JSON object');
  if (doc.apiVersion !== 'image.openshift.io/v1') throw unrecognized(release, `API version ${JSON.stringify(doc.apiVersion ?? '')} is not image.openshift.io/v1`);
  if (doc.kind !== 'ImageStream') throw unrecognized(release, `kind ${JSON.stringify(doc.kind ?? '')} is not ImageStream`);
  const version = isObject(doc.metadata) && typeof doc.metadata.name === 'string' ? doc.metadata.name : '';
  const tags = isObject(doc.spec) && Array.isArray(doc.spec.tags) ? doc.spec.tags : [];
  const components: ReleaseComponent[] = [];
  for (const tag of tags) {
    if (!isObject(tag)) continue;
    const name = typeof tag.name === 'string' ? tag.name : '';
    const from = tag.from;
    if (!isObject(from) || from.kind !== 'DockerImage') continue;
    components.push({ name, reference: componentReference(name, from.name, release) });
  }
  return { version, components };
}

function componentReference(tag: string, pullSpec: unknown, release: string): DigestReference {
  if (typeof pullSpec !== 'string' || pullSpec === '') {
    throw new UserError('RELEASE_TAG_INVALID', `release tag "${tag}" in ${release} has no image name`, { subject: { kind: 'image', name: release } });
  }
  let ref;
  try {
    ref = parseReference(pullSpec);
  } catch (err) {
    throw new UserError('RELEASE_TAG_INVALID', `release tag "${tag}" in ${release} is not valid: ${(err as Error).message}`);
  }
  if (!isDigestReference(ref)) {
    throw new UserError(
      'RELEASE_TAG_NOT_BY_DIGEST',
      `image-references should only contain pointers to images by digest: release tag "${tag}" in ${release} points at ${pullSpec}`,
    );
  }
  // A component is named by digest alone; a tag next to the digest says nothing the digest does not.
  return { domain: ref.domain, path: ref.path, digest: ref.digest };
}
