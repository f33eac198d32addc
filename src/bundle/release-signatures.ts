// The release signatures a bundle carries (pin-preload.json `releases[].signatures`, bytes inline): decoded
// for the cluster manifests, and re-checked by `bundle verify` against their digests and their release.

import type { BundleManifest, BundleRelease } from './format.js';
import { bundleReleases } from './bundle-manifest.js';
import { checkSignaturePayload, releaseSignature, type ReleaseSignature } from '../release/release-signature.js';
import { isUserError } from '../util/errors.js';

/** A release's carried signatures, signature-1 first (index N is the store's signature-N). */
export function carriedSignatures(release: BundleRelease): ReleaseSignature[] {
  return (release.signatures ?? []).map((sig, i) => releaseSignature(i + 1, Buffer.from(sig.base64, 'base64')));
}

export function carriedSignatureCount(manifest: BundleManifest): number {
  return bundleReleases(manifest).reduce((n, r) => n + (r.signatures?.length ?? 0), 0);
}

export interface SignatureProblem {
  readonly subject: string;
  readonly message: string;
  readonly expected?: string;
  readonly found?: string;
}

/** Each carried signature must decode to its recorded size and digest, and its payload must sign its release. */
export function releaseSignatureProblems(manifest: BundleManifest): SignatureProblem[] {
  const problems: SignatureProblem[] = [];
  for (const release of bundleReleases(manifest)) {
    const recorded = release.signatures ?? [];
    carriedSignatures(release).forEach((signature, i) => {
      const entry = recorded[i]!;
      const where = `signature-${signature.index} of release ${release.version} (${release.name})`;
      if (signature.bytes.length !== entry.size || signature.digest !== entry.digest) {
        problems.push({ subject: entry.digest, message: `${where} does not match its recorded size and digest`, expected: `${entry.digest} size ${entry.size}`, found: `${signature.digest} size ${signature.bytes.length}` });
        return;
      }
      try {
        checkSignaturePayload(signature, release.digest, where);
      } catch (err) {
        if (!isUserError(err)) throw err;
        problems.push({ subject: entry.digest, message: err.message });
      }
    });
  }
  return problems;
}
