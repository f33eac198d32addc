// A bundle spec (--spec FILE) as the option values of `bundle plan` and `bundle create`: a flag given on the
// command line wins, the spec fills in the rest (bundles/README.md, "Flags and the spec").

import type { BundleSpec } from '../plan/bundle-spec.js';
import { flagOrigin, originLabel, type OptionOrigin } from '../util/option-origin.js';
import type { SelectionOptionValues } from './selection-options.js';
import type { SignatureOptionValues } from './signature-options.js';

/** The option values a spec key can stand for. */
export interface SpecOptionValues extends SelectionOptionValues, SignatureOptionValues {
  readonly since?: string;
}

/** Reads --spec (if given) and returns it with the options it fills in; without --spec, the options as given. */
export async function withSpecOptions<T extends SpecOptionValues>(options: T): Promise<{ options: T; spec?: BundleSpec }> {
  if (options.spec === undefined) return { options };
  const { readBundleSpec } = await import('../plan/bundle-spec.js');
  const spec = await readBundleSpec(options.spec);
  return { options: { ...options, ...specFills(options, spec) }, spec };
}

/** Where an option's value came from: the flag when it was given (or without a spec), else the spec's key and file. */
export function optionOrigin(given: SpecOptionValues, flag: keyof SpecOptionValues, key: string): OptionOrigin {
  return given[flag] !== undefined || given.spec === undefined ? flagOrigin(`--${key}`) : { kind: 'spec', flag: `--${key}`, key, file: given.spec };
}

/** How errors name an option: the flag when it was given, else the spec's key and file ("since (ocp.toml)"). */
export function optionSource(given: SpecOptionValues, flag: keyof SpecOptionValues, key: string): string {
  return originLabel(optionOrigin(given, flag, key));
}

/**
 * The values the spec gives for options the command line left unset. The channel is one choice with its
 * versions: --channel replaces the spec's channel and its version keys; --version, --min-version or
 * --max-version alone replace its version keys and keep its channel. The switches (--signatures,
 * --allow-unsigned-releases) are on when the flag or the spec says so. `release`, `images`, `images-from` and
 * `platforms` are merged by buildSelection; `output`, `split-size` and `sign-key` by bundle create.
 */
export function specFills(options: SpecOptionValues, spec: BundleSpec): SpecOptionValues {
  const versionFlags = options.version !== undefined || options.minVersion !== undefined || options.maxVersion !== undefined;
  const channel = options.channel === undefined ? spec.channel : undefined;
  const versions = channel !== undefined && !versionFlags ? channel : undefined;
  return {
    ...(channel !== undefined ? { channel: channel.name } : {}),
    ...(versions?.version !== undefined ? { version: versions.version } : {}),
    ...(versions?.minVersion !== undefined ? { minVersion: versions.minVersion } : {}),
    ...(versions?.maxVersion !== undefined ? { maxVersion: versions.maxVersion } : {}),
    ...(options.graphUrl === undefined && spec.graphUrl !== undefined ? { graphUrl: spec.graphUrl } : {}),
    ...(options.signatures !== true && spec.signatures === true ? { signatures: true } : {}),
    ...(options.signatureStore === undefined && spec.signatureStore !== undefined ? { signatureStore: spec.signatureStore } : {}),
    ...(options.releaseKeyring === undefined && spec.releaseKeyring !== undefined ? { releaseKeyring: spec.releaseKeyring } : {}),
    ...(options.allowUnsignedReleases !== true && spec.allowUnsignedReleases === true ? { allowUnsignedReleases: true } : {}),
    ...(options.since === undefined && spec.since !== undefined ? { since: spec.since } : {}),
  };
}
