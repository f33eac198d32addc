// `pin-preload bundle plan`: resolve a selection to digests and show what a bundle would hold and weigh,
// fetching manifests only (no layer is downloaded, apart from the release payload's top layer).

import type { Command } from 'commander';
import { MediaType } from '../oci/media-types.js';
import { formatPlatform } from '../oci/platform.js';
import { formatReference } from '../oci/reference.js';
import type { BundlePlan, PlannedImage } from '../plan/plan.js';
import { COMPRESSED_LAYER_RATIO } from '../plan/plan.js';
import { formatBytes } from '../util/size.js';
import { action, exitWhenFlushed, printJson } from './run-command.js';
import { addSelectionOptions, selectionFromOptions } from './selection-options.js';
import { addSignatureOptions, applySignatureOptions, checkSignatureOptions } from './signature-options.js';
import { optionSource, withSpecOptions, type SpecOptionValues } from './spec-options.js';

export const SINCE_HELP =
  'make a delta: leave out the layers PREV already has (PREV: a bundle, its .seal.json, or a node inventory from "pin-preload inventory"); every manifest and config is still carried, and the bundle records as its bases PREV, or the bundles of the inventory it leaves layers to';

export function registerBundlePlan(bundle: Command): void {
  const command = bundle
    .command('plan')
    .description('resolve a release and images to digests and show what a bundle of them would hold (fetches manifests only)')
    .option('--json', 'print the plan as JSON (schemaVersion 1, see docs/plan-json.md)')
    .option('--since <prev>', SINCE_HELP);
  addSignatureOptions(addSelectionOptions(command)).action(
    action(async (given: SpecOptionValues & { json?: boolean }) => {
      (await import('../util/http-pool.js')).keepHttpParserBaseline();
      const { options, spec } = await withSpecOptions(given);
      const signatureOptions = await checkSignatureOptions(options, given);
      // PREV is read before the plan's registry round trips: a wrong --since fails at once.
      const { planSince, readPrevious } = await import('../plan/delta.js');
      const previous = options.since !== undefined ? await readPrevious(options.since, optionSource(given, 'since', 'since')) : undefined;
      const { selection, source, concurrency } = await selectionFromOptions(options, spec, given);
      const [{ planBundle }, { dedupRatio, planToJson }] = await Promise.all([import('../plan/resolve.js'), import('../plan/plan-json.js')]);
      try {
        const plan = planSince(await applySignatureOptions(await planBundle(source, selection, { concurrency, signatures: options.signatures === true }), signatureOptions), previous);
        if (options.json) printJson(planToJson(plan));
        else process.stdout.write(formatPlan(plan, dedupRatio(plan)));
      } finally {
        await source.close();
      }
      exitWhenFlushed();
    }),
  );
}

const SHORT_TYPES: Record<string, string> = {
  [MediaType.ociManifest]: 'oci-manifest',
  [MediaType.ociIndex]: 'oci-index',
  [MediaType.dockerManifest]: 'docker-manifest',
  [MediaType.dockerManifestList]: 'docker-list',
};

function imageLine(image: PlannedImage): string[] {
  const name = image.origin === 'component' ? `${image.component} ` : `${image.requestedAs} `;
  return [
    image.origin,
    name,
    formatReference(image.reference),
    SHORT_TYPES[image.mediaType] ?? image.mediaType,
    image.platforms.length > 0 ? image.platforms.map(formatPlatform).join(',') : '-',
  ];
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => `  ${r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ')}`.trimEnd()).join('\n');
}

export function formatPlan(plan: BundlePlan, dedup: number): string {
  const out: string[] = [];
  for (const c of plan.channels) {
    const how = c.mode === 'version' ? c.maxVersion : c.mode === 'shortest-path' ? `shortest update path ${c.minVersion} → ${c.maxVersion}` : `every release from ${c.minVersion} to ${c.maxVersion}`;
    out.push(`Channel:    ${c.name} (arch ${c.arch}): ${how}`);
    out.push(`            ${c.versions.join(c.mode === 'shortest-path' ? ' → ' : ', ')}`);
  }
  for (const r of plan.releases) {
    out.push(`Release:    ${r.requestedAs}`);
    if (r.requestedAs !== formatReference(r.reference)) out.push(`            ${formatReference(r.reference)}`);
    const blocked = r.componentCount - r.components.length;
    out.push(`            version ${r.version || '(unknown)'}, ${r.componentCount} components${blocked > 0 ? ` (${blocked} blocked)` : ''}${r.previous?.length ? `, updates from ${r.previous.join(', ')}` : ''}${r.signatures ? `, ${r.signatures.length} signature(s)` : ''}`);
  }
  if (plan.blocked.length > 0) {
    out.push(`Blocked:    ${plan.blocked.length} image(s) left out by blockedImages`);
    for (const b of plan.blocked) out.push(`            ${b.requestedAs}  (matches "${b.pattern}", ${b.patternOrigin})`);
  }
  if (plan.signatures) out.push(`Signatures: ${plan.signatures.artifacts} signature(s) and referrer(s) of ${plan.signatures.subjects} image(s)`);
  out.push(`Platforms:  ${plan.platforms.map(formatPlatform).join(', ') || '-'}`);
  out.push('');
  out.push(`Images (${plan.images.length}):`);
  out.push(table([['ORIGIN', 'NAME', 'SOURCE BY DIGEST', 'TYPE', 'PLATFORMS'], ...plan.images.map(imageLine)]));
  out.push('');
  const byRole = (role: string) => plan.blobs.filter((b) => b.role === role).length;
  const t = plan.totals;
  const estimated = plan.blobs.some((b) => b.uncompressedEstimated);
  out.push(`Unique blobs:        ${t.uniqueBlobs} (${byRole('manifest')} manifests, ${byRole('config')} configs, ${byRole('layer')} layers)`);
  out.push(`Unique bytes:        ${formatBytes(t.uniqueBytes)} (${t.uniqueBytes} bytes, after deduplication)`);
  out.push(`Bytes with repeats:  ${formatBytes(t.bytesWithRepeats)} (each image counted on its own)`);
  out.push(`Dedup ratio:         ${dedup.toFixed(2)}x`);
  const d = plan.delta;
  if (d) {
    out.push(`Delta since:         ${d.since} (${d.sinceKind}); ${d.bases.length > 0 ? `base ${d.bases.map((b) => `${b.name} (${b.manifestDigest})`).join(', ')}` : 'no base (the node holds none of its layers: a full bundle)'}`);
    out.push(`  New:               ${d.newBlobs} blobs, ${formatBytes(d.newBytes)} (${d.newBytes} bytes) the base lacks`);
    out.push(`  Carried:           ${d.carriedBlobs} manifests and configs, ${formatBytes(d.carriedBytes)} (${d.carriedBytes} bytes) the base has too`);
    out.push(`  Left to the base:  ${d.baseBlobs.length} layers, ${formatBytes(d.baseBytes)} (${d.baseBytes} bytes)`);
  }
  out.push(`Uncompressed:        ${estimated ? '~' : ''}${formatBytes(t.uncompressedBytes)}${estimated ? ` (estimated: compressed layers counted ${COMPRESSED_LAYER_RATIO}x their size)` : ''}`);
  return `${out.join('\n')}\n`;
}
