// `bundle push`: a bundle into an existing registry (disk to mirror). The bundle is verified against its
// seal (and signature) first; then the one copy (src/copy/copy.ts) moves it, bundle source → registry.

import path from 'node:path';
import { copyImages, type CopyProgress, type CopySummary } from '../copy/copy.js';
import { isMirrorLocation, mirrorPaths } from '../cluster/mirror-sets.js';
import { parseReference, repositoryName, repositoryPathProblem } from '../oci/reference.js';
import type { RegistryClient } from '../registry/client.js';
import { RegistryDestination } from '../registry/destination.js';
import type { RetryPolicy } from '../registry/retry.js';
import { UserError } from '../util/errors.js';
import { verifyFailure } from '../node/verify.js';
import { locateBundle, openLocatedBundle } from './reader.js';
import { bundleImages, BundleSource } from './source.js';
import { verifyBundle } from './verify.js';

/** `--to HOST[:PORT][/PREFIX]`, parsed. */
export interface PushTarget {
  readonly host: string;
  /** Repositories go under it: PREFIX/ns/app (empty: ns/app). */
  readonly prefix: string;
}

export function parsePushTarget(text: string): PushTarget {
  const trimmed = text.trim().replace(/\/+$/, '');
  const slash = trimmed.indexOf('/');
  const host = slash < 0 ? trimmed : trimmed.slice(0, slash);
  const prefix = slash < 0 ? '' : trimmed.slice(slash + 1);
  if (host === '' || !isMirrorLocation(host) || (prefix !== '' && repositoryPathProblem(prefix) !== undefined)) {
    throw new UserError('USAGE', `--to "${text}" is not HOST[:PORT][/PREFIX] (e.g. registry.example.com:5000/ocp)${prefix !== '' && repositoryPathProblem(prefix) ? `: ${repositoryPathProblem(prefix)}` : ''}`, {
      subject: { kind: 'option', name: '--to' },
    });
  }
  return { host, prefix };
}

export interface BundlePushOptions {
  /** The tar, any volume, or the seal. */
  readonly bundle: string;
  readonly target: PushTarget;
  /** Talks to the target (credentials, TLS); the caller closes it. */
  readonly client: RegistryClient;
  /** Plain HTTP or unverified TLS to the target (`--dest-tls-verify=false`). */
  readonly insecure: boolean;
  /** Ed25519 public key: the bundle must carry a valid signature by it. */
  readonly trustedKey?: string;
  readonly concurrency?: number;
  readonly retry?: Partial<RetryPolicy>;
  /** Blobs up to this size in one PUT, larger ones by PATCH (tests lower it to exercise resume). */
  readonly monolithicLimit?: number;
  readonly signal?: AbortSignal;
  readonly onProgress?: (phase: 'verify' | 'push', progress: CopyProgress) => void;
}

export interface BundlePushResult extends CopySummary {
  readonly bundle: string;
  readonly target: string;
  /** Bytes read to verify the bundle before pushing. */
  readonly bytesVerified: number;
}

/**
 * Verifies the bundle (every byte against its seal, the signature when `trustedKey` is given: a damaged
 * bundle is refused before any upload), then pushes every image, each blob once per repository, with the
 * repositories laid out as `bundle manifests --mirror-host` expects them (under PREFIX when given).
 */
export async function pushBundle(options: BundlePushOptions): Promise<BundlePushResult> {
  const files = await locateBundle(options.bundle);
  const bundlePath = path.join(files.dir, files.name);
  const report = await verifyBundle(files, {
    ...(options.trustedKey !== undefined ? { trustedKey: options.trustedKey } : {}),
    onBytes: (done, total) => options.onProgress?.('verify', { bytesDone: done, bytesTotal: total, blobsDone: 0, blobsTotal: 0 }),
  });
  if (!report.ok) throw verifyFailure(report, files.sealPath, options.trustedKey);
  const bundle = await openLocatedBundle(files);
  try {
    const source = new BundleSource(bundle, await bundle.locateBlobs());
    const paths = mirrorPaths(bundle.manifest.images.map((image) => parseReference(image.name)));
    const images = bundleImages(bundle.manifest, (repo) => {
      const at = paths.get(repositoryName(repo)) ?? repo.path;
      return options.target.prefix === '' ? at : `${options.target.prefix}/${at}`;
    });
    const destination = new RegistryDestination(options.client, { host: options.target.host, insecure: options.insecure }, options.monolithicLimit);
    const summary = await copyImages(source, destination, images, {
      ...(options.concurrency !== undefined ? { concurrency: options.concurrency } : {}),
      ...(options.retry !== undefined ? { retry: options.retry } : {}),
      ...(options.signal !== undefined ? { signal: options.signal } : {}),
      onProgress: (p) => options.onProgress?.('push', p),
    });
    const target = options.target.prefix === '' ? options.target.host : `${options.target.host}/${options.target.prefix}`;
    return { bundle: bundlePath, target, bytesVerified: report.bytesRead, ...summary };
  } finally {
    await bundle.close();
  }
}
