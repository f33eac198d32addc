// Damage on purpose: the tests that prove a bad byte is found, named and never passed on.

import { open } from 'node:fs/promises';

/** Flips the bits `mask` selects (all of them by default) of the byte at `offset` of `file`, in place. */
export async function flipByte(file: string, offset: number, mask = 0xff): Promise<void> {
  const handle = await open(file, 'r+');
  try {
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, offset);
    byte[0] = byte[0]! ^ mask;
    await handle.write(byte, 0, 1, offset);
  } finally {
    await handle.close();
  }
}
