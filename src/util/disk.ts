// Free space of a filesystem, as an unprivileged writer sees it (statfs bavail, not bfree): the one
// measure behind bundle create's pre-flight, import's room check and the node's storage check; and the size
// of a file that may be absent.

import { stat, statfs } from 'node:fs/promises';
import { errnoCode } from './errors.js';

export async function freeBytes(dir: string): Promise<number> {
  const st = await statfs(dir);
  return st.bavail * st.bsize;
}

/** A file's size, or undefined when it does not exist (any other error is thrown). */
export async function sizeIfPresent(file: string): Promise<number | undefined> {
  try {
    return (await stat(file)).size;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  }
}
