// The tag names under which signatures and referrers of a manifest live in its repository: cosign's
// `sha256-<hex>.sig` and the OCI distribution-spec's referrers fallback tag `sha256-<hex>` ("Referrers Tag Schema").

import { digestAlgorithm, digestHex, type Digest } from './digest.js';

/** cosign's signature tag of `subject` (the signature manifest's layers carry the simple-signing payloads). */
export function cosignSignatureTag(subject: Digest): string {
  return `${digestAlgorithm(subject)}-${digestHex(subject)}.sig`;
}

/** The referrers fallback tag of `subject`: an image index listing its referrers, for registries without the API. */
export function referrersFallbackTag(subject: Digest): string {
  return `${digestAlgorithm(subject)}-${digestHex(subject)}`;
}
