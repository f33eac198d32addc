// The OCI image layout files inside the bundle (oci-layout, index.json), so skopeo and podman read the tar
// as `oci-archive:BUNDLE:NAME`, NAME being the image's source reference by digest.

import type { BundleManifest } from './format.js';
import { REF_NAME_ANNOTATION } from '../oci/image-layout.js';
import { MediaType } from '../oci/media-types.js';

// The layout's own names live with the layout (src/oci/image-layout.ts); re-exported for the bundle's modules.
export { ociLayoutBytes, REF_NAME_ANNOTATION } from '../oci/image-layout.js';
export const OCI_LAYOUT_ENTRY = 'oci-layout';
export const INDEX_ENTRY = 'index.json';
/** Our own annotations on index.json entries, for tools that want to know where an image came from. */
export const TAG_ANNOTATION = 'io.pin-preload.image.tag';
export const ORIGIN_ANNOTATION = 'io.pin-preload.image.origin';
export const COMPONENT_ANNOTATION = 'io.pin-preload.image.component';
/** On a signature or referrer (origin "signature"): the digest of the image it is about. */
export const SUBJECT_ANNOTATION = 'io.pin-preload.image.subject';

/** index.json: one entry per image, named by its source reference by digest, in the manifest's image order. */
export function ociIndexBytes(manifest: BundleManifest): Buffer {
  const sizes = new Map(manifest.blobs.map((b) => [b.digest as string, b.size]));
  const manifests = manifest.images.map((image) => {
    const size = sizes.get(image.digest);
    if (size === undefined) throw new Error(`image ${image.name}: its manifest ${image.digest} is not among the bundle's blobs`);
    return {
      mediaType: image.mediaType,
      digest: image.digest,
      size,
      annotations: {
        [REF_NAME_ANNOTATION]: image.name,
        [ORIGIN_ANNOTATION]: image.origin,
        ...(image.tag !== undefined ? { [TAG_ANNOTATION]: image.tag } : {}),
        ...(image.component !== undefined ? { [COMPONENT_ANNOTATION]: image.component } : {}),
        ...(image.subject !== undefined ? { [SUBJECT_ANNOTATION]: image.subject } : {}),
      },
    };
  });
  return Buffer.from(`${JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests }, null, 2)}\n`, 'utf8');
}
