// `pin-preload bundle manifests`: the cluster objects for a bundle (PinnedImageSets per pool, and with
// --mirror-host the mirror sets), one YAML file each. Wiring and output only; the work is in src/cluster/.

import type { Command } from 'commander';
import path from 'node:path';
import type { BundleManifestsResult } from '../cluster/manifests.js';
import { UserError } from '../util/errors.js';
import { warnLine } from './command-log.js';
import { action, printJson } from './run-command.js';
import { collect } from './selection-options.js';

export interface ManifestOptionValues {
  readonly pool?: string[];
  readonly mirrorHost?: string;
  readonly name?: string;
}

/** The options `bundle manifests` and `bundle create --manifests` share. */
export function addManifestOptions(command: Command): Command {
  return command
    .option('--pool <name>', 'machine config pool whose nodes pin the images (repeatable; default master and worker)', collect)
    .option('--mirror-host <host[:port]>', 'a registry serving the bundle (e.g. "pin-preload serve" on a host the cluster reaches): also write an ImageDigestMirrorSet and an ImageTagMirrorSet pointing at it')
    .option('--name <name>', 'object name prefix (default: pin-preload-<bundle file name>)');
}

export interface CheckedManifestOptions {
  readonly pools: readonly string[];
  readonly mirrorHost?: string;
  readonly name?: string;
}

/** Checks --pool, --mirror-host and --name (before `bundle create` downloads anything). */
export async function checkManifestOptions(options: ManifestOptionValues): Promise<CheckedManifestOptions> {
  // Nothing to check (every `bundle create` without --manifests): skip loading the cluster modules and yaml.
  if (options.pool === undefined && options.mirrorHost === undefined && options.name === undefined) return { pools: [] };
  const [{ checkObjectName, checkPoolName }, { parseMirrorHost }] = await Promise.all([import('../cluster/manifests.js'), import('../cluster/mirror-sets.js')]);
  return {
    pools: (options.pool ?? []).map(checkPoolName),
    ...(options.mirrorHost !== undefined ? { mirrorHost: parseMirrorHost(options.mirrorHost) } : {}),
    ...(options.name !== undefined ? { name: checkObjectName(options.name) } : {}),
  };
}

export async function runBundleManifests(bundleFile: string, dir: string, options: CheckedManifestOptions): Promise<BundleManifestsResult> {
  const { writeBundleClusterManifests } = await import('../cluster/manifests.js');
  return writeBundleClusterManifests(bundleFile, dir, options);
}

export function formatManifestsResult(result: BundleManifestsResult): string {
  const lines = [`cluster manifests for ${result.bundle} written to ${result.dir}:`];
  for (const o of result.objects) lines.push(`  ${path.basename(o.file)}  ${o.kind} ${o.name}  (${o.entries} ${o.kind === 'PinnedImageSet' ? 'images' : o.kind === 'ConfigMap' ? 'release signatures' : 'repositories'})`);
  for (const f of result.removed) lines.push(`  removed ${path.basename(f)} (written by an earlier run, no longer produced)`);
  lines.push(`  ${result.pinnedImages} images pinned in pools ${result.pools.join(', ')}${result.mirrorHost ? `; mirror ${result.mirrorHost}` : '; no mirror sets (give --mirror-host to send pulls to a registry serving the bundle)'}`);
  lines.push(`  apply with: oc apply -f ${result.dir}`);
  return `${lines.join('\n')}\n`;
}

/** Each image no object can name, on stderr: the operator must know which images stay unpinned by the MCO. */
export function warnUnexpressible(result: BundleManifestsResult): void {
  for (const u of result.unexpressible) warnLine(`not in any ${u.object}: ${u.problem}`);
}

export function registerBundleManifests(bundle: Command): void {
  const command = bundle
    .command('manifests <bundle>')
    .description('write the cluster objects for a bundle: PinnedImageSets per pool, release signature ConfigMaps and, with --mirror-host, ImageDigestMirrorSet/ImageTagMirrorSet (one YAML file each)')
    .option('--output <dir>', 'directory to write the YAML files into (created if missing)')
    .option('--json', 'print a summary as JSON');
  addManifestOptions(command)
    .addHelpText('after', '\nSee docs/cluster-manifests.md. Images whose names a PinnedImageSet cannot hold are listed as warnings, never dropped silently.')
    .action(
      action(async (bundleFile: string, options: ManifestOptionValues & { output?: string; json?: boolean }) => {
        if (!options.output) throw new UserError('USAGE', 'bundle manifests needs --output DIR', { subject: { kind: 'option', name: '--output' } });
        const result = await runBundleManifests(bundleFile, options.output, await checkManifestOptions(options));
        warnUnexpressible(result);
        if (options.json) printJson(result);
        else process.stdout.write(formatManifestsResult(result));
      }),
    );
}
