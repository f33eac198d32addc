// Content digests ("sha256:<64 hex>") as a validated type, and hashing while streaming.
// Grammar from the OCI image spec (descriptor.md): algorithm ":" encoded.

import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { UserError } from '../util/errors.js';

/** A digest that has been checked against the grammar; only parseDigest and sha256Of make one. */
export type Digest = string & { readonly __brand: 'Digest' };

const ALGORITHM = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*$/;
const ENCODED = /^[a-zA-Z0-9=_-]+$/;
const REGISTERED: Record<string, RegExp> = {
  sha256: /^[a-f0-9]{64}$/,
  sha512: /^[a-f0-9]{128}$/,
};

/** Why `text` is not a digest, or undefined when it is one we can verify (sha256 or sha512). */
export function digestProblem(text: string): string | undefined {
  const colon = text.indexOf(':');
  if (colon <= 0) return 'a digest is "algorithm:hex", e.g. sha256:<64 lowercase hex digits>';
  const algorithm = text.slice(0, colon);
  const encoded = text.slice(colon + 1);
  if (!ALGORITHM.test(algorithm) || !ENCODED.test(encoded)) return 'not of the form algorithm:encoded';
  const shape = REGISTERED[algorithm];
  if (!shape) return `unsupported digest algorithm "${algorithm}" (sha256 and sha512 are supported)`;
  if (!shape.test(encoded)) return `a ${algorithm} digest has ${algorithm === 'sha256' ? 64 : 128} lowercase hex digits`;
  return undefined;
}

export function isDigest(text: string): text is Digest {
  return digestProblem(text) === undefined;
}

export function parseDigest(text: string, context = 'digest'): Digest {
  const problem = digestProblem(text);
  if (problem) throw new UserError('DIGEST_INVALID', `invalid ${context} "${text}": ${problem}`, { subject: { kind: 'digest', name: text } });
  return text as Digest;
}

export function digestAlgorithm(digest: Digest): string {
  return digest.slice(0, digest.indexOf(':'));
}

/** The hex part, safe to use in a file name because parseDigest allowed only [a-f0-9]. */
export function digestHex(digest: Digest): string {
  return digest.slice(digest.indexOf(':') + 1);
}

export function sha256Of(bytes: Uint8Array | string): Digest {
  return sha256Digest(createHash('sha256').update(bytes).digest('hex'));
}

/** The digest of a sha256 computed here (a hasher's hex output, never user input). */
export function sha256Digest(hex: string): Digest {
  return `sha256:${hex}` as Digest;
}

export function newHasher(digest: Digest): Hash {
  return createHash(digestAlgorithm(digest));
}

/** Thrown when content does not hash to the digest it was fetched or stored under. */
export class DigestMismatchError extends Error {
  readonly code = 'DIGEST_MISMATCH';
  constructor(readonly expected: Digest, readonly actual: string, readonly where: string) {
    super(`${where}: content has digest ${actual}, expected ${expected}`);
    this.name = 'DigestMismatchError';
  }
}

/**
 * A pass-through stream that hashes what flows through it and fails at the end if the digest or the
 * length is wrong, so that no consumer ever sees a successful end on bad content.
 */
export class VerifyingStream extends Transform {
  private readonly hash: Hash;
  private seen = 0;

  constructor(
    private readonly expected: Digest,
    private readonly expectedSize: number | undefined,
    private readonly where: string,
    /** Bytes already verified elsewhere (a resumed download feeds the hash with them first). */
    prefix?: Hash,
    prefixLength = 0,
  ) {
    super();
    // Without the prefix's hash only the rest would be hashed, and every good blob would fail its check:
    // a caller bug (e.g. a source wrapper that hides verifiesBlobs from the copy), refused at once.
    if (prefixLength > 0 && prefix === undefined) throw new Error(`${where}: verifying from byte ${prefixLength} needs the hash of the bytes before it`);
    this.hash = prefix ?? newHasher(expected);
    this.seen = prefixLength;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.seen += chunk.length;
    if (this.expectedSize !== undefined && this.seen > this.expectedSize) {
      done(new DigestMismatchError(this.expected, `(more than ${this.expectedSize} bytes)`, this.where));
      return;
    }
    this.hash.update(chunk);
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    if (this.expectedSize !== undefined && this.seen !== this.expectedSize) {
      done(new DigestMismatchError(this.expected, `(${this.seen} of ${this.expectedSize} bytes)`, this.where));
      return;
    }
    const actual = `${digestAlgorithm(this.expected)}:${this.hash.digest('hex')}`;
    done(actual === this.expected ? null : new DigestMismatchError(this.expected, actual, this.where));
  }
}
