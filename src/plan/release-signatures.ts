// The signatures of every release of a plan (`--signature-store`): fetched, each payload checked against its
// release digest, optionally verified against a keyring, and attached to the plan for the bundle to carry.

import { formatReference } from '../oci/reference.js';
import { ReleaseKeyring } from '../release/release-keyring.js';
import { checkSignaturePayload } from '../release/release-signature.js';
import { fetchReleaseSignatures, signatureUrl, storeHint } from '../release/signature-store.js';
import { UserError } from '../util/errors.js';
import type { OptionOrigin } from '../util/option-origin.js';
import type { BundlePlan, PlannedRelease } from './plan.js';

export interface SignatureOptions {
  /** As parseSignatureStore returns it (ending in one slash, so signature paths resolve under it). */
  readonly store: URL;
  /** Where the store was given (default the flag), for errors raised while fetching. */
  readonly storeOrigin?: OptionOrigin;
  /** gpg keyring (binary or armored) to verify each signature with; without it only the payload is checked. */
  readonly keyring?: string;
  /** Where the keyring was given (default the flag): errors about what it verifies name it. */
  readonly keyringOrigin?: OptionOrigin;
  /** Bundle a release that has no signature at all instead of refusing it (`--allow-unsigned-releases`). */
  readonly allowUnsigned?: boolean;
  readonly signal?: AbortSignal;
}

export function describeRelease(release: PlannedRelease): string {
  return `release ${release.version || '(unknown version)'} (${formatReference(release.reference)})`;
}

/** The plan with `signatures` set on each release; throws naming the release on any problem. */
export async function withReleaseSignatures(plan: BundlePlan, options: SignatureOptions): Promise<BundlePlan> {
  const keyring = options.keyring !== undefined ? await ReleaseKeyring.open(options.keyring, options.keyringOrigin) : undefined;
  const notSignatureHint = storeHint(options.storeOrigin);
  try {
    const releases: PlannedRelease[] = [];
    for (const release of plan.releases) {
      const name = describeRelease(release);
      const digest = release.reference.digest;
      const signatures = await fetchReleaseSignatures(options.store, digest, { release: name, ...(options.storeOrigin ? { storeOrigin: options.storeOrigin } : {}), ...(options.signal ? { signal: options.signal } : {}) });
      if (signatures.length === 0 && !options.allowUnsigned) {
        throw new UserError('RELEASE_UNSIGNED', `${name} has no signature in the store (${signatureUrl(options.store, digest, 1)} is not found); a cluster would refuse to update to it`, {
          subject: { kind: 'image', name: formatReference(release.reference) },
        });
      }
      for (const signature of signatures) {
        const where = `signature-${signature.index} of ${name}`;
        checkSignaturePayload(signature, digest, where, notSignatureHint);
        await keyring?.verify(signature, where);
      }
      releases.push({ ...release, signatures });
    }
    return { ...plan, releases };
  } finally {
    await keyring?.close();
  }
}
