// Opens a bundle (the tar, any volume of it, or its seal) for reading: the manifest, the seal, the volumes
// as one byte range, a header-only scan of the tar entries, and streams of any range across volumes.

import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { BLOB_ENTRY_PREFIX, blobEntryDigest, blobEntryName, describeEntry, MANIFEST_ENTRY, MAX_VOLUMES, SEAL_SUFFIX, SIGNATURE_SUFFIX, type BundleManifest, type BundleSeal } from './format.js';
import { parseSeal } from './seal.js';
import { publishInterrupted, WORK_DIR_SUFFIX } from './publish.js';
import { MAX_MANIFEST_SIZE, parseBundleManifest } from './bundle-manifest.js';
import { BLOCK, decodeHeader, isZeroBlock, paddedSize, TarHeaderError, type TarEntryType } from './tar-header.js';
import { VolumeSet, type Volume } from './volumes.js';
import { bundleReadFailure, nameIoError, readBundleFile } from './volume-io-error.js';
import { isDigest, sha256Of, type Digest } from '../oci/digest.js';
import { errnoCode, UserError } from '../util/errors.js';


export interface TarEntry {
  readonly name: string;
  readonly headerOffset: number;
  readonly dataOffset: number;
  readonly size: number;
  readonly type: TarEntryType;
}

export interface BlobLocation {
  readonly offset: number;
  readonly size: number;
}

/** Where a bundle's files are, found from any one of them without reading the volumes. */
export interface BundleFiles {
  readonly dir: string;
  /** The bundle's name: the unsplit tar's file name, or the split volumes' name without ".NNN". */
  readonly name: string;
  readonly sealPath: string;
  readonly seal?: BundleSeal;
  readonly sealBytes?: Buffer;
  readonly signaturePath?: string;
  /** From the seal; without a seal, the tar itself, or the consecutive NAME.001, NAME.002, … present. */
  readonly volumes: ReadonlyArray<{ readonly path: string; readonly size: number }>;
}

export interface OpenedBundle extends BundleFiles {
  readonly manifest: BundleManifest;
  readonly manifestBytes: Buffer;
  readonly totalSize: number;
  /** Every tar entry in order, reading only the 512-byte headers and seeking over the data. */
  scanEntries(): AsyncIterable<TarEntry>;
  /** Every blob's data range, from the header scan, checked against manifest.blobs. */
  locateBlobs(): Promise<Map<Digest, BlobLocation>>;
  /** [offset, offset+length) of the tar, across volumes, streamed in small positional reads. */
  createReadStream(offset: number, length: number): Readable;
  /** Closes the volume files (streams created earlier must have ended). */
  close(): Promise<void>;
}

async function exists(file: string): Promise<boolean> {
  try {
    await fs.stat(file);
    return true;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return false;
    throw err;
  }
}

async function fileSize(file: string): Promise<number | undefined> {
  try {
    const st = await fs.stat(file);
    return st.isFile() ? st.size : undefined;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  }
}

/** The bundle name behind `file`: "x.tar.seal.json", "x.tar.sig", "x.tar.002" and "x.tar" all name "x.tar". */
async function bundleName(dir: string, base: string): Promise<string> {
  if (base.endsWith(SEAL_SUFFIX)) return base.slice(0, -SEAL_SUFFIX.length);
  if (base.endsWith(SIGNATURE_SUFFIX)) return base.slice(0, -SIGNATURE_SUFFIX.length);
  const split = /^(.+)\.\d{3}$/.exec(base);
  if (split && !(await exists(path.join(dir, base + SEAL_SUFFIX)))) return split[1]!;
  return base;
}

/** Finds a bundle's seal, signature and volumes from any one of its files; reads only the seal. */
export async function locateBundle(file: string): Promise<BundleFiles> {
  const absolute = path.resolve(file);
  const dir = path.dirname(absolute);
  const name = await bundleName(dir, path.basename(absolute));
  if (await publishInterrupted(dir, name)) {
    throw new UserError('BUNDLE_PUBLISH_INTERRUPTED', `${path.join(dir, name)} is not a complete bundle: bundle create was interrupted while putting it in place (${name}${WORK_DIR_SUFFIX} says so)`, {
      subject: { kind: 'bundle', name: path.join(dir, name) },
    });
  }
  const sealPath = path.join(dir, name + SEAL_SUFFIX);
  const signaturePath = path.join(dir, name + SIGNATURE_SUFFIX);
  const signature = (await exists(signaturePath)) ? { signaturePath } : {};
  let sealBytes: Buffer | undefined;
  try {
    sealBytes = await readBundleFile(sealPath, 'the seal');
  } catch (err) {
    // No seal is an answer (an unsealed bundle); a seal that cannot be read is the media's error.
    if (errnoCode(err) !== 'ENOENT') throw bundleReadFailure(err, path.join(dir, name));
  }
  if (sealBytes) {
    const seal = parseSeal(sealBytes, name, sealPath);
    const volumes = seal.volumes.map((v) => ({ path: path.join(dir, v.name), size: v.size }));
    return { dir, name, sealPath, seal, sealBytes, ...signature, volumes };
  }
  const whole = await fileSize(path.join(dir, name));
  if (whole !== undefined) return { dir, name, sealPath, ...signature, volumes: [{ path: path.join(dir, name), size: whole }] };
  const volumes: Volume[] = [];
  for (let i = 1; i <= MAX_VOLUMES; i++) {
    const volumePath = path.join(dir, `${name}.${String(i).padStart(3, '0')}`);
    const size = await fileSize(volumePath);
    if (size === undefined) break;
    volumes.push({ path: volumePath, size });
  }
  if (volumes.length === 0) {
    throw new UserError('BUNDLE_NOT_FOUND', `no bundle at ${absolute}: neither ${name}, ${name}.001 nor ${name + SEAL_SUFFIX} exists`, {
      subject: { kind: 'path', name: absolute },
    });
  }
  return { dir, name, sealPath, ...signature, volumes };
}

/** Checks that every volume the seal lists is there with its sealed size (content is verify's job). */
async function checkVolumesPresent(files: BundleFiles): Promise<void> {
  for (const volume of files.volumes) {
    const size = await fileSize(volume.path);
    if (size === undefined) {
      throw new UserError('BUNDLE_VOLUME_MISSING', `bundle volume ${volume.path} is missing`, {
        subject: { kind: 'path', name: volume.path },
        hint: `copy every volume listed in ${files.sealPath} next to it`,
      });
    }
    if (size !== volume.size) {
      throw new UserError('BUNDLE_VOLUME_SIZE', `bundle volume ${volume.path} has ${size} bytes, the seal says ${volume.size}`, {
        subject: { kind: 'path', name: volume.path },
      });
    }
  }
}

function damaged(files: BundleFiles, why: string): UserError {
  return new UserError('BUNDLE_DAMAGED', `${path.join(files.dir, files.name)}: ${why}`, {
    subject: { kind: 'bundle', name: path.join(files.dir, files.name) },
  });
}

export async function* scanTar(files: BundleFiles, volumes: VolumeSet): AsyncGenerator<TarEntry> {
  const block = Buffer.alloc(BLOCK);
  let offset = 0;
  let previous: string | undefined;
  while (offset + BLOCK <= volumes.totalSize) {
    // A read error names the header by the entry before it: this one's name is in the bytes that failed.
    const what = previous === undefined ? 'the first tar header' : `the tar header after ${describeEntry(previous)}`;
    await volumes.read(block, offset, BLOCK).catch((err: unknown) => {
      throw nameIoError(err, what);
    });
    if (isZeroBlock(block)) return;
    let header;
    try {
      header = decodeHeader(block);
    } catch (err) {
      if (err instanceof TarHeaderError) throw damaged(files, `${err.message} at byte ${offset}`);
      throw err;
    }
    const entry: TarEntry = { name: header.name, headerOffset: offset, dataOffset: offset + BLOCK, size: header.size, type: header.type };
    if (entry.dataOffset + entry.size > volumes.totalSize) {
      throw damaged(files, `entry ${entry.name} at byte ${offset} runs past the end of the bundle (${volumes.totalSize} bytes)`);
    }
    yield entry;
    previous = entry.name;
    offset = entry.dataOffset + paddedSize(entry.size);
  }
  throw damaged(files, `the tar has no end-of-archive marker (${volumes.totalSize} bytes)`);
}

async function locateBlobs(files: BundleFiles, manifest: BundleManifest, volumes: VolumeSet): Promise<Map<Digest, BlobLocation>> {
  const found = new Map<Digest, BlobLocation>();
  for await (const entry of scanTar(files, volumes)) {
    if (entry.type !== 'file' || !entry.name.startsWith(BLOB_ENTRY_PREFIX)) continue;
    const digest = blobEntryDigest(entry.name);
    if (!isDigest(digest)) throw damaged(files, `tar entry ${entry.name} is not named after a sha256 digest`);
    found.set(digest, { offset: entry.dataOffset, size: entry.size });
  }
  const listed = new Set<string>();
  for (const blob of manifest.blobs) {
    listed.add(blob.digest);
    const at = found.get(blob.digest);
    if (!at) throw damaged(files, `blob ${blob.digest} is listed in ${MANIFEST_ENTRY} but has no tar entry ${blobEntryName(blob.digest)}`);
    if (at.size !== blob.size) throw damaged(files, `blob ${blob.digest} has ${at.size} bytes in the tar, ${MANIFEST_ENTRY} says ${blob.size}`);
  }
  for (const digest of found.keys()) {
    if (!listed.has(digest)) throw damaged(files, `the tar holds blob ${digest}, which ${MANIFEST_ENTRY} does not list`);
  }
  return found;
}

/** Reads the first tar entry, which must be pin-preload.json, and checks it against the seal's digest. */
export async function readBundleManifest(files: BundleFiles, volumes: VolumeSet): Promise<{ manifest: BundleManifest; manifestBytes: Buffer }> {
  if (volumes.totalSize < BLOCK) throw damaged(files, `too short to be a bundle (${volumes.totalSize} bytes)`);
  const first = await scanTar(files, volumes).next();
  if (first.done || first.value.name !== MANIFEST_ENTRY || first.value.type !== 'file') {
    throw damaged(files, `the first tar entry is ${first.done ? 'missing' : `"${first.value.name}"`}, expected ${MANIFEST_ENTRY}: not a pin-preload bundle`);
  }
  if (first.value.size > MAX_MANIFEST_SIZE) throw damaged(files, `${MANIFEST_ENTRY} is ${first.value.size} bytes, more than the ${MAX_MANIFEST_SIZE} allowed`);
  const manifestBytes = Buffer.alloc(first.value.size);
  await volumes.read(manifestBytes, first.value.dataOffset, first.value.size).catch((err: unknown) => {
    throw nameIoError(err, MANIFEST_ENTRY);
  });
  if (files.seal) {
    const actual = sha256Of(manifestBytes);
    if (actual !== files.seal.manifestDigest) {
      throw damaged(files, `${MANIFEST_ENTRY} has digest ${actual}, the seal ${files.sealPath} says ${files.seal.manifestDigest}`);
    }
  }
  return { manifest: parseBundleManifest(manifestBytes, path.join(files.dir, files.name)), manifestBytes };
}

/**
 * Reads only pin-preload.json (checked against the seal's manifestDigest): the seal, for a split bundle, and
 * the volume(s) holding that entry must be there, the other volumes need not be — what a bastion gets back
 * when only a bundle's small files are carried to it.
 */
export async function readManifestEntry(files: BundleFiles): Promise<{ manifest: BundleManifest; manifestBytes: Buffer }> {
  refuseUnsealedSplit(files);
  await checkFirstVolumePresent(files);
  const volumes = new VolumeSet(files.volumes);
  try {
    return await readBundleManifest(files, volumes);
  } catch (err) {
    throw bundleReadFailure(err, path.join(files.dir, files.name));
  } finally {
    await volumes.close();
  }
}

/** The manifest entry is at the start of the first volume: without it nothing about the bundle can be read. */
export async function checkFirstVolumePresent(files: BundleFiles): Promise<void> {
  const first = files.volumes[0]!;
  if (!(await fs.stat(first.path).then(() => true, () => false))) {
    throw new UserError('BUNDLE_VOLUME_MISSING', `bundle volume ${first.path} is missing; the bundle manifest is at its start`, {
      subject: { kind: 'path', name: first.path },
      hint: 'copy the first volume next to the seal',
    });
  }
}

/** Without a seal only a single tar is trusted as a whole; split volumes need the seal to say which. */
function refuseUnsealedSplit(files: BundleFiles): void {
  if (!files.seal && (files.volumes.length !== 1 || path.basename(files.volumes[0]!.path) !== files.name)) {
    throw new UserError('BUNDLE_UNSEALED', `${path.join(files.dir, files.name)} is split into volumes but its seal ${files.sealPath} is missing`, {
      subject: { kind: 'bundle', name: path.join(files.dir, files.name) },
    });
  }
}

/** Opens the bundle that `file` (the tar, any volume, or the seal) belongs to. */
export async function openBundle(file: string): Promise<OpenedBundle> {
  return openLocatedBundle(await locateBundle(file));
}

/**
 * Opens a bundle already located (its seal read once, by whoever located it). `known`: its manifest and blob
 * locations as a structure check just read them (bundle push), so they are not read again.
 */
export async function openLocatedBundle(files: BundleFiles, known?: { readonly manifest: BundleManifest; readonly manifestBytes: Buffer; readonly blobs: ReadonlyMap<Digest, BlobLocation> }): Promise<OpenedBundle> {
  refuseUnsealedSplit(files);
  await checkVolumesPresent(files);
  const volumes = new VolumeSet(files.volumes);
  try {
    const { manifest, manifestBytes } = known ?? (await readBundleManifest(files, volumes));
    return {
      ...files,
      manifest,
      manifestBytes,
      totalSize: volumes.totalSize,
      scanEntries: () => scanTar(files, volumes),
      locateBlobs: async () => (known ? new Map(known.blobs) : locateBlobs(files, manifest, volumes)),
      createReadStream: (offset, length) => volumes.createReadStream(offset, length),
      close: () => volumes.close(),
    };
  } catch (err) {
    await volumes.close();
    throw bundleReadFailure(err, path.join(files.dir, files.name));
  }
}

/** `size` bytes at `offset` of an opened bundle, in memory: for small entries (a manifest); callers bound the size. */
export async function readSmallRange(opened: Pick<OpenedBundle, 'createReadStream'>, offset: number, size: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of opened.createReadStream(offset, size)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
