// The manifest and layer media types we understand (OCI image spec and Docker image manifest v2).

export const MediaType = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayerTar: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  ociEmpty: 'application/vnd.oci.empty.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerForeignLayerGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
} as const;

export type ImageManifestMediaType = typeof MediaType.ociManifest | typeof MediaType.dockerManifest;
export type IndexMediaType = typeof MediaType.ociIndex | typeof MediaType.dockerManifestList;
export type ManifestMediaType = ImageManifestMediaType | IndexMediaType;

export const MANIFEST_MEDIA_TYPES: readonly ManifestMediaType[] = [
  MediaType.ociManifest,
  MediaType.dockerManifest,
  MediaType.dockerManifestList,
  MediaType.ociIndex,
];

/** What containers/image sends: every manifest and index type we can read. */
export const MANIFEST_ACCEPT = MANIFEST_MEDIA_TYPES.join(', ');

export function isIndexMediaType(type: string): type is IndexMediaType {
  return type === MediaType.ociIndex || type === MediaType.dockerManifestList;
}

export function isImageManifestMediaType(type: string): type is ImageManifestMediaType {
  return type === MediaType.ociManifest || type === MediaType.dockerManifest;
}

export function isManifestMediaType(type: string): type is ManifestMediaType {
  return isIndexMediaType(type) || isImageManifestMediaType(type);
}

export type LayerCompression = 'gzip' | 'zstd' | 'none' | 'unknown';

export function layerCompression(type: string): LayerCompression {
  if (type.endsWith('+gzip') || type.endsWith('.tar.gzip')) return 'gzip';
  if (type.endsWith('+zstd')) return 'zstd';
  if (type.endsWith('.tar') || type === MediaType.ociLayerTar) return 'none';
  return 'unknown';
}
