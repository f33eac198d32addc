// Damage on purpose: the tests that prove a bad byte is found, named and never passed on.

import { open } from 'node:fs/promises';

/** Inverts the byte at `offset` of `file` in place. */
export async function flipByte(file: string, offset: number): Promise<void> {
  const handle = await open(file, 'r+');
  try {
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, offset);
    byte[0] = byte[0]! ^ 0xff;
    await handle.write(byte, 0, 1, offset);
  } finally {
    await handle.close();
  }
}
