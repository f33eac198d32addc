// Pushes every image of an OCI image layout to a registry, each to the repository path of its source
// reference: how tests, benchmarks and the demo fill a real registry from a fixture. The copy itself is
// src/copy/copy.ts (layout source → registry destination), the same one `bundle push` uses.

import { copyImages } from '../copy/copy.js';
import { LayoutSource, layoutImages } from '../copy/layout-source.js';
import { RegistryClient } from '../registry/client.js';
import { RegistryDestination } from '../registry/destination.js';

export interface PushOptions {
  /** Requests in flight at once (default 4). */
  readonly concurrency?: number;
}

export interface PushStats {
  readonly images: number;
  /** Manifest PUTs, by digest and by tag. */
  readonly manifests: number;
  readonly blobsUploaded: number;
  /** Blobs that a cross-repository mount placed without upload. */
  readonly blobsMounted: number;
  /** Blobs that the registry already had in the target repository. */
  readonly blobsSkipped: number;
  readonly bytesUploaded: number;
}

/**
 * Pushes every image named in the layout's index.json to `registryUrl` (http://127.0.0.1:PORT): blobs
 * (HEAD, cross-repository mount, or upload streamed from the file), then manifests by digest, children
 * first, then the tag when the source reference has one. Idempotent: a second push uploads nothing.
 */
export async function pushLayout(dir: string, registryUrl: string, options: PushOptions = {}): Promise<PushStats> {
  const concurrency = Math.max(1, options.concurrency ?? 4);
  const images = await layoutImages(dir, (reference) => reference.path);
  const url = new URL(registryUrl);
  const client = new RegistryClient({ maxConcurrentRequests: concurrency });
  try {
    const destination = new RegistryDestination(client, { host: url.host, insecure: url.protocol === 'http:' });
    const summary = await copyImages(new LayoutSource(dir), destination, images, { concurrency });
    return {
      images: summary.images,
      manifests: summary.manifestsPut + summary.tagsPut,
      blobsUploaded: summary.blobsSent,
      blobsMounted: summary.blobsMounted,
      blobsSkipped: summary.blobsPresent,
      bytesUploaded: summary.bytesSent,
    };
  } finally {
    await client.close();
  }
}
