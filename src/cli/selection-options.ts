// The options that say what to bundle and where to fetch it from, shared by `bundle plan` and
// `bundle create`, and the one call that turns them into a checked Selection and an ImageSource.

import type { Command } from 'commander';
import { DEFAULT_CONCURRENCY } from '../plan/plan.js';
import { compareVersions, DEFAULT_GRAPH_URL } from '../release/update-graph.js';
import type { BundleSpec } from '../plan/bundle-spec.js';
import type { Selection } from '../plan/selection.js';
import type { RegistryClient } from '../registry/index.js';
import { UserError } from '../util/errors.js';
import type { OptionOrigin } from '../util/option-origin.js';
import { optionOrigin, optionSource } from './spec-options.js';

/** What commander hands the action for the options added by addSelectionOptions. */
export interface SelectionOptionValues {
  readonly release?: string;
  readonly channel?: string;
  readonly version?: string;
  readonly minVersion?: string;
  readonly maxVersion?: string;
  readonly graphUrl?: string;
  readonly image?: string[];
  readonly imagesFrom?: string[];
  readonly config?: string[];
  readonly spec?: string;
  readonly platform?: string[];
  readonly registriesConf?: string;
  readonly authfile?: string;
  readonly concurrency?: string;
  readonly signatures?: boolean;
}

export interface SelectionContext {
  readonly selection: Selection;
  /** The registry client; close it when done so its connections do not keep the process alive. */
  readonly source: RegistryClient;
  readonly concurrency: number;
}

/** Repeatable options; no commander default, so help does not print "(default: [])". */
export const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

export function addSelectionOptions(command: Command): Command {
  return command
    .option('--release <ref>', 'OpenShift release image (tag or digest); its component images are included')
    .option('--channel <name>', 'releases from an update channel (e.g. stable-4.16): with --version, or --min-version and --max-version (the shortest update path); alone, the newest')
    .option('--version <x.y.z>', 'with --channel: this release')
    .option('--min-version <x.y.z>', 'with --channel and --max-version: every release on the shortest update path from this one')
    .option('--max-version <x.y.z>', 'with --channel and --min-version: … to this one')
    .option('--graph-url <url>', `the update service's graph endpoint for --channel (default: UPDATE_URL_OVERRIDE, then ${DEFAULT_GRAPH_URL})`)
    .option('--image <ref>', 'an extra image by tag or digest (repeatable)', collect)
    .option('--images-from <file>', 'images from a PinnedImageSet YAML, an oc-mirror ImageSetConfiguration, a bundle spec or a list with one reference per line (repeatable)', collect)
    .option('--config <file>', 'an oc-mirror ImageSetConfiguration (same as --images-from; repeatable)', collect)
    .option('--spec <file>', 'a bundle spec (TOML, see bundles/README.md): what the bundle is made of; flags add images to it and override its other keys')
    .option('--platform <os/arch>', 'platform of multi-arch images to include, OS/ARCH[/VARIANT] or "all" (repeatable; default linux/amd64)', collect)
    .option('--registries-conf <file>', 'containers-registries.conf(5) file with mirrors and insecure registries (default: the system configuration, /etc/containers/registries.conf and its drop-ins, as skopeo reads it)')
    .option('--authfile <file>', 'containers-auth.json(5) credentials, credHelpers/credsStore honoured (default: REGISTRY_AUTH_FILE, then the usual auth.json locations)')
    .option('--signatures', "also bundle each image's sigstore signature (cosign's sha256-<hex>.sig tag) and its OCI 1.1 referrers (referrers API, or the sha256-<hex> fallback tag)")
    .option('--concurrency <n>', `manifest fetches in flight at once (default ${DEFAULT_CONCURRENCY})`);
}

function parseConcurrency(text: string | undefined): number {
  if (text === undefined) return DEFAULT_CONCURRENCY;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 256) {
    throw new UserError('USAGE', `--concurrency must be a whole number from 1 to 256, not "${text}"`, { subject: { kind: 'option', name: '--concurrency' } });
  }
  return n;
}

/**
 * Reads the image lists, checks every reference, and sets up the registry client. `spec` is --spec's file,
 * read by withSpecOptions, whose keys other than the images it merged into `options` already; `given` is the
 * command line before that merge, so that errors raised while planning name a value's origin (flag or spec key).
 */
export async function selectionFromOptions(options: SelectionOptionValues, spec?: BundleSpec, given: SelectionOptionValues = options): Promise<SelectionContext> {
  const concurrency = parseConcurrency(options.concurrency);
  // Loaded here, not at start-up: every command's --help and --version stay fast.
  const [{ buildSelection }, { createImageSource }] = await Promise.all([import('../plan/selection.js'), import('../registry/index.js')]);
  const versionFlag = [options.version && '--version', options.minVersion && '--min-version', options.maxVersion && '--max-version'].find(Boolean);
  if (options.channel === undefined && versionFlag) throw new UserError('USAGE', `${versionFlag} needs --channel NAME`, { subject: { kind: 'option', name: versionFlag } });
  refuseReversedRange(options, given);
  const graph = graphUrlOf(options, given);
  const selection = await buildSelection({
    ...(spec ? { spec } : {}),
    ...(options.release !== undefined ? { release: options.release } : {}),
    ...(options.channel !== undefined
      ? {
          channel: {
            name: options.channel,
            ...(options.version ? { version: options.version } : {}),
            ...(options.minVersion ? { minVersion: options.minVersion } : {}),
            ...(options.maxVersion ? { maxVersion: options.maxVersion } : {}),
            origin: optionSource(given, 'channel', 'channel'),
          },
        }
      : {}),
    ...(graph !== undefined ? { graphUrl: graph.url, graphUrlOrigin: graph.origin } : {}),
    images: options.image ?? [],
    imagesFrom: [...(options.imagesFrom ?? []), ...(options.config ?? [])],
    platforms: options.platform ?? [],
  });
  const source = await createImageSource({
    ...(options.registriesConf !== undefined ? { registriesConfFile: options.registriesConf } : {}),
    ...(options.authfile !== undefined ? { authfile: options.authfile } : {}),
    maxConcurrentRequests: concurrency,
  });
  return { selection, source, concurrency };
}

/**
 * A minimum version newer than the maximum, refused before the graph is fetched and named where the versions
 * were given: the flags replace the spec's version keys but keep its channel, so the channel's origin says
 * nothing about them.
 */
function refuseReversedRange(options: SelectionOptionValues, given: SelectionOptionValues): void {
  const { minVersion, maxVersion } = options;
  if (minVersion === undefined || maxVersion === undefined || compareVersions(minVersion, maxVersion) <= 0) return;
  const min = optionSource(given, 'minVersion', 'min-version');
  throw new UserError('USAGE', `${min} ${minVersion} is newer than ${optionSource(given, 'maxVersion', 'max-version')} ${maxVersion}`, { subject: { kind: 'option', name: '--min-version' } });
}

/**
 * The update graph endpoint and where it was given: --graph-url, the spec's graph-url (merged into `options`),
 * then UPDATE_URL_OVERRIDE, oc-mirror's variable for the same endpoint, so its users' setups carry over.
 */
function graphUrlOf(options: SelectionOptionValues, given: SelectionOptionValues): { url: string; origin: OptionOrigin } | undefined {
  if (options.graphUrl !== undefined) return { url: options.graphUrl, origin: optionOrigin(given, 'graphUrl', 'graph-url') };
  const fromEnv = process.env.UPDATE_URL_OVERRIDE;
  if (fromEnv === undefined || fromEnv === '') return undefined;
  return { url: fromEnv, origin: { kind: 'env', flag: '--graph-url', variable: 'UPDATE_URL_OVERRIDE' } };
}
