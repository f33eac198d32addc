// The node's status as `pin-preload status` shows it: MachineConfigNode-like generations and conditions, the
// bundles, and a row per image. The JSON shape (schemaVersion 1) is documented in docs/status-json.md.

import type { BundleRecord, ImageRecord, NodeState, NodeStatus } from '../state/node-state.js';
import type { NodeConfig } from './config.js';
import { pinningBeforeSync } from './pinning.js';
import { describeBytes } from './storage-check.js';

export interface StatusJson {
  readonly schemaVersion: 1;
  readonly runtime: {
    readonly kind: string;
    readonly endpoint: string;
    /** The runtime as CRI Version named it at the last sync ("containerd 1.7.24"); "" before any. */
    readonly reported: string;
    readonly pinning: string;
  };
  readonly desiredGeneration: number;
  readonly currentGeneration: number;
  readonly lastFailedGeneration: number;
  readonly lastFailedGenerationError: string;
  readonly conditions: NodeStatus['conditions'];
  readonly storage: { readonly requiredBytes: number; readonly availableBytes: number } | null;
  readonly bundles: ReadonlyArray<{
    readonly path: string;
    readonly manifestDigest: string;
    readonly release: string | null;
    readonly images: number;
    readonly verified: boolean;
    readonly verifiedAt: string | null;
    readonly importedAt: string;
  }>;
  readonly summary: Readonly<Record<ImageRecord['state'], number>>;
  readonly images: ReadonlyArray<{
    readonly name: string;
    readonly state: ImageRecord['state'];
    readonly attempts: number;
    readonly lastError: string | null;
    readonly bundle: string;
    readonly updatedAt: string;
    readonly pinnedAt: string | null;
  }>;
  /** Images that left the desired set, most recent first: their pin is removed, the images are not. */
  readonly unpinned: ReadonlyArray<{
    readonly name: string;
    readonly bundle: string;
    readonly wasPinned: boolean;
    readonly leftAt: string;
    readonly unpinnedAt: string | null;
  }>;
  readonly updatedAt: string;
}

function bundleJson(b: BundleRecord): StatusJson['bundles'][number] {
  return {
    path: b.path,
    manifestDigest: b.manifestDigest,
    release: b.release ?? null,
    images: b.imageCount,
    verified: b.verified,
    verifiedAt: b.verifiedAt ?? null,
    importedAt: b.importedAt,
  };
}

export function statusJson(config: NodeConfig, state: NodeState): StatusJson {
  const status = state.status();
  const images = state.images();
  const summary = { pending: 0, present: 0, pinned: 0, failed: 0 };
  for (const image of images) summary[image.state]++;
  return {
    schemaVersion: 1,
    runtime: {
      kind: config.runtime.kind,
      endpoint: config.runtime.endpoint,
      reported: status.runtime,
      // A status nobody has written yet says so instead of "not pinned".
      pinning: status.pinning !== '' ? status.pinning : pinningBeforeSync(config),
    },
    desiredGeneration: status.desiredGeneration,
    currentGeneration: status.currentGeneration,
    lastFailedGeneration: status.lastFailedGeneration,
    lastFailedGenerationError: status.lastFailedGenerationError,
    conditions: status.conditions,
    storage: status.storage ?? null,
    bundles: state.bundles().map(bundleJson),
    summary,
    images: images.map((i) => ({ name: i.name, state: i.state, attempts: i.attempts, lastError: i.lastError ?? null, bundle: i.bundle, updatedAt: i.updatedAt, pinnedAt: i.pinnedAt ?? null })),
    unpinned: state.unpinnedImages().map((u) => ({ name: u.name, bundle: u.bundle, wasPinned: u.wasPinned, leftAt: u.leftAt, unpinnedAt: u.unpinnedAt ?? null })),
    updatedAt: status.updatedAt,
  };
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => `  ${r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ')}`.trimEnd());
}

function oneLine(text: string, max = 120): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length <= max ? flat : `${flat.slice(0, max - 1)}…`;
}

export function formatStatus(json: StatusJson): string {
  const out: string[] = [];
  const field = (label: string, value: string) => out.push(`${`${label}:`.padEnd(25)}${value}`);
  field('Runtime', `${json.runtime.kind} (${json.runtime.endpoint})${json.runtime.reported ? `: ${json.runtime.reported}` : ''}`);
  field('GC protection', json.runtime.pinning);
  field('Desired generation', String(json.desiredGeneration));
  field('Current generation', String(json.currentGeneration));
  if (json.lastFailedGeneration > 0) {
    field('Last failed generation', String(json.lastFailedGeneration));
    field('Last failure', oneLine(json.lastFailedGenerationError, 400));
  }
  if (json.storage) field('Storage', `required ${describeBytes(json.storage.requiredBytes)}, available ${describeBytes(json.storage.availableBytes)}`);
  out.push('', 'Conditions:');
  out.push(...table([
    ['TYPE', 'STATUS', 'REASON', 'SINCE', 'MESSAGE'],
    ...json.conditions.map((c) => [c.type, c.status, c.reason, c.lastTransitionTime || '-', oneLine(c.message) || '-']),
  ]));
  out.push('', `Bundles (${json.bundles.length}):`);
  if (json.bundles.length > 0) {
    out.push(...table([
      ['PATH', 'RELEASE', 'IMAGES', 'VERIFIED'],
      ...json.bundles.map((b) => [b.path, b.release ?? '-', String(b.images), b.verified ? 'yes' : 'no']),
    ]));
  }
  const s = json.summary;
  out.push('', `Images (${json.images.length}: ${s.pinned} pinned, ${s.present} present, ${s.pending} pending, ${s.failed} failed):`);
  if (json.images.length > 0) {
    out.push(...table([
      ['NAME', 'STATE', 'ATTEMPTS', 'LAST ERROR'],
      ...json.images.map((i) => [i.name, i.state, String(i.attempts), i.lastError ? oneLine(i.lastError) : '-']),
    ]));
  }
  if (json.unpinned.length > 0) {
    out.push('', `Unpinned (${json.unpinned.length}: no longer in any bundle; kept in the runtime, its garbage collection may remove them):`);
    out.push(...table([
      ['NAME', 'WAS PINNED', 'LEFT THE SET', 'UNPINNED AT'],
      ...json.unpinned.map((u) => [u.name, u.wasPinned ? 'yes' : 'no', u.leftAt, u.unpinnedAt ?? 'pending (next sync)']),
    ]));
  }
  return `${out.join('\n')}\n`;
}
