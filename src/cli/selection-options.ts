// The options that say what to bundle and where to fetch it from, shared by `bundle plan` and
// `bundle create`, and the one call that turns them into a checked Selection and an ImageSource.

import type { Command } from 'commander';
import { DEFAULT_CONCURRENCY } from '../plan/plan.js';
import type { BundleSpec } from '../plan/bundle-spec.js';
import type { Selection } from '../plan/selection.js';
import type { RegistryClient } from '../registry/index.js';
import { UserError } from '../util/errors.js';

/** What commander hands the action for the options added by addSelectionOptions. */
export interface SelectionOptionValues {
  readonly release?: string;
  readonly image?: string[];
  readonly imagesFrom?: string[];
  readonly spec?: string;
  readonly platform?: string[];
  readonly registriesConf?: string;
  readonly authfile?: string;
  readonly concurrency?: string;
}

export interface SelectionContext {
  readonly selection: Selection;
  /** The registry client; close it when done so its connections do not keep the process alive. */
  readonly source: RegistryClient;
  /** The spec given with --spec, for the keys that are not about selection (split-size, output, sign-key). */
  readonly spec?: BundleSpec;
  readonly concurrency: number;
}

/** Repeatable options; no commander default, so help does not print "(default: [])". */
const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

export function addSelectionOptions(command: Command): Command {
  return command
    .option('--release <ref>', 'OpenShift release image (tag or digest); its component images are included')
    .option('--image <ref>', 'an extra image by tag or digest (repeatable)', collect)
    .option('--images-from <file>', 'extra images from a PinnedImageSet YAML, a bundle spec or a list with one reference per line (repeatable)', collect)
    .option('--spec <file>', 'a bundle spec (TOML, see bundles/README.md); flags add images to it and override its release and platforms')
    .option('--platform <os/arch>', 'platform of multi-arch images to include, OS/ARCH[/VARIANT] or "all" (repeatable; default linux/amd64)', collect)
    .option('--registries-conf <file>', 'containers-registries.conf(5) file with mirrors and insecure registries (default: the system configuration, /etc/containers/registries.conf and its drop-ins, as skopeo reads it)')
    .option('--authfile <file>', 'containers-auth.json(5) credentials, credHelpers/credsStore honoured (default: REGISTRY_AUTH_FILE, then the usual auth.json locations)')
    .option('--concurrency <n>', `manifest fetches in flight at once (default ${DEFAULT_CONCURRENCY})`);
}

function parseConcurrency(text: string | undefined): number {
  if (text === undefined) return DEFAULT_CONCURRENCY;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 256) {
    throw new UserError('USAGE', `--concurrency must be a whole number from 1 to 256, not "${text}"`, { exitCode: 2 });
  }
  return n;
}

/** Reads the spec and image lists, checks every reference, and sets up the registry client. */
export async function selectionFromOptions(options: SelectionOptionValues): Promise<SelectionContext> {
  const concurrency = parseConcurrency(options.concurrency);
  // Loaded here, not at start-up: every command's --help and --version stay fast.
  const [{ readBundleSpec }, { buildSelection }, { createImageSource }] = await Promise.all([
    import('../plan/bundle-spec.js'),
    import('../plan/selection.js'),
    import('../registry/index.js'),
  ]);
  const spec = options.spec !== undefined ? await readBundleSpec(options.spec) : undefined;
  const selection = await buildSelection({
    ...(spec ? { spec } : {}),
    ...(options.release !== undefined ? { release: options.release } : {}),
    images: options.image ?? [],
    imagesFrom: options.imagesFrom ?? [],
    platforms: options.platform ?? [],
  });
  const source = await createImageSource({
    ...(options.registriesConf !== undefined ? { registriesConfFile: options.registriesConf } : {}),
    ...(options.authfile !== undefined ? { authfile: options.authfile } : {}),
    maxConcurrentRequests: concurrency,
  });
  return { selection, source, ...(spec ? { spec } : {}), concurrency };
}
