// Verification of a bundle in the bundle dir before the node trusts it: the bundle verifier's checks
// (volumes against the seal, every blob against its digest), adapted to the node's needs.

import { openBundle } from '../bundle/reader.js';

/** Throws a UserError naming the bundle and what is wrong with it. */
export async function verifyNodeBundle(sealPath: string, _signal?: AbortSignal): Promise<void> {
  // Interim until src/bundle/verify.ts lands: the structural checks of the reader (manifest digest against
  // the seal, every listed blob present with its size).
  const opened = await openBundle(sealPath);
  try {
    await opened.locateBlobs();
  } finally {
    await opened.close();
  }
}
