// How the node's runtime protects images from the kubelet's image GC, and pinning/unpinning through it:
// CRI-O reads a pinned_images drop-in (written wherever [runtime] pinned_images_file is set); containerd ≥ 1.7
// reports an image pinned when one of its image records carries io.cri-containerd.pinned=pinned (set through
// containerd's images API); containerd 1.6 has no way at all. Whatever we write, only the CRI's ImageStatus
// `pinned: true` counts as pinned (preload.ts checks it). Unpinning removes only the pin: an image is never
// deleted, the kubelet's GC takes it from there.

import type { CriRuntimeVersion } from '../cri/image-service.js';
import { ContainerdImages, PINNED_LABEL, PINNED_VALUE } from '../cri/containerd-images.js';
import type { NodeConfig } from './config.js';
import { applyPinnedImages, readPinnedImages, reloadAfterChange } from './runtime-files.js';
import { killPoint } from '../util/kill-point.js';

/** How images get pinned on this node, decided from what the runtime says it is (CRI Version). */
export type PinMethod =
  | { readonly kind: 'crio-pinned-images'; readonly runtime: string }
  /** `live`: the CRI takes a label change in at once (≥ 1.7.10); before, only when containerd restarts. */
  | { readonly kind: 'containerd-label'; readonly runtime: string; readonly live: boolean }
  | { readonly kind: 'none'; readonly runtime: string; readonly reason: string };

/** "1.7.24~ds1", "v1.7.0", "2.0.1-rc.1" → [major, minor, patch]; undefined when it does not start like one. */
function versionNumbers(version: string): [number, number, number] | undefined {
  const match = /^v?(\d+)\.(\d+)(?:\.(\d+))?/.exec(version.trim());
  return match ? [Number(match[1]), Number(match[2]), Number(match[3] ?? 0)] : undefined;
}

function atLeast(version: [number, number, number], minimum: [number, number, number]): boolean {
  for (let i = 0; i < 3; i++) if (version[i] !== minimum[i]) return version[i]! > minimum[i]!;
  return true;
}

/**
 * What containerd's CRI does with the pinned label (pkg/cri/store/image): 1.7.3 reads it when it loads an
 * image record (at start, or a new reference); 1.7.10 also takes a label change on an existing record in from
 * its image event ("cri: fix update of pinned label for images"). Before 1.7.3 (1.6 included) it never
 * reports an image pinned.
 */
export function containerdPinning(version: string): 'none' | 'after-restart' | 'live' {
  const numbers = versionNumbers(version);
  if (numbers === undefined || !atLeast(numbers, [1, 7, 3])) return 'none';
  return atLeast(numbers, [1, 7, 10]) ? 'live' : 'after-restart';
}

export function pinMethod(config: NodeConfig, version: CriRuntimeVersion): PinMethod {
  const runtime = `${version.runtimeName} ${version.runtimeVersion}`.trim();
  if (version.runtimeName === 'containerd') {
    const pinning = containerdPinning(version.runtimeVersion);
    if (pinning !== 'none') return { kind: 'containerd-label', runtime, live: pinning === 'live' };
    return { kind: 'none', runtime, reason: `${runtime} never reports an image pinned (containerd pins from 1.7.3 on, at once from 1.7.10)` };
  }
  if (config.runtime.pinnedImagesFile === '') {
    return { kind: 'none', runtime, reason: `[runtime] pinned_images_file is "", so nothing tells ${runtime} to pin` };
  }
  return { kind: 'crio-pinned-images', runtime };
}

/** The digest of a desired image ("repo@sha256:…" → "sha256:…"). */
function digestOf(name: string): string {
  return name.slice(name.lastIndexOf('@') + 1);
}

/** What `status` says under "GC protection" after a sync, given how many images the runtime did not report pinned. */
export function pinningDescription(method: PinMethod, config: NodeConfig, notPinned: number): string {
  if (method.kind === 'none') {
    return `not protected: ${method.reason}; the images are present, but the kubelet's image garbage collection may remove ${notPinned} unused image(s) under disk pressure, and the next preload pulls them again from the local mirror`;
  }
  const how = method.kind === 'crio-pinned-images' ? `CRI-O pinned_images (${config.runtime.pinnedImagesFile})` : `${method.runtime} (label ${PINNED_LABEL}=${PINNED_VALUE})`;
  if (notPinned === 0) return `pinned by ${how}`;
  if (method.kind === 'containerd-label' && !method.live) {
    return `${notPinned} image(s) labelled ${PINNED_LABEL}=${PINNED_VALUE} but not reported pinned yet: ${method.runtime} takes a label change in only when containerd restarts (1.7.10 and later at once)`;
  }
  return `${notPinned} image(s) present but not reported pinned by the runtime although pinned through ${how}`;
}

/** The status text before any sync recorded one. */
export function pinningBeforeSync(config: NodeConfig): string {
  return config.runtime.kind === 'containerd'
    ? 'no preload has completed yet (containerd pins from 1.7.3 on; 1.6 cannot: see docs/node.md)'
    : 'no preload has completed yet';
}

export interface PinContext {
  readonly config: NodeConfig;
  readonly log: (line: string) => void;
}

async function withContainerd<T>(config: NodeConfig, fn: (images: ContainerdImages) => Promise<T>): Promise<T> {
  const images = await ContainerdImages.connect(config.runtime.endpoint);
  try {
    return await fn(images);
  } finally {
    images.close();
  }
}

/** Whether, after a change, waiting for ImageStatus to report `pinned` can end in anything but a timeout. */
export function reportsPinsSoon(method: PinMethod): boolean {
  return method.kind === 'crio-pinned-images' || (method.kind === 'containerd-label' && method.live);
}

export interface PinOutcome {
  /** Something was written: the runtime needs a moment before ImageStatus reports it. */
  readonly changed: boolean;
  readonly changedFiles: readonly string[];
  readonly reloads: number;
}

const UNCHANGED: PinOutcome = { changed: false, changedFiles: [], reloads: 0 };

/**
 * Writes the pinned-images file (when one is configured) listing `names`, reloading the runtime if it changed.
 * It is CRI-O's mechanism; on a containerd node it is written only when the configuration asks for it.
 */
async function applyPinnedFile(ctx: PinContext, names: readonly string[]): Promise<PinOutcome> {
  const file = ctx.config.runtime.pinnedImagesFile;
  if (!(await applyPinnedImages(file, names))) return UNCHANGED;
  return { changed: true, changedFiles: [file], reloads: await reloadAfterChange(ctx, [file], 'pinned images') };
}

/**
 * Pins `names` (every one confirmed present by ImageStatus just before): the pinned-images file lists exactly
 * them; on containerd ≥ 1.7 every image record pointing at one of their digests gets the pinned label.
 */
export async function pinImages(ctx: PinContext, method: PinMethod, names: readonly string[]): Promise<PinOutcome> {
  const file = await applyPinnedFile(ctx, names);
  if (method.kind !== 'containerd-label' || names.length === 0) return file;
  const labelled = await withContainerd(ctx.config, async (images) => {
    let count = 0;
    for (const record of await images.recordsFor(names.map(digestOf))) {
      if (record.labels[PINNED_LABEL] === PINNED_VALUE) continue;
      await images.setLabel(record, PINNED_LABEL, PINNED_VALUE);
      count++;
      killPoint(`preload:after-label-${count}`);
    }
    return count;
  });
  if (labelled > 0) ctx.log(`labelled ${labelled} containerd image record(s) ${PINNED_LABEL}=${PINNED_VALUE}`);
  return { ...file, changed: file.changed || labelled > 0 };
}

/**
 * Removes the pin of images that left the desired set (`leaving`), keeping every pin of `desired`: the
 * pinned-images file loses their lines (and the runtime is reloaded); containerd's records lose the label,
 * except records whose digest a desired image still names. No image is deleted.
 */
export async function unpinImages(ctx: PinContext, method: PinMethod, leaving: readonly string[], desired: readonly string[]): Promise<PinOutcome> {
  if (leaving.length === 0) return UNCHANGED;
  const gone = new Set(leaving);
  const listed = await readPinnedImages(ctx.config.runtime.pinnedImagesFile);
  const kept = listed.filter((name) => !gone.has(name));
  const file = kept.length === listed.length ? UNCHANGED : await applyPinnedFile(ctx, kept);
  if (method.kind !== 'containerd-label') return file;
  const stillWanted = new Set(desired.map(digestOf));
  const digests = leaving.map(digestOf).filter((d) => !stillWanted.has(d));
  if (digests.length === 0) return file;
  const removed = await withContainerd(ctx.config, async (images) => {
    let count = 0;
    for (const record of await images.recordsFor(digests)) {
      if (record.labels[PINNED_LABEL] === undefined) continue;
      await images.setLabel(record, PINNED_LABEL, undefined);
      count++;
    }
    return count;
  });
  if (removed > 0) ctx.log(`removed ${PINNED_LABEL} from ${removed} containerd image record(s) of ${leaving.length} image(s) no longer bundled`);
  return { ...file, changed: file.changed || removed > 0 };
}
