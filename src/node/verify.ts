// Verification of a bundle before the node trusts it: the bundle verifier's full check (volumes against the
// seal, every blob against its digest, the layout's structure), turned into one UserError naming every problem.

import { verifyBundle } from '../bundle/verify.js';
import { UserError } from '../util/errors.js';

const PROBLEMS_SHOWN = 5;

/** Throws BUNDLE_VERIFY_FAILED naming the bundle and its problems; `signal` is checked between steps. */
export async function verifyNodeBundle(sealPath: string, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) throw new UserError('PRELOAD_CANCELLED', 'cancelled before verifying the bundle');
  const report = await verifyBundle(sealPath);
  if (report.ok) return;
  const shown = report.problems.slice(0, PROBLEMS_SHOWN).map((p) => p.message);
  const more = report.problems.length > PROBLEMS_SHOWN ? `; and ${report.problems.length - PROBLEMS_SHOWN} more` : '';
  throw new UserError('BUNDLE_VERIFY_FAILED', `bundle ${report.bundle} failed verification: ${shown.join('; ')}${more}`, {
    hint: `run "pin-preload bundle verify ${sealPath}" for the full report; copy damaged volumes again or re-create the bundle`,
  });
}
