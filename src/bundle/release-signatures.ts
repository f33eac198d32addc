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
 * with `keyringFile`, gpgv must also find it a good signature by a key of that keyring, and every release must
 * carry one (the check an operator runs before applying the ConfigMaps: none carried is not a pass).
 */
export async function releaseSignatureProblems(manifest: BundleManifest, keyringFile?: string): Promise<SignatureProblem[]> {
  // Opened first, whatever the bundle carries: a keyring that cannot be read is a usage error, never an OK.
  if (keyringFile === undefined) return signatureProblems(manifest);
  const keyring = await ReleaseKeyring.open(keyringFile);
  try {
    return await signatureProblems(manifest, { keyring, file: keyringFile });
  } finally {
    await keyring.close();
  }
}

async function signatureProblems(manifest: BundleManifest, trust?: { keyring: ReleaseKeyring; file: string }): Promise<SignatureProblem[]> {
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
  if (trust === undefined) return problems;
  const releases = bundleReleases(manifest);
  if (releases.length === 0) problems.push({ subject: trust.file, message: `--release-keyring ${trust.file} was given, but the bundle holds no release, so no release signature to verify` });
  for (const release of releases) {
    if ((release.signatures ?? []).length > 0) continue;
    problems.push({
      subject: release.name,
      message: `release ${release.version} (${release.name}) carries no release signature to verify with --release-keyring (bundled without a signature store, or with unsigned releases allowed: --signature-store, --allow-unsigned-releases or their spec keys): a cluster would refuse to update to it`,
    });
  }
  for (const { signature, where } of checked) {
    await trust.keyring.verify(signature, where).catch((err: unknown) => {
      if (!isUserError(err) || err.code !== 'RELEASE_SIGNATURE_UNTRUSTED') throw err;
      problems.push({ subject: signature.digest, message: err.message });
    });
  }
  return problems;
}
