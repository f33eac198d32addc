// A release signature as the cluster-version operator reads it: an OpenPGP-signed "atomic container
// signature" JSON whose critical.image.docker-manifest-digest names the release payload it vouches for.

import { isDigest, sha256Of, type Digest } from '../oci/digest.js';
import { UserError } from '../util/errors.js';
import { OpenPgpFormatError, signedLiteralData } from './openpgp.js';

/** The signature type containers/image writes and the CVO accepts (containers/image signature/policy). */
export const ATOMIC_SIGNATURE_TYPE = 'atomic container signature';

/** One signature of a release, as fetched from a store or carried in a bundle; `index` is N of signature-N. */
export interface ReleaseSignature {
  readonly index: number;
  readonly bytes: Buffer;
  /** sha256 of `bytes`: how a bundle names it. */
  readonly digest: Digest;
}

export function releaseSignature(index: number, bytes: Buffer): ReleaseSignature {
  return { index, bytes, digest: sha256Of(bytes) };
}

/** What a signature's payload claims (checked against the release it was fetched for). */
export interface SignatureClaims {
  readonly manifestDigest: Digest;
  /** critical.identity.docker-reference: the pull spec the release was signed as. */
  readonly reference: string;
}

/**
 * Opens the signed message and checks its payload: the type is "atomic container signature" and
 * docker-manifest-digest names `releaseDigest`. `where` names the signature in errors (release and N);
 * `notSignatureHint` replaces the code's hint (which names --signature-store) for bytes that are no signed message.
 */
export function checkSignaturePayload(signature: ReleaseSignature, releaseDigest: Digest, where: string, notSignatureHint?: string): SignatureClaims {
  const subject = { kind: 'digest', name: signature.digest } as const;
  let payload: Buffer;
  try {
    payload = signedLiteralData(signature.bytes);
  } catch (err) {
    if (!(err instanceof OpenPgpFormatError)) throw err;
    throw new UserError('RELEASE_SIGNATURE_INVALID', `${where} is not an OpenPGP signed message: ${err.message}`, { subject, ...(notSignatureHint !== undefined ? { hint: notSignatureHint } : {}) });
  }
  const bad = (why: string) => new UserError('RELEASE_SIGNATURE_INVALID', `${where}: its signed payload ${why}`, { subject, hint: 'the store serves something that is not an OpenShift release signature' });
  let doc: unknown;
  try {
    doc = JSON.parse(payload.toString('utf8'));
  } catch {
    throw bad('is not JSON');
  }
  const critical = (doc as { critical?: { type?: unknown; image?: { 'docker-manifest-digest'?: unknown }; identity?: { 'docker-reference'?: unknown } } } | null)?.critical;
  if (typeof critical !== 'object' || critical === null) throw bad('has no "critical" section');
  if (critical.type !== ATOMIC_SIGNATURE_TYPE) throw bad(`has type ${JSON.stringify(critical.type)}, not "${ATOMIC_SIGNATURE_TYPE}"`);
  const signed = critical.image?.['docker-manifest-digest'];
  if (typeof signed !== 'string' || !isDigest(signed)) throw bad('has no valid critical.image.docker-manifest-digest');
  if (signed !== releaseDigest) {
    throw new UserError('RELEASE_SIGNATURE_MISMATCH', `${where} signs ${signed}, not the release ${releaseDigest}`, { subject });
  }
  const reference = critical.identity?.['docker-reference'];
  return { manifestDigest: signed, reference: typeof reference === 'string' ? reference : '' };
}
