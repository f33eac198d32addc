// `bundle push`: a bundle into an existing registry (disk to mirror) or an OCI layout directory. Its structure
// is checked against its seal (and signature) first; then the one copy (src/copy/copy.ts) moves it, bundle
// source → registry or layout, and its streaming digest check is the content check: each byte is hashed once.

import path from 'node:path';
import { copyImages, type CopyImage, type CopyProgress, type CopySummary } from '../copy/copy.js';
import type { ImageDestination } from '../copy/destination.js';
import { LayoutDestination } from '../copy/layout-destination.js';
import { isMirrorLocation, mirrorPaths } from '../cluster/mirror-sets.js';
import { DigestMismatchError, type Digest } from '../oci/digest.js';
import { parseReference, repositoryName, repositoryPathProblem, type Repository } from '../oci/reference.js';
import type { RegistryClient } from '../registry/client.js';
import { RegistryDestination } from '../registry/destination.js';
import type { RetryPolicy } from '../registry/retry.js';
import { isUserError, UserError } from '../util/errors.js';
import { verifyFailure } from '../node/verify.js';
import { locateBundle, openLocatedBundle, type BlobLocation, type BundleFiles } from './reader.js';
import { bundleImages, BundleSource } from './source.js';
import { blobOnDisk, verifyBundle, verifyBundleStructure } from './verify.js';

/** `--to HOST[:PORT][/PREFIX]`, parsed. */
export interface RegistryPushTarget {
  readonly kind: 'registry';
  readonly host: string;
  /** Repositories go under it: PREFIX/ns/app (empty: ns/app). */
  readonly prefix: string;
}

/** `--to oci:DIR` (skopeo's transport prefix): one OCI image layout holding every image of the bundle. */
export interface LayoutPushTarget {
  readonly kind: 'layout';
  /** Absolute. */
  readonly dir: string;
}

export type PushTarget = RegistryPushTarget | LayoutPushTarget;

export const LAYOUT_TRANSPORT = 'oci:';

export function parsePushTarget(text: string): PushTarget {
  if (text.startsWith(LAYOUT_TRANSPORT)) return parseLayoutTarget(text);
  const trimmed = text.trim().replace(/\/+$/, '');
  const slash = trimmed.indexOf('/');
  const host = slash < 0 ? trimmed : trimmed.slice(0, slash);
  const prefix = slash < 0 ? '' : trimmed.slice(slash + 1);
  if (host === '' || !isMirrorLocation(host) || (prefix !== '' && repositoryPathProblem(prefix) !== undefined)) {
    throw new UserError('USAGE', `--to "${text}" is not HOST[:PORT][/PREFIX] (e.g. registry.example.com:5000/ocp)${prefix !== '' && repositoryPathProblem(prefix) ? `: ${repositoryPathProblem(prefix)}` : ''}`, {
      subject: { kind: 'option', name: '--to' },
    });
  }
  return { kind: 'registry', host, prefix };
}

/**
 * `oci:DIR`. skopeo's `oci:DIR:REF` names one image; a bundle is many, each named in the layout by its own
 * reference (src/copy/layout-destination.ts), so a `:REF` (and with it a DIR holding ':') is refused.
 */
function parseLayoutTarget(text: string): LayoutPushTarget {
  const dir = text.slice(LAYOUT_TRANSPORT.length);
  if (dir === '' || dir.includes(':')) {
    throw new UserError('USAGE', `--to "${text}" is not oci:DIR${dir.includes(':') ? ': the layout names every image of the bundle itself, give no :REF (and a DIR without ":")' : ''}`, {
      subject: { kind: 'option', name: '--to' },
    });
  }
  return { kind: 'layout', dir: path.resolve(dir) };
}

/** The target as messages and the summary name it: HOST[/PREFIX] or oci:DIR. */
export function pushTargetName(target: PushTarget): string {
  if (target.kind === 'layout') return `${LAYOUT_TRANSPORT}${target.dir}`;
  return target.prefix === '' ? target.host : `${target.host}/${target.prefix}`;
}

export interface BundlePushOptions {
  /** The tar, any volume, or the seal. */
  readonly bundle: string;
  readonly target: PushTarget;
  /** Talks to a registry target (credentials, TLS); the caller closes it. Required for a registry target. */
  readonly client?: RegistryClient | undefined;
  /** Plain HTTP or unverified TLS to a registry target (`--dest-tls-verify=false`). */
  readonly insecure?: boolean | undefined;
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
  /** What `target` is: a registry (HOST[/PREFIX]) or an OCI layout directory (oci:DIR). */
  readonly targetKind: PushTarget['kind'];
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
  // The structure check reads the manifest and every tar header; what it read opens the bundle, so the push
  // reads each once. (--verify-first reads every byte anyway: the bundle is then opened as usual.)
  const { report, checked } = options.verifyFirst
    ? {
        report: await verifyBundle(files, {
          ...trusted,
          onBytes: (done, total) => options.onProgress?.('verify', { bytesDone: done, bytesTotal: total, blobsDone: 0, blobsTotal: 0 }),
        }),
        checked: undefined,
      }
    : await verifyBundleStructure(files, trusted);
  if (!report.ok) throw verifyFailure(report, files.sealPath, options.trustedKey);
  const bundle = await openLocatedBundle(files, checked);
  try {
    const locations = await bundle.locateBlobs();
    const source = new BundleSource(bundle, locations);
    const images = bundleImages(bundle.manifest, repositoryFor(options.target, bundle.manifest.images));
    const target = pushTargetName(options.target);
    const destination = await openDestination(options, images);
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
    } finally {
      await destination.close();
    }
    return { bundle: bundlePath, target, targetKind: options.target.kind, bytesVerified: report.bytesRead, ...summary };
  } finally {
    await bundle.close();
  }
}

/**
 * Where each source repository goes. In a registry, where the mirror sets expect it (`bundle manifests
 * --mirror-host`), under PREFIX; in a layout, under its full source name (quay.io/ns/app), so that the
 * layout names each image as the bundle's own index.json does and no two registries' paths collide.
 */
function repositoryFor(target: PushTarget, images: ReadonlyArray<{ readonly name: string }>): (repo: Repository) => string {
  if (target.kind === 'layout') return repositoryName;
  const paths = mirrorPaths(images.map((image) => parseReference(image.name)));
  return (repo) => {
    const at = paths.get(repositoryName(repo)) ?? repo.path;
    return target.prefix === '' ? at : `${target.prefix}/${at}`;
  };
}

async function openDestination(options: BundlePushOptions, images: readonly CopyImage[]): Promise<ImageDestination> {
  const target = options.target;
  if (target.kind === 'layout') {
    const layout = await LayoutDestination.open(target.dir);
    layout.nameImages(images);
    return layout;
  }
  if (options.client === undefined) throw new Error('pushBundle: a registry target needs a client');
  return new RegistryDestination(options.client, { host: target.host, insecure: options.insecure ?? false }, options.monolithicLimit);
}

/** The DigestMismatchError a failed copy step carries (as its cause), and the image the step named as its subject. */
function digestMismatch(error: unknown): { mismatch: DigestMismatchError; image: string | undefined } | undefined {
  let image: string | undefined;
  for (let at = error, depth = 0; at !== undefined && at !== null && depth < 8; at = (at as { cause?: unknown }).cause, depth++) {
    if (image === undefined && isUserError(at) && at.subject?.kind === 'image') image = at.subject.name;
    if (at instanceof DigestMismatchError) return { mismatch: at, image };
  }
  return undefined;
}

/**
 * A blob (or manifest) of the bundle whose bytes the copy found not to match its digest, as BUNDLE_VERIFY_FAILED
 * (the code `--verify-first` gives the same damage): which blob, where on the media, that it was not committed.
 */
function damagedBlobError(error: unknown, files: BundleFiles, locations: ReadonlyMap<Digest, BlobLocation>, target: string, trustedKey: string | undefined): UserError | undefined {
  const found = digestMismatch(error);
  const at = found !== undefined ? locations.get(found.mismatch.expected) : undefined;
  if (found === undefined || at === undefined) return undefined;
  const { mismatch, image } = found;
  const bundlePath = path.join(files.dir, files.name);
  return new UserError('BUNDLE_VERIFY_FAILED', `bundle ${bundlePath}: blob ${mismatch.expected} is damaged: its content has digest ${mismatch.actual} (${blobOnDisk(files, at.offset, at.size)}${image !== undefined ? `; found while pushing image ${image}` : ''}); it was not committed at ${target}`, {
    subject: { kind: 'bundle', name: files.sealPath },
    hint: `copy the damaged volume again or re-create the bundle, then run the same push: it goes on where it stopped ("pin-preload bundle verify ${files.sealPath}${trustedKey ? ` --trusted-key ${trustedKey}` : ''}" lists all damage)`,
    cause: error,
  });
}
