// Free space of a filesystem, as an unprivileged writer sees it (statfs bavail, not bfree): the one
// measure behind bundle create's pre-flight, import's room check and the node's storage check.

import { statfs } from 'node:fs/promises';

export async function freeBytes(dir: string): Promise<number> {
  const st = await statfs(dir);
  return st.bavail * st.bsize;
}
