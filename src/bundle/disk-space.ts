// Pre-flight free-space check for `bundle create`: refuse before any download when the output's
// filesystem cannot hold the bytes still to be written, with the numbers and what to do.

import { freeBytes } from '../util/disk.js';
import { formatBytes } from '../util/size.js';
import { UserError } from '../util/errors.js';

/** Room kept for the seal, the signature and filesystem metadata. */
export const DISK_MARGIN = 1024 * 1024;
/** Journal bytes per blob: an 8-byte progress slot and a ~90-byte done line, rounded up. */
export const JOURNAL_BYTES_PER_BLOB = 256;

/** Throws DISK_SPACE (exit 1) when `stillToWrite` + journal + margin does not fit in `dir`'s filesystem. */
export async function checkDiskSpace(dir: string, stillToWrite: number, blobCount: number): Promise<{ needed: number; available: number }> {
  const available = await freeBytes(dir);
  const needed = stillToWrite + blobCount * JOURNAL_BYTES_PER_BLOB + DISK_MARGIN;
  if (needed > available) {
    throw new UserError(
      'DISK_SPACE',
      `not enough free space in ${dir}: the bundle needs ${formatBytes(needed)} more (${needed} bytes), the filesystem has ${formatBytes(available)} (${available} bytes) available`,
      { subject: { kind: 'path', name: dir } },
    );
  }
  return { needed, available };
}
