// `pin-preload bundle inspect`: what a bundle holds, from its seal and manifest only (no blob is read).

import type { Command } from 'commander';
import { inspectBundle, type BundleInspection } from '../bundle/inspect.js';
import { formatBytes } from '../util/size.js';
import { action, printJson } from './run-command.js';

function formatInspection(b: BundleInspection): string {
  const out: string[] = [`Bundle:     ${b.bundle}`, `Created:    ${b.created} by ${b.tool}`];
  const signed = (r: { signatures: number }) => (r.signatures > 0 ? `, ${r.signatures} release signature(s)` : '');
  if (b.releases.length > 1) for (const r of b.releases) out.push(`Release:    ${r.version} (${r.name})${r.channel ? `, channel ${r.channel}` : ''}, ${r.components} components${signed(r)}`);
  else if (b.release) out.push(`Release:    ${b.release.version} (${b.release.name})${b.releases[0] ? signed(b.releases[0]) : ''}`);
  out.push(`Platforms:  ${b.platforms.join(', ') || '-'}`);
  out.push(`Size:       ${formatBytes(b.totalSize)} (${b.blobs} unique blobs, ${formatBytes(b.uniqueBytes)}; uncompressed ${b.uncompressedEstimated ? '~' : ''}${formatBytes(b.uncompressedBytes)})`);
  out.push(`Seal:       ${b.sealed ? 'present' : 'MISSING (incomplete bundle or seal not copied)'}`);
  out.push(`Signature:  ${b.signature.present ? `present, key ${b.signature.keyId ?? '?'} (check it with: bundle verify --trusted-key KEY.pub)` : 'none'}`);
  if (b.bases) out.push(`Delta of:   ${b.bases.map((base) => `${base.name} (${base.manifestDigest})`).join(', ')} (needs it in the same bundle dir)`);
  out.push('', `Volumes (${b.volumes.length}):`);
  for (const v of b.volumes) out.push(`  ${v.name}  ${formatBytes(v.size)}  ${!v.present ? 'MISSING' : v.sizeMatches ? 'present' : 'WRONG SIZE'}`);
  out.push('', `Images (${b.images.length}):`);
  for (const im of b.images) {
    const label = im.component ? `${im.origin}:${im.component}` : im.tag ? `${im.origin}:${im.tag}` : im.origin;
    const about = im.subject !== undefined ? `  of ${im.subject}${im.artifactType !== undefined ? ` (${im.artifactType})` : ''}` : '';
    out.push(`  ${im.name}  ${label}  ${im.platforms.join(',') || '-'}  ${formatBytes(im.size)}${about}`);
  }
  return `${out.join('\n')}\n`;
}

export function registerBundleInspect(bundle: Command): void {
  bundle
    .command('inspect <path>')
    .description('show the release, images, sizes, volumes and signature state of a bundle (reads no blob)')
    .option('--json', 'print as JSON (schemaVersion 1, see docs/json-output.md)')
    .action(
      action(async (file: string, options: { json?: boolean }) => {
        const inspection = await inspectBundle(file);
        if (options.json) printJson({ schemaVersion: 1, ...inspection });
        else process.stdout.write(formatInspection(inspection));
      }),
    );
}
