// Finds the release payload's release-manifests/image-references and release-metadata by streaming its
// layers top first through gunzip and a tar reader, stopping (and hanging up) as soon as they are found.

import { pipeline, type Readable, type Transform } from 'node:stream';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import type { ImageManifest, Descriptor } from '../oci/manifest.js';
import { layerCompression } from '../oci/media-types.js';
import type { Repository } from '../oci/reference.js';
import type { ImageSource } from '../registry/source.js';
import { UserError } from '../util/errors.js';

export const IMAGE_REFERENCES_PATH = 'release-manifests/image-references';
export const RELEASE_METADATA_PATH = 'release-manifests/release-metadata';

/** Larger than any real image-references (about 200 KiB for 190 tags); guards memory against odd payloads. */
const MAX_FILE_BYTES = 32 * 1024 * 1024;

export interface PayloadFiles {
  readonly imageReferences: Buffer;
  readonly releaseMetadata?: Buffer;
  /** How many layers were opened (1 for a normal payload, whose top layer holds release-manifests/). */
  readonly layersRead: number;
}

/** "./release-manifests/x" and "/release-manifests/x" name the same file as "release-manifests/x". */
export function normaliseEntryName(name: string): string {
  let n = name;
  for (;;) {
    if (n.startsWith('./')) n = n.slice(2);
    else if (n.startsWith('/')) n = n.slice(1);
    else return n;
  }
}

/**
 * Reads the two files from the payload image `manifest` (in `repo`; `releaseName` is for messages).
 * Layers are walked from the top, and the first occurrence of a path wins, as `oc adm release extract`
 * does. Once image-references is found the walk ends with that layer: release-metadata is optional.
 */
export async function readPayloadFiles(source: ImageSource, repo: Repository, manifest: ImageManifest, releaseName: string): Promise<PayloadFiles> {
  const found = new Map<string, Buffer>();
  let layersRead = 0;
  for (let i = manifest.layers.length - 1; i >= 0; i--) {
    const layer = manifest.layers[i]!;
    layersRead++;
    await searchLayer(source, repo, layer, found, releaseName);
    if (found.has(IMAGE_REFERENCES_PATH)) break;
  }
  const imageReferences = found.get(IMAGE_REFERENCES_PATH);
  if (!imageReferences) {
    throw new UserError('RELEASE_NO_IMAGE_REFERENCES', `release image ${releaseName} did not contain an image-references file`, {
      subject: { kind: 'image', name: releaseName },
      hint: `a release payload carries ${IMAGE_REFERENCES_PATH}; check that --release names an OpenShift release image`,
    });
  }
  const releaseMetadata = found.get(RELEASE_METADATA_PATH);
  return { imageReferences, ...(releaseMetadata ? { releaseMetadata } : {}), layersRead };
}

function decompressor(layer: Descriptor, releaseName: string): Transform | undefined {
  const compression = layerCompression(layer.mediaType);
  if (compression === 'gzip') return createGunzip();
  if (compression === 'none') return undefined;
  throw new UserError('RELEASE_LAYER_UNREADABLE', `release image ${releaseName}: cannot read layer ${layer.digest} of type ${layer.mediaType}`, { subject: { kind: 'image', name: releaseName } });
}

/** Streams one layer, adding wanted files not yet in `found`; resolves early once both files are there. */
function searchLayer(source: ImageSource, repo: Repository, layer: Descriptor, found: Map<string, Buffer>, releaseName: string): Promise<void> {
  const unzip = decompressor(layer, releaseName);
  return new Promise<void>((resolve, reject) => {
    const controller = new AbortController();
    const blob: Readable = source.blobStream(repo, layer, { signal: controller.signal });
    const extract = tar.extract();
    let settled = false;
    // Hanging up here is the point: the rest of the layer (hundreds of MB of the CVO image) is never fetched.
    const finish = (err?: unknown) => {
      if (settled) return;
      settled = true;
      controller.abort();
      blob.destroy();
      if (err) reject(err);
      else resolve();
    };
    extract.on('entry', (header, entry, next) => {
      const name = normaliseEntryName(header.name);
      const wanted = (name === IMAGE_REFERENCES_PATH || name === RELEASE_METADATA_PATH) && !found.has(name);
      if (!wanted || (header.type !== 'file' && header.type !== 'contiguous-file')) {
        entry.on('end', () => next());
        entry.resume();
        return;
      }
      if ((header.size ?? 0) > MAX_FILE_BYTES) {
        finish(new UserError('RELEASE_FILE_TOO_LARGE', `release image ${releaseName}: ${name} in layer ${layer.digest} is larger than ${MAX_FILE_BYTES} bytes`, { subject: { kind: 'image', name: releaseName } }));
        return;
      }
      const chunks: Buffer[] = [];
      entry.on('data', (chunk: unknown) => chunks.push(chunk as Buffer));
      entry.on('end', () => {
        found.set(name, Buffer.concat(chunks));
        if (found.has(IMAGE_REFERENCES_PATH) && found.has(RELEASE_METADATA_PATH)) finish();
        else next();
      });
    });
    const stages: NodeJS.ReadWriteStream[] = unzip ? [unzip] : [];
    pipeline([blob, ...stages, extract] as unknown as [Readable, ...NodeJS.ReadWriteStream[]], (err) => {
      if (err) finish(settled ? undefined : layerError(err, layer, releaseName));
      else finish();
    });
  });
}

function layerError(err: unknown, layer: Descriptor, releaseName: string): unknown {
  if (err instanceof UserError) return err;
  const code = (err as { code?: unknown }).code;
  // zlib and tar failures mean the layer is not what its media type says; anything else (network,
  // digest mismatch) is passed on as it is, so the registry client's own messages reach the user.
  if (typeof code === 'string' && code.startsWith('Z_')) {
    return new UserError('RELEASE_LAYER_UNREADABLE', `release image ${releaseName}: layer ${layer.digest} is not valid gzip: ${(err as Error).message}`, { subject: { kind: 'image', name: releaseName } });
  }
  // tar-stream's own errors carry no code: "Invalid tar header…", "Unexpected end of data".
  if (err instanceof Error && !('code' in err) && /tar header|end of data/i.test(err.message)) {
    return new UserError('RELEASE_LAYER_UNREADABLE', `release image ${releaseName}: layer ${layer.digest} is not a valid tar: ${err.message}`);
  }
  return err;
}
