// The options that fetch release signatures (`--signature-store`, `--release-keyring`,
// `--allow-unsigned-releases`), shared by `bundle plan` and `bundle create`, and applying them to a plan.

import type { Command } from 'commander';
import type { BundlePlan } from '../plan/plan.js';
import { UserError } from '../util/errors.js';

export interface SignatureOptionValues {
  readonly signatureStore?: string;
  readonly releaseKeyring?: string;
  readonly allowUnsignedReleases?: boolean;
}

export function addSignatureOptions(command: Command): Command {
  return command
    .option('--signature-store <url>', 'fetch each release\'s signatures from this store (URL/sha256=<hex>/signature-N), e.g. https://mirror.openshift.com/pub/openshift-v4/signatures/openshift/release')
    .option('--release-keyring <file>', 'with --signature-store: also verify each signature with gpgv against this keyring (binary or armored)')
    .option('--allow-unsigned-releases', 'with --signature-store: bundle a release the store has no signature for instead of refusing it');
}

/** Checked before any planning or download: a bad URL or an option without the store is a usage error. */
export function checkSignatureOptions(options: SignatureOptionValues): void {
  if (options.signatureStore === undefined && (options.releaseKeyring !== undefined || options.allowUnsignedReleases)) {
    throw new UserError('USAGE', `${options.releaseKeyring !== undefined ? '--release-keyring' : '--allow-unsigned-releases'} goes with --signature-store URL`, { exitCode: 2 });
  }
}

/** The plan with its releases' signatures when --signature-store is given; the plan as it is otherwise. */
export async function applySignatureOptions(plan: BundlePlan, options: SignatureOptionValues, signal?: AbortSignal): Promise<BundlePlan> {
  if (options.signatureStore === undefined) return plan;
  const [{ parseSignatureStore }, { withReleaseSignatures }] = await Promise.all([import('../release/signature-store.js'), import('../plan/release-signatures.js')]);
  return withReleaseSignatures(plan, {
    store: parseSignatureStore(options.signatureStore),
    ...(options.releaseKeyring !== undefined ? { keyring: options.releaseKeyring } : {}),
    ...(options.allowUnsignedReleases ? { allowUnsigned: true } : {}),
    ...(signal ? { signal } : {}),
  });
}
