// How `bundle verify` (and `import`) hash a bundle's bytes: with the volume checksums (one shared read for all
// workers) or without (workers that read for themselves), and starting those workers before verify's modules load.

import type { BundleFiles } from './reader.js';
import type { VerifyOptions } from './verify.js';
import { prestartHashWorkers } from './hash-pipeline.js';

/** Volume checksums when asked, or when without a readable layout they are all that can be checked; never without a seal. */
export function wantsVolumeChecksums(files: BundleFiles, options: VerifyOptions, hasLayout: boolean): boolean {
  return files.seal !== undefined && (options.volumeChecksums === true || !hasLayout);
}

/**
 * Starts the workers verify will hash the blobs with, before the caller loads verify and reads the seal and the
 * manifest, so their start overlaps that work. Only the options are known yet: with volume checksums asked for,
 * verify uses the shared read and none are started; when it falls back to the shared read later (an unsealed
 * bundle's or an unreadable layout), the started ones stay idle, and idle they do not keep the process alive.
 */
export function prestartVerifyWorkers(options: Pick<VerifyOptions, 'volumeChecksums'>): void {
  if (options.volumeChecksums !== true) prestartHashWorkers();
}
