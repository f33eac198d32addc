// Pre-flight storage check: will the images not yet present fit on the runtime's image filesystem with the
// configured reserve left over? Real free space (statfs) against exact layer sizes from the bundle manifest,
// minus the layers the runtime already holds for the images that are present.

import { freeBytes } from '../util/disk.js';
import type { CriImageService } from '../cri/image-service.js';
import { UserError, errnoCode } from '../util/errors.js';
import { formatBytes } from '../util/size.js';
import type { RuntimeKind } from './config.js';

/** One layer of a desired image, with sizes from the bundle manifest's blob list. */
export interface LayerSize {
  readonly digest: string;
  /** Compressed (as stored in the bundle and in containerd's content store). */
  readonly size: number;
  readonly uncompressedSize: number;
}

export interface ImageLayers {
  /** "repo@sha256:…" */
  readonly name: string;
  readonly layers: readonly LayerSize[];
}

export interface StorageNeed {
  readonly layerCount: number;
  /** Bytes the missing images' layers take on disk once pulled. */
  readonly layerBytes: number;
  readonly reserveBytes: number;
  /** layerBytes + reserveBytes */
  readonly requiredBytes: number;
}

export interface StorageReport extends StorageNeed {
  readonly mountpoint: string;
  readonly availableBytes: number;
  readonly enough: boolean;
}

/**
 * What the images not in `present` need: each layer counted once however many images share it, and not at all
 * when an image in `present` has it (a shared base layer is on disk already: both runtimes store a layer
 * once). CRI-O keeps only the unpacked layer; containerd keeps the compressed blob in its content store as
 * well as the unpacked snapshot, so for containerd both count.
 *
 * Which layers the runtime holds comes from the bundle index: the layers of the images ImageStatus just
 * confirmed present. The CRI reports image sizes, not layers, and only containerd has a content API, so this
 * is the one source that works for both runtimes. Layers the runtime got from elsewhere (images not in any
 * bundle) are not known and are counted: the check can only err on the safe side.
 */
export function storageNeed(images: readonly ImageLayers[], present: ReadonlySet<string>, reserveBytes: number, runtime: RuntimeKind): StorageNeed {
  const onDisk = new Set<string>();
  for (const image of images) if (present.has(image.name)) for (const layer of image.layers) onDisk.add(layer.digest);
  const layers = new Map<string, LayerSize>();
  for (const image of images) {
    if (present.has(image.name)) continue;
    for (const layer of image.layers) if (!onDisk.has(layer.digest)) layers.set(layer.digest, layer);
  }
  let layerBytes = 0;
  for (const layer of layers.values()) layerBytes += layer.uncompressedSize + (runtime === 'containerd' ? layer.size : 0);
  return { layerCount: layers.size, layerBytes, reserveBytes, requiredBytes: layerBytes + reserveBytes };
}

/** The runtime's image filesystem: `[runtime] image_fs` if set, else the first ImageFsInfo mountpoint. */
export async function imageFilesystem(cri: Pick<CriImageService, 'imageFsInfo'>, override: string | undefined): Promise<string> {
  if (override !== undefined) return override;
  const filesystems = await cri.imageFsInfo();
  const mountpoint = filesystems.find((f) => f.mountpoint !== '')?.mountpoint;
  if (mountpoint === undefined) {
    throw new UserError('IMAGE_FS_UNKNOWN', 'the container runtime reported no image filesystem (CRI ImageFsInfo has no mountpoint)');
  }
  return mountpoint;
}

/** Bytes an unprivileged writer may still use on the filesystem holding `dir`. */
export async function availableBytes(dir: string): Promise<number> {
  try {
    return await freeBytes(dir);
  } catch (err) {
    throw new UserError('IMAGE_FS_UNREADABLE', `cannot read free space of ${dir}: ${errnoCode(err) ?? (err as Error).message}`, {
      subject: { kind: 'path', name: dir },
    });
  }
}

export function describeBytes(bytes: number): string {
  return `${formatBytes(bytes)} (${bytes} bytes)`;
}

/** Thrown before any pull when the missing images would not fit; carries the numbers for the state record. */
export class StorageInsufficientError extends UserError {
  constructor(readonly report: StorageReport) {
    super(
      'STORAGE_INSUFFICIENT',
      `not enough space on ${report.mountpoint} for ${report.layerCount} layers: required ${describeBytes(report.requiredBytes)} ` +
        `(layers ${describeBytes(report.layerBytes)} + reserve ${describeBytes(report.reserveBytes)}), available ${describeBytes(report.availableBytes)}`,
      { hint: 'free space on the image filesystem, grow it, or lower [storage] reserve; nothing was pulled', subject: { kind: 'path', name: report.mountpoint } },
    );
    this.name = 'StorageInsufficientError';
  }
}

export function storageReport(need: StorageNeed, mountpoint: string, available: number): StorageReport {
  // Nothing to pull means nothing to refuse, even on a full disk: a re-run must stay a no-op.
  return { ...need, mountpoint, availableBytes: available, enough: need.layerCount === 0 || need.requiredBytes <= available };
}

/** Checks and throws StorageInsufficientError when the need exceeds what is free. */
export async function checkStorage(options: {
  cri: Pick<CriImageService, 'imageFsInfo'>;
  imageFs: string | undefined;
  images: readonly ImageLayers[];
  present: ReadonlySet<string>;
  reserveBytes: number;
  runtime: RuntimeKind;
}): Promise<StorageReport> {
  const need = storageNeed(options.images, options.present, options.reserveBytes, options.runtime);
  const mountpoint = await imageFilesystem(options.cri, options.imageFs);
  const report = storageReport(need, mountpoint, await availableBytes(mountpoint));
  if (!report.enough) throw new StorageInsufficientError(report);
  return report;
}
