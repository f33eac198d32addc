// Deterministic pseudo-random bytes for sample content: an AES-128-CTR keystream keyed by a label.
// Random-looking data does not compress, so layer sizes on disk stay close to the requested sizes.

import { createCipheriv, createHash } from 'node:crypto';

const CHUNK = 1024 * 1024;
const ZEROS = Buffer.alloc(CHUNK);

/** Yields exactly `size` bytes, the same for the same `label`, in chunks of at most 1 MiB. */
export function* keystream(label: string, size: number): Generator<Buffer> {
  const key = createHash('sha256').update(label).digest();
  const cipher = createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32));
  for (let left = size; left > 0; left -= CHUNK) {
    yield cipher.update(ZEROS.subarray(0, Math.min(CHUNK, left)));
  }
}

/** A fraction in [0, 1) derived from `label`: used to rank components without a shared PRNG state. */
export function fractionOf(label: string): number {
  return createHash('sha256').update(label).digest().readUInt32BE(0) / 2 ** 32;
}

/** Hex text derived from `label` (fake commit ids and the like). */
export function hexOf(label: string, length: number): string {
  return createHash('sha256').update(label).digest('hex').slice(0, length);
}
