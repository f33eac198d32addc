// Uncompressed layer sizes learned cheaply after download: a gzip stream's last 4 bytes (ISIZE) are the
// uncompressed size mod 2^32, exact when the compressed size leaves only one candidate.

import { layerCompression } from '../oci/media-types.js';
import type { UncompressedSize } from './bundle-manifest.js';

const TWO_32 = 2 ** 32;
/** Deflate expands at most ~1032:1; stored blocks cost 5 bytes per 65535; gzip framing ≥ 18 bytes. */
const MAX_RATIO = 1032;
const HEADER_SLACK = 1024;

/** The range an uncompressed size can lie in for a single-member gzip stream of `compressed` bytes. */
export function gzipUncompressedBounds(compressed: number): { min: number; max: number } {
  const framing = 18 + HEADER_SLACK + 5 * Math.ceil(compressed / 65535);
  return { min: Math.max(0, compressed - framing), max: compressed * MAX_RATIO + HEADER_SLACK };
}

/**
 * The uncompressed size implied by ISIZE: exact when only one ISIZE + k·2^32 fits the bounds, otherwise
 * the candidate nearest the plan's estimate, still marked estimated. Exact assumes one gzip member
 * (what docker, buildah and OpenShift's builds write); a multi-member stream's ISIZE covers only its last.
 */
export function sizeFromGzipTrailer(isize: number, compressed: number, estimate: number): UncompressedSize {
  const { min, max } = gzipUncompressedBounds(compressed);
  const first = Math.max(0, Math.ceil((min - isize) / TWO_32));
  const last = Math.floor((max - isize) / TWO_32);
  if (last < first) return { size: estimate, estimated: true };
  if (first === last) return { size: isize + first * TWO_32, estimated: false };
  const k = Math.min(last, Math.max(first, Math.round((estimate - isize) / TWO_32)));
  return { size: isize + k * TWO_32, estimated: true };
}

/** Whether a blob of this media type ends with a gzip trailer worth reading. */
export function hasGzipTrailer(mediaType: string, size: number): boolean {
  return layerCompression(mediaType) === 'gzip' && size >= 18;
}
