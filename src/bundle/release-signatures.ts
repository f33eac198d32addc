// The release signatures a bundle carries (pin-preload.json `releases[].signatures`, bytes inline): decoded
// for the cluster manifests, and re-checked by `bundle verify` against their digests and their release.

import type { BundleManifest, BundleRelease } from './format.js';
import { bundleReleases } from './bundle-manifest.js';
import { checkSignaturePayload, releaseSignature, type ReleaseSignature } from '../release/release-signature.js';
import { ReleaseKeyring } from '../release/release-keyring.js';
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

/**
 * Each carried signature must decode to its recorded size and digest, and its payload must sign its release;
 * with `keyringFile`, gpgv must also find it a good signature by a key of that keyring.
 */
export async function releaseSignatureProblems(manifest: BundleManifest, keyringFile?: string): Promise<SignatureProblem[]> {
  const problems: SignatureProblem[] = [];
  const checked: Array<{ signature: ReleaseSignature; where: string }> = [];
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
        checked.push({ signature, where });
      } catch (err) {
        if (!isUserError(err)) throw err;
        problems.push({ subject: entry.digest, message: err.message });
      }
    });
  }
  if (keyringFile === undefined || checked.length === 0) return problems;
  const keyring = await ReleaseKeyring.open(keyringFile);
  try {
    for (const { signature, where } of checked) {
      await keyring.verify(signature.bytes, where).catch((err: unknown) => {
        if (!isUserError(err) || err.code !== 'RELEASE_SIGNATURE_UNTRUSTED') throw err;
        problems.push({ subject: signature.digest, message: err.message });
      });
    }
  } finally {
    await keyring.close();
  }
  return problems;
}
