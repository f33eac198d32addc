// `bundle push`: a bundle into an existing registry (disk to mirror). Its structure is checked against its
// seal (and signature) first; then the one copy (src/copy/copy.ts) moves it, bundle source → registry, and
// its streaming digest check is the content check: each byte is hashed once.

import path from 'node:path';
import { copyImages, type CopyProgress, type CopySummary } from '../copy/copy.js';
import { isMirrorLocation, mirrorPaths } from '../cluster/mirror-sets.js';
import { DigestMismatchError, type Digest } from '../oci/digest.js';
import { parseReference, repositoryName, repositoryPathProblem } from '../oci/reference.js';
import type { RegistryClient } from '../registry/client.js';
import { RegistryDestination } from '../registry/destination.js';
import type { RetryPolicy } from '../registry/retry.js';
import { UserError } from '../util/errors.js';
import { verifyFailure } from '../node/verify.js';
import { locateBundle, openLocatedBundle, type BlobLocation, type BundleFiles } from './reader.js';
import { bundleImages, BundleSource } from './source.js';
import { blobOnDisk, verifyBundle, verifyBundleStructure } from './verify.js';

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
  /**
   * Hash every blob before the first request (`--verify-first`), so that a damaged bundle sends nothing;
   * costs a second pass over every byte. Without it the copy's digest check is the content check.
   */
  readonly verifyFirst?: boolean;
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
  /** Bytes read to check the bundle before pushing (the skeleton; every byte with verifyFirst). */
  readonly bytesVerified: number;
}

/**
 * Checks the bundle before any upload — the seal, the signature when `trustedKey` is given, the manifest
 * against the seal, the volumes' presence and sizes, every tar header and layout file (no blob is hashed;
 * with `verifyFirst`, every blob too) — then pushes every image, each blob once per repository, with the
 * repositories laid out as `bundle manifests --mirror-host` expects them (under PREFIX when given). A blob
 * whose bytes do not match its digest is found by the copy while it streams and never committed: its last
 * chunk is held back until the digest matches, so the registry never receives it whole, and no closing PUT
 * follows (distribution would refuse it anyway: it checks the digest at commit). It is BUNDLE_VERIFY_FAILED,
 * naming the blob and where it lies; what was pushed before stays, and a re-run after the fix goes on.
 */
export async function pushBundle(options: BundlePushOptions): Promise<BundlePushResult> {
  const files = await locateBundle(options.bundle);
  const bundlePath = path.join(files.dir, files.name);
  const trusted = options.trustedKey !== undefined ? { trustedKey: options.trustedKey } : {};
  const report = options.verifyFirst
    ? await verifyBundle(files, {
        ...trusted,
        onBytes: (done, total) => options.onProgress?.('verify', { bytesDone: done, bytesTotal: total, blobsDone: 0, blobsTotal: 0 }),
      })
    : await verifyBundleStructure(files, trusted);
  if (!report.ok) throw verifyFailure(report, files.sealPath, options.trustedKey);
  const bundle = await openLocatedBundle(files);
  try {
    const locations = await bundle.locateBlobs();
    const source = new BundleSource(bundle, locations);
    const paths = mirrorPaths(bundle.manifest.images.map((image) => parseReference(image.name)));
    const images = bundleImages(bundle.manifest, (repo) => {
      const at = paths.get(repositoryName(repo)) ?? repo.path;
      return options.target.prefix === '' ? at : `${options.target.prefix}/${at}`;
    });
    const destination = new RegistryDestination(options.client, { host: options.target.host, insecure: options.insecure }, options.monolithicLimit);
    const target = options.target.prefix === '' ? options.target.host : `${options.target.host}/${options.target.prefix}`;
    let summary: CopySummary;
    try {
      summary = await copyImages(source, destination, images, {
        ...(options.concurrency !== undefined ? { concurrency: options.concurrency } : {}),
        ...(options.retry !== undefined ? { retry: options.retry } : {}),
        ...(options.signal !== undefined ? { signal: options.signal } : {}),
        onProgress: (p) => options.onProgress?.('push', p),
      });
    } catch (error) {
      throw damagedBlobError(error, files, locations, target, options.trustedKey) ?? error;
    }
    return { bundle: bundlePath, target, bytesVerified: report.bytesRead, ...summary };
  } finally {
    await bundle.close();
  }
}

/** The DigestMismatchError a failed copy step carries (as its cause), if any. */
function digestMismatch(error: unknown): DigestMismatchError | undefined {
  for (let at = error, depth = 0; at !== undefined && at !== null && depth < 8; at = (at as { cause?: unknown }).cause, depth++) {
    if (at instanceof DigestMismatchError) return at;
  }
  return undefined;
}

/**
 * A blob (or manifest) of the bundle whose bytes the copy found not to match its digest, as BUNDLE_VERIFY_FAILED
 * (the code `--verify-first` gives the same damage): which blob, where on the media, that it was not committed.
 */
function damagedBlobError(error: unknown, files: BundleFiles, locations: ReadonlyMap<Digest, BlobLocation>, target: string, trustedKey: string | undefined): UserError | undefined {
  const mismatch = digestMismatch(error);
  const at = mismatch !== undefined ? locations.get(mismatch.expected) : undefined;
  if (mismatch === undefined || at === undefined) return undefined;
  const bundlePath = path.join(files.dir, files.name);
  const image = / of image (.+)$/.exec(mismatch.where)?.[1];
  return new UserError('BUNDLE_VERIFY_FAILED', `bundle ${bundlePath}: blob ${mismatch.expected} is damaged: its content has digest ${mismatch.actual} (${blobOnDisk(files, at.offset, at.size)}${image !== undefined ? `; found while pushing image ${image}` : ''}); it was not committed at ${target}`, {
    subject: { kind: 'bundle', name: files.sealPath },
    hint: `copy the damaged volume again or re-create the bundle, then run the same push: it goes on where it stopped ("pin-preload bundle verify ${files.sealPath}${trustedKey ? ` --trusted-key ${trustedKey}` : ''}" lists all damage)`,
    cause: error,
  });
}
