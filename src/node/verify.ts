// Verification of a bundle before the node trusts it: the bundle verifier's full check (volumes against the
// seal, every blob against its digest, the layout's structure, the signature when a trusted key is set),
// turned into one UserError naming every problem.

import { verifyBundle, type VerifyReport } from '../bundle/verify.js';
import { checkSignature, loadPublicKey } from '../bundle/signing.js';
import { sealedBundlePath, SIGNATURE_SUFFIX } from '../bundle/format.js';
import type { BundleFiles } from '../bundle/reader.js';
import { bundleReadFailure, readBundleFile } from '../bundle/volume-io-error.js';
import { errnoCode, UserError } from '../util/errors.js';

const PROBLEMS_SHOWN = 5;

export interface NodeVerifyOptions {
  readonly signal?: AbortSignal | undefined;
  /** [paths] trusted_key: when set, a bundle must carry a valid signature by this Ed25519 public key. */
  readonly trustedKey?: string | undefined;
  /** The bundle's files as located already (a sync's open bundle): its seal is not read again. */
  readonly files?: BundleFiles | undefined;
}

/** Throws BUNDLE_VERIFY_FAILED naming the bundle and its problems; `signal` is checked between steps. */
export async function verifyNodeBundle(sealPath: string, options: NodeVerifyOptions = {}): Promise<void> {
  if (options.signal?.aborted) throw new UserError('PRELOAD_CANCELLED', 'cancelled before verifying the bundle');
  const report = await verifyBundle(options.files ?? sealPath, options.trustedKey ? { trustedKey: options.trustedKey } : {});
  if (!report.ok) throw verifyFailure(report, sealPath, options.trustedKey);
}

/** BUNDLE_VERIFY_FAILED for a failed report: the bundle, its first problems, how to see them all. */
export function verifyFailure(report: VerifyReport, sealPath: string, trustedKey: string | undefined): UserError {
  const shown = report.problems.slice(0, PROBLEMS_SHOWN).map((p) => p.message);
  const more = report.problems.length > PROBLEMS_SHOWN ? `; and ${report.problems.length - PROBLEMS_SHOWN} more` : '';
  return new UserError('BUNDLE_VERIFY_FAILED', `bundle ${report.bundle} failed verification: ${shown.join('; ')}${more}`, {
    subject: { kind: 'bundle', name: sealPath },
    hint: `run "pin-preload bundle verify ${sealPath}${trustedKey ? ` --trusted-key ${trustedKey}` : ''}" for the full report; copy damaged volumes again or re-create the bundle`,
  });
}

/**
 * The signature check alone (reads only the seal and the .sig, no blob), done on every sync when a trusted
 * key is configured: the full verification is cached per bundle, but a key change must take effect at once.
 * `sealBytes`, when given, are the seal as the sync read it (it is not read again).
 */
export async function checkNodeBundleSignature(sealPath: string, trustedKey: string, sealBytes?: Buffer): Promise<void> {
  const bundle = sealedBundlePath(sealPath);
  const signaturePath = `${bundle}${SIGNATURE_SUFFIX}`;
  const readSeal = async () =>
    readBundleFile(sealPath, 'the seal').catch((err: unknown) => {
      throw bundleReadFailure(err, bundle);
    });
  const [seal, key] = await Promise.all([sealBytes ?? readSeal(), loadPublicKey(trustedKey)]);
  let signatureBytes: Buffer;
  try {
    signatureBytes = await readBundleFile(signaturePath, 'the signature');
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw bundleReadFailure(err, bundle);
    throw new UserError('BUNDLE_SIGNATURE_INVALID', `bundle ${bundle} is not signed (no ${signaturePath}), but [paths] trusted_key requires a signature by ${trustedKey}`, {
      subject: { kind: 'bundle', name: sealPath },
      hint: 'sign the bundle on the bastion (bundle create --sign-key) and copy its .sig next to the seal, or unset trusted_key',
    });
  }
  const check = checkSignature(seal, signatureBytes, key);
  if (!check.ok) {
    throw new UserError('BUNDLE_SIGNATURE_INVALID', `bundle ${bundle}: bad signature: ${check.reason}`, {
      subject: { kind: 'bundle', name: sealPath },
      hint: `the bundle was not signed by the key ${trustedKey} trusts, or it was changed after signing: do not use it`,
    });
  }
}
