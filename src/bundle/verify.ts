// `bundle verify`: proves every byte of a bundle in one streaming pass, hashing each at most once — every blob
// against its digest, every other byte equal to what the sealed manifest's layout prescribes — and the signature.

import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { blobEntryName, describeEntry, MANIFEST_ENTRY, SIGNATURE_SUFFIX, type BundleBase, type BundleManifest } from './format.js';
import { locateBundle, readBundleManifest, type BlobLocation, type BundleFiles, type TarEntry } from './reader.js';
import { pwriteAll, VolumeSet } from './volumes.js';
import { bundleReadFailure, nameIoError, placeIoError, readBundleFile, VolumeIoError } from './volume-io-error.js';
import { copyCancelled, hashRanges, hashRangesQueued, type HashOptions, type HashRange, type RangeHash, type VolumeOnDisk } from './hash-pipeline.js';
import { wantsVolumeChecksums } from './verify-hashing.js';
import { bundleFiles, placeEntries, type BundleLayout, type LayoutEntry } from './layout.js';
import { bundleSkeleton, type SkeletonPart, type SkeletonRegion } from './skeleton.js';
import { INDEX_ENTRY, OCI_LAYOUT_ENTRY, REF_NAME_ANNOTATION } from './oci-layout.js';
import { checkSignature, loadPublicKey } from './signing.js';
import { isDigest, sha256Digest, type Digest } from '../oci/digest.js';
import { ManifestError, parseManifest, referencedBlobs } from '../oci/manifest.js';
import { sizeIfPresent } from '../util/disk.js';
import { carriedSignatureCount, releaseSignatureProblems } from './release-signatures.js';

export type ProblemKind =
  | 'seal' | 'volume-missing' | 'volume-size' | 'volume-sha256' | 'volume-stale' | 'tar' | 'manifest'
  | 'blob-missing' | 'blob-size' | 'blob-digest' | 'blob-unreadable' | 'image-manifest' | 'index' | 'signature'
  | 'tar-header' | 'oci-layout' | 'padding' | 'end-of-archive' | 'release-signature';

export interface VerifyProblem {
  readonly kind: ProblemKind;
  /** The volume file, blob digest, image or file concerned. */
  readonly subject: string;
  /** The volume file the damage is in, when it is known to be in one. */
  readonly volume?: string;
  readonly message: string;
  readonly expected?: string;
  readonly found?: string;
}

export type SignatureState = 'valid' | 'invalid' | 'unsigned' | 'present-not-checked';

export interface VerifyReport {
  readonly bundle: string;
  readonly ok: boolean;
  readonly sealed: boolean;
  /** Whether each volume's sha256 was recomputed and compared with the seal (--volume-checksums). */
  readonly volumeChecksums: boolean;
  readonly volumes: ReadonlyArray<{ readonly path: string; readonly size: number; readonly ok: boolean }>;
  readonly images: number;
  readonly blobsChecked: number;
  /** Release signatures carried in pin-preload.json, each checked against its digest and release. */
  readonly releaseSignatures: number;
  readonly bytesRead: number;
  readonly signature: SignatureState;
  readonly problems: readonly VerifyProblem[];
  /** A delta's bases (bundle-manifest `bases`) and how many of its images' blobs they are to hold. */
  readonly bases?: readonly BundleBase[];
  readonly baseBlobs?: number;
}

export interface VerifyOptions {
  /** PEM Ed25519 public key; when given, a missing or wrong signature is a failure. */
  readonly trustedKey?: string;
  /**
   * Also recompute every volume's sha256 and compare it with the seal (hashes every byte a second time).
   * Not needed to prove the bytes: a volume whose blobs and skeleton match has the sealed content.
   */
  readonly volumeChecksums?: boolean;
  readonly onBytes?: (bytesRead: number, totalBytes: number) => void;
  /**
   * Copies every volume into this directory (DIR/<volume name>, created new, fsynced) while checking it:
   * each byte is read once and written from the buffer it was checked in — a blob's bytes by the worker
   * that hashes them, every other byte by the main thread that compares it with the skeleton (or, for
   * pin-preload.json, checks it against the seal). So the copy is what was checked, hashed once; with
   * volumeChecksums the old double hash (volume sha256 and blob digests of one shared read). Volumes
   * missing or short are not copied whole; the report names them.
   */
  readonly copyInto?: string;
  /** A gpg keyring (binary or armored): also verify every carried release signature with gpgv. */
  readonly releaseKeyring?: string;
  /** Stops a copy (copyInto) at the next chunk with an ABORT_ERR error. */
  readonly signal?: AbortSignal;
}

const MAX_JSON_BLOB = 16 * 1024 * 1024;


/** Files NAME.NNN next to the bundle that its seal does not list (left from an earlier, larger bundle). */
async function staleVolumes(files: BundleFiles): Promise<string[]> {
  const listed = new Set(files.volumes.map((v) => path.basename(v.path)));
  const names = await fs.readdir(files.dir);
  return names
    .filter((n) => !listed.has(n) && n.startsWith(`${files.name}.`) && /^\d{3}$/.test(n.slice(files.name.length + 1)))
    .sort()
    .map((n) => path.join(files.dir, n));
}

async function readSmall(volumes: VolumeSet, entry: TarEntry): Promise<Buffer | undefined> {
  if (entry.size > MAX_JSON_BLOB) return undefined;
  const bytes = Buffer.alloc(entry.size);
  try {
    await volumes.read(bytes, entry.dataOffset, entry.size);
    return bytes;
  } catch {
    return undefined;
  }
}

/** Every image's manifests parse and reference only blobs in the bundle; index.json names every image. */
async function checkStructure(manifest: BundleManifest, entries: readonly TarEntry[], goodBlobs: ReadonlySet<string>, volumes: VolumeSet, problems: VerifyProblem[]): Promise<void> {
  const byName = new Map(entries.map((e) => [e.name, e]));
  const inBundle = new Set(manifest.blobs.map((b) => b.digest as string));
  // A delta leaves layers to its bases (baseBlobs); manifests and configs it must hold itself.
  const fromBase = new Set<string>(manifest.baseBlobs ?? []);
  const reachable = (d: string) => inBundle.has(d) || fromBase.has(d);
  const blobEntry = (d: Digest) => byName.get(blobEntryName(d));
  for (const name of [OCI_LAYOUT_ENTRY, INDEX_ENTRY]) {
    if (!byName.has(name)) problems.push({ kind: 'tar', subject: name, message: `the tar has no ${name} entry (skopeo and podman need it)` });
  }
  for (const image of manifest.images) {
    const listed = new Set<string>([...image.manifests, ...image.blobs]);
    for (const d of listed) {
      if (!(image.manifests.includes(d as Digest) ? inBundle.has(d) : reachable(d))) problems.push({ kind: 'image-manifest', subject: image.name, message: `image ${image.name} needs blob ${d}, which ${MANIFEST_ENTRY} does not list` });
    }
    if (image.manifests[0] !== image.digest) problems.push({ kind: 'image-manifest', subject: image.name, message: `image ${image.name}: its first manifest is not its digest ${image.digest}` });
    // A carried signature or referrer is about an image of this bundle, in the same repository (where the mirror serves both).
    if (image.origin === 'signature' && !manifest.images.some((other) => other.digest === image.subject && other.repository === image.repository && other.origin !== 'signature')) {
      problems.push({ kind: 'image-manifest', subject: image.name, message: `signature ${image.name} is about ${String(image.subject)}, which is not an image of ${image.repository} in the bundle` });
    }
    for (const d of image.manifests) {
      const entry = blobEntry(d);
      if (!entry || !goodBlobs.has(d)) continue; // already reported as missing or damaged
      const bytes = await readSmall(volumes, entry);
      if (!bytes) continue;
      try {
        const parsed = parseManifest(bytes, undefined, `manifest ${d} of image ${image.name}`);
        const needed = parsed.kind === 'image' ? referencedBlobs(parsed).map((x) => x.digest) : parsed.manifests.map((x) => x.digest).filter((c) => image.manifests.includes(c));
        for (const ref of needed) {
          // A blob listed but without a tar entry is already reported as blob-missing.
          if (parsed.kind === 'image' && ref === parsed.config.digest ? !inBundle.has(ref) : !reachable(ref)) {
            problems.push({ kind: 'image-manifest', subject: image.name, message: `manifest ${d} of image ${image.name} references blob ${ref}, which is not in the bundle` });
          }
        }
      } catch (err) {
        if (!(err instanceof ManifestError)) throw err;
        problems.push({ kind: 'image-manifest', subject: image.name, message: err.message });
      }
    }
  }
  await checkIndex(manifest, byName.get(INDEX_ENTRY), volumes, problems);
}

async function checkIndex(manifest: BundleManifest, entry: TarEntry | undefined, volumes: VolumeSet, problems: VerifyProblem[]): Promise<void> {
  if (!entry) return;
  const bytes = await readSmall(volumes, entry);
  let index: { manifests?: Array<{ digest?: string; size?: number; mediaType?: string; annotations?: Record<string, string> }> };
  try {
    index = JSON.parse(bytes?.toString('utf8') ?? '') as typeof index;
  } catch {
    problems.push({ kind: 'index', subject: INDEX_ENTRY, message: `${INDEX_ENTRY} is not JSON` });
    return;
  }
  const entries = Array.isArray(index.manifests) ? index.manifests : [];
  const sizes = new Map(manifest.blobs.map((b) => [b.digest as string, b.size]));
  const byRef = new Map(entries.map((e) => [e.annotations?.[REF_NAME_ANNOTATION] ?? '', e]));
  for (const image of manifest.images) {
    const e = byRef.get(image.name);
    if (!e) {
      problems.push({ kind: 'index', subject: image.name, message: `${INDEX_ENTRY} has no entry named ${image.name}` });
    } else if (e.digest !== image.digest || e.size !== sizes.get(image.digest)) {
      problems.push({ kind: 'index', subject: image.name, message: `${INDEX_ENTRY} names ${image.name} with digest ${String(e.digest)} size ${String(e.size)}`, expected: `${image.digest} size ${String(sizes.get(image.digest))}`, found: `${String(e.digest)} size ${String(e.size)}` });
    }
  }
  const names = new Set(manifest.images.map((i) => i.name));
  for (const e of entries) {
    const ref = e.annotations?.[REF_NAME_ANNOTATION] ?? '(unnamed)';
    if (!names.has(ref)) problems.push({ kind: 'index', subject: ref, message: `${INDEX_ENTRY} has entry ${ref}, which ${MANIFEST_ENTRY} does not list` });
    if (typeof e.digest !== 'string' || !isDigest(e.digest) || !sizes.has(e.digest)) problems.push({ kind: 'index', subject: ref, message: `${INDEX_ENTRY} entry ${ref} points at ${String(e.digest)}, which is not in the bundle` });
  }
}

async function checkSignatureState(files: BundleFiles & { readonly signatureBytes?: Buffer | undefined }, trustedKey: string | undefined, problems: VerifyProblem[]): Promise<SignatureState> {
  const present = files.signaturePath !== undefined;
  if (!trustedKey) return present ? 'present-not-checked' : 'unsigned';
  const key = await loadPublicKey(trustedKey);
  const sigPath = path.join(files.dir, files.name + SIGNATURE_SUFFIX);
  if (!present) {
    problems.push({ kind: 'signature', subject: sigPath, message: `the bundle is not signed (no ${path.basename(sigPath)}), but --trusted-key was given` });
    return 'unsigned';
  }
  if (!files.sealBytes) {
    problems.push({ kind: 'signature', subject: sigPath, message: 'the signature cannot be checked without the seal' });
    return 'invalid';
  }
  // A signature that cannot be read is the media's error (BUNDLE_READ_FAILED), not a bad signature.
  const bytes =
    files.signatureBytes ??
    (await readBundleFile(sigPath, 'the signature').catch((err: unknown): never => {
      throw bundleReadFailure(err, path.join(files.dir, files.name));
    }));
  const check = checkSignature(files.sealBytes, bytes, key);
  if (check.ok) return 'valid';
  problems.push({ kind: 'signature', subject: sigPath, message: `bad signature: ${check.reason}` });
  return 'invalid';
}

/** Where a range of the tar lies on disk: "volume b.tar.002 bytes 100–612", pieces joined by " and ". */
function whereOnDisk(volumes: VolumeSet, offset: number, length: number): { text: string; volume?: string } {
  const pieces = volumes.pieces(offset, Math.max(length, 1));
  const text = pieces.map((p) => `volume ${volumes.volumes[p.volume]!.path} bytes ${p.localOffset}–${p.localOffset + p.length}`).join(' and ');
  return pieces.length === 1 ? { text, volume: volumes.volumes[pieces[0]!.volume]!.path } : { text };
}

/** Whether [offset, offset+length) lies wholly in bytes that are on disk (missing or short volumes are reported already). */
function onDiskWhole(volumes: VolumeSet, onDisk: readonly VolumeOnDisk[], offset: number, length: number): boolean {
  if (offset + length > volumes.totalSize) return false;
  return volumes.pieces(offset, length).every((p) => (onDisk[p.volume]!.actualSize ?? 0) >= p.localOffset + p.length);
}

/**
 * Each part of the skeleton: its problem kind, its name for a tar entry (a read error says what it was reading,
 * a problem what differs), and what a problem says of it when its bytes differ.
 */
const SKELETON_PART: Record<SkeletonPart, { kind: ProblemKind; name: (entry: string) => string; differs: (name: string) => string }> = {
  header: { kind: 'tar-header', name: (e) => `tar header of ${e}`, differs: (n) => `the ${n} differs from the one ${MANIFEST_ENTRY} prescribes` },
  'oci-layout': { kind: 'oci-layout', name: (e) => e, differs: (n) => `${n} differs from the one every bundle has` },
  index: { kind: 'index', name: (e) => e, differs: (n) => `${n} differs from the one ${MANIFEST_ENTRY} implies` },
  padding: { kind: 'padding', name: (e) => `padding after ${e}`, differs: (n) => `the ${n} is not zeros` },
  'end-of-archive': { kind: 'end-of-archive', name: () => 'end-of-archive blocks', differs: (n) => `the ${n} are not zeros` },
};
const SKELETON_PROBLEMS_SHOWN = 20;
/** Regions read together: consecutive ones (a blob's padding and the next header) cost one read. */
const SKELETON_READ = 1024 * 1024;

function byteText(b: number): string {
  return `0x${b.toString(16).padStart(2, '0')}`;
}

/** Gets the bytes of the tar read at `offset` (a copy being written from what is checked). */
type ReadSink = (offset: number, bytes: Buffer) => Promise<void>;

/**
 * Compares every skeleton byte (headers, oci-layout, index.json, padding, end blocks) with what the layout
 * prescribes: a byte comparison, no hashing. Names each differing region with its first differing byte.
 * `copy` gets every byte read, from the buffer it is compared in.
 */
async function checkSkeleton(regions: readonly SkeletonRegion[], volumes: VolumeSet, onDisk: readonly VolumeOnDisk[], problems: VerifyProblem[], copy?: ReadSink): Promise<void> {
  let mismatched = 0;
  const compare = (region: SkeletonRegion, found: Buffer) => {
    if (found.equals(region.bytes)) return;
    if (++mismatched > SKELETON_PROBLEMS_SHOWN) return;
    let first = 0;
    while (found[first] === region.bytes[first]) first++;
    let differing = 0;
    for (let i = first; i < found.length; i++) if (found[i] !== region.bytes[i]) differing++;
    const { kind, name, differs } = SKELETON_PART[region.part];
    const where = whereOnDisk(volumes, region.offset + first, 1);
    problems.push({
      kind,
      subject: region.entry || path.basename(where.volume ?? ''),
      ...(where.volume ? { volume: where.volume } : {}),
      message: `${differs(name(region.entry))}: ${differing} of its ${region.bytes.length} bytes differ, the first at byte ${first} of it (${where.text.replace(/ bytes (\d+)–\d+$/, ' byte $1')})`,
      expected: byteText(region.bytes[first]!),
      found: byteText(found[first]!),
    });
  };
  for (let i = 0; i < regions.length; ) {
    // A run of back-to-back regions, read at once.
    let j = i + 1;
    let end = regions[i]!.offset + regions[i]!.bytes.length;
    while (j < regions.length && regions[j]!.offset === end && end - regions[i]!.offset < SKELETON_READ) end += regions[j++]!.bytes.length;
    const start = regions[i]!.offset;
    if (onDiskWhole(volumes, onDisk, start, end - start)) {
      const run = Buffer.alloc(end - start);
      await readSkeleton(volumes, run, start, regions.slice(i, j));
      await copy?.(start, run);
      for (let k = i; k < j; k++) compare(regions[k]!, run.subarray(regions[k]!.offset - start, regions[k]!.offset - start + regions[k]!.bytes.length));
    } else {
      for (let k = i; k < j; k++) {
        const r = regions[k]!;
        if (!onDiskWhole(volumes, onDisk, r.offset, r.bytes.length)) continue; // in a missing or short volume: reported as such
        const found = Buffer.alloc(r.bytes.length);
        await readSkeleton(volumes, found, r.offset, [r]);
        await copy?.(r.offset, found);
        compare(r, found);
      }
    }
    i = j;
  }
  if (mismatched > SKELETON_PROBLEMS_SHOWN) {
    problems.push({ kind: 'tar', subject: volumes.volumes[0]?.path ?? '', message: `and ${mismatched - SKELETON_PROBLEMS_SHOWN} more regions of headers, padding or layout files differ from what ${MANIFEST_ENTRY} prescribes` });
  }
}

/** Reads skeleton `regions` (back to back from `offset`); a failed read names the region, so the tar entry, at its byte. */
async function readSkeleton(volumes: VolumeSet, buffer: Buffer, offset: number, regions: readonly SkeletonRegion[]): Promise<void> {
  await volumes.read(buffer, offset).catch((err: unknown) => {
    if (!(err instanceof VolumeIoError) || err.offset === undefined) throw err;
    const index = volumes.volumes.findIndex((v) => v.path === err.path);
    if (index < 0) throw err;
    const at = volumes.bundleOffset(index, err.offset);
    const region = regions.find((r) => r.offset <= at && at < r.offset + r.bytes.length);
    throw region ? nameIoError(err, SKELETON_PART[region.part].name(describeEntry(region.entry))) : err;
  });
}

/** A bundle whose volumes its caller has open and whose layout it has read already (`import`: for its base check). */
export interface OpenedLayout {
  readonly volumes: VolumeSet;
  readonly read: ReadLayout;
}

/**
 * Runs every check, its problems reported in this order: seal, signature, volume files, layout, the pass over
 * the bytes (skeleton, volume and blob hashes), structure. `file` is a path in the bundle, or the bundle
 * already located (its seal not read again, its signature not either when `signatureBytes` are given).
 * With `opened`, the caller's open volumes and read layout are used (and left open).
 */
export async function verifyBundle(
  file: string | (BundleFiles & { readonly signatureBytes?: Buffer | undefined }),
  options: VerifyOptions = {},
  opened?: OpenedLayout,
): Promise<VerifyReport> {
  const files = typeof file === 'string' ? await locateBundle(file) : file;
  const bundlePath = path.join(files.dir, files.name);
  const problems: VerifyProblem[] = [...sealProblems(files)];
  const signature = await checkSignatureState(files, options.trustedKey, problems);
  const { onDisk, problems: volumeProblems } = await checkVolumeFiles(files);
  problems.push(...volumeProblems);
  if (files.seal) problems.push(...staleVolumeProblems(files, await staleVolumes(files)));

  const volumes = opened?.volumes ?? new VolumeSet(files.volumes);
  try {
    const read = opened?.read ?? (await readLayout(files, volumes));
    problems.push(...read.problems);
    const { manifest, layout } = read;
    if (manifest) problems.push(...(await releaseSignatureProblems(manifest, options.releaseKeyring)).map((p) => ({ kind: 'release-signature' as const, ...p })));
    if (layout) problems.push(...layoutSizeProblems(bundlePath, layout, volumes.totalSize));
    const blobs = blobRanges(layout, files.volumes.length, volumes.totalSize);
    problems.push(...blobs.problems);
    // A copy is written by blob and skeleton only from a layout that covers the volumes exactly; otherwise
    // (a bundle that will be rejected) it is written from the shared read, with volume checksums.
    const copyByLayout = options.copyInto === undefined || layout?.totalSize === volumes.totalSize;
    const volumeChecksums = wantsVolumeChecksums(files, options, layout !== undefined && copyByLayout);
    const volumeRanges: HashRange[] = volumeChecksums ? onDisk.map((v, i) => ({ id: i, offset: v.offset, size: v.size })) : [];
    const readAll = await readEveryByte(onDisk, volumes, volumeChecksums ? volumeRanges : undefined, blobs, read, options);
    problems.push(...readAll.skeletonProblems);
    problems.push(...volumeChecksumProblems(volumeRanges, readAll.hashes, files.seal?.volumes ?? [], onDisk));
    const checked = blobDigestProblems(blobs, readAll.hashes, volumes);
    problems.push(...checked.problems);
    if (manifest) await checkStructure(manifest, layout ? [...layout.entries] : [], checked.goodBlobs, volumes, problems);
    return {
      bundle: bundlePath,
      ok: problems.length === 0,
      sealed: files.seal !== undefined,
      volumeChecksums,
      volumes: volumeStatus(onDisk, problems),
      images: manifest?.images.length ?? 0,
      blobsChecked: blobs.ranges.length,
      releaseSignatures: manifest ? carriedSignatureCount(manifest) : 0,
      ...(manifest?.bases ? { bases: manifest.bases, baseBlobs: manifest.baseBlobs?.length ?? 0 } : {}),
      bytesRead: readAll.bytesRead,
      signature,
      problems,
    };
  } catch (err) {
    // A caller that opened the volumes (import) names their read errors itself.
    throw opened ? err : bundleReadFailure(err, bundlePath);
  } finally {
    if (!opened) await volumes.close();
  }
}

/**
 * The checks that hash no blob, for a consumer that checks every blob's digest itself as it reads it
 * (`bundle push`: the copy's streaming check): the seal, the signature, the volume files, the manifest
 * against the seal's manifestDigest, the layout's size, and every skeleton byte (headers, padding,
 * oci-layout, index.json) against the layout. `blobsChecked` is 0; `bytesRead` counts the skeleton.
 */
export async function verifyBundleStructure(files: BundleFiles, options: Pick<VerifyOptions, 'trustedKey'> = {}): Promise<{ report: VerifyReport; checked?: CheckedStructure | undefined }> {
  const bundlePath = path.join(files.dir, files.name);
  const problems: VerifyProblem[] = [...sealProblems(files)];
  const signature = await checkSignatureState(files, options.trustedKey, problems);
  const { onDisk, problems: volumeProblems } = await checkVolumeFiles(files);
  problems.push(...volumeProblems);
  const volumes = new VolumeSet(files.volumes);
  try {
    const read = await readLayout(files, volumes);
    problems.push(...read.problems);
    if (read.layout) problems.push(...layoutSizeProblems(bundlePath, read.layout, volumes.totalSize));
    await checkSkeleton(read.skeleton, volumes, onDisk, problems);
    const report: VerifyReport = {
      bundle: bundlePath,
      ok: problems.length === 0,
      sealed: files.seal !== undefined,
      volumeChecksums: false,
      volumes: volumeStatus(onDisk, problems),
      images: read.manifest?.images.length ?? 0,
      blobsChecked: 0,
      releaseSignatures: 0,
      bytesRead: read.skeleton.reduce((sum, region) => sum + region.bytes.length, 0),
      signature,
      problems,
    };
    const checked = report.ok && read.manifest && read.manifestBytes && read.layout ? { manifest: read.manifest, manifestBytes: read.manifestBytes, blobs: blobLocations(read.layout) } : undefined;
    return { report, checked };
  } catch (err) {
    throw bundleReadFailure(err, bundlePath);
  } finally {
    await volumes.close();
  }
}

/**
 * What a structure check that passed has read: the manifest (checked against the seal) and where every blob
 * lies (the layout it prescribes, compared with every tar header), so that a reader of the blobs (bundle push)
 * need not read the manifest and scan the headers again.
 */
export interface CheckedStructure {
  readonly manifest: BundleManifest;
  readonly manifestBytes: Buffer;
  readonly blobs: ReadonlyMap<Digest, BlobLocation>;
}

function blobLocations(layout: BundleLayout): Map<Digest, BlobLocation> {
  const blobs = new Map<Digest, BlobLocation>();
  for (const entry of layout.entries) {
    if (entry.kind === 'blob' && entry.digest !== undefined) blobs.set(entry.digest, { offset: entry.dataOffset, size: entry.size });
  }
  return blobs;
}

/** Where a blob of the tar lies on disk ("volume b.tar.002 bytes 100–612"): for a damaged blob found while reading it. */
export function blobOnDisk(files: BundleFiles, offset: number, size: number): string {
  return whereOnDisk(new VolumeSet(files.volumes), offset, size).text;
}

/** A bundle without its seal: incomplete, or the seal was not copied with it. */
export function sealProblems(files: BundleFiles): VerifyProblem[] {
  if (files.seal) return [];
  return [{ kind: 'seal', subject: files.sealPath, message: `no seal ${path.basename(files.sealPath)}: the bundle is incomplete (its creation did not finish) or the seal was not copied; volume checksums cannot be checked` }];
}

/** Each volume the seal lists: where it lies in the tar, its size on disk, and a problem when it is missing or of another size. */
export async function checkVolumeFiles(files: BundleFiles): Promise<{ onDisk: VolumeOnDisk[]; problems: VerifyProblem[] }> {
  const onDisk: VolumeOnDisk[] = [];
  const problems: VerifyProblem[] = [];
  let offset = 0;
  for (const v of files.volumes) {
    const size = await sizeIfPresent(v.path);
    onDisk.push({ path: v.path, size: v.size, offset, actualSize: size });
    offset += v.size;
    if (size === undefined) problems.push({ kind: 'volume-missing', subject: v.path, message: `volume ${v.path} is missing`, expected: `${v.size} bytes`, found: 'no file' });
    else if (size !== v.size) problems.push({ kind: 'volume-size', subject: v.path, message: `volume ${v.path} has the wrong size`, expected: `${v.size} bytes`, found: `${size} bytes` });
  }
  return { onDisk, problems };
}

/** A problem for each stale volume file found next to a sealed bundle. */
export function staleVolumeProblems(files: BundleFiles, stale: readonly string[]): VerifyProblem[] {
  return stale.map((s) => ({ kind: 'volume-stale', subject: s, message: `${s} is not a volume of this bundle (the seal lists ${files.volumes.length}); it is left from another bundle: remove it` }));
}

/** What the layout check found: the sealed manifest, the layout it prescribes and its skeleton, or why not. */
export interface ReadLayout {
  readonly manifest?: BundleManifest | undefined;
  /** pin-preload.json as read (and checked against the seal): a copy gets these very bytes. */
  readonly manifestBytes?: Buffer | undefined;
  readonly layout?: BundleLayout | undefined;
  readonly skeleton: readonly SkeletonRegion[];
  readonly problems: VerifyProblem[];
}

/** Reads the manifest (checked against the seal's manifestDigest) and regenerates from it the layout and skeleton every byte is compared with. */
export async function readLayout(files: BundleFiles, volumes: VolumeSet): Promise<ReadLayout> {
  const bundlePath = path.join(files.dir, files.name);
  let read: Awaited<ReturnType<typeof readBundleManifest>>;
  try {
    // Checked against the seal's manifestDigest: this pins the layout, so the skeleton can be regenerated.
    read = await readBundleManifest(files, volumes);
  } catch (err) {
    // A read error is the media's, not the manifest's: its caller names it (BUNDLE_READ_FAILED).
    if (err instanceof VolumeIoError) throw err;
    return { skeleton: [], problems: [{ kind: 'manifest', subject: `${bundlePath}:${MANIFEST_ENTRY}`, message: (err as Error).message }] };
  }
  try {
    const { manifest } = read;
    const layout = placeEntries(bundleFiles(manifest, read.manifestBytes.length), { name: files.name });
    return { manifest, manifestBytes: read.manifestBytes, layout, skeleton: bundleSkeleton(layout, manifest), problems: [] };
  } catch (err) {
    return { manifest: read.manifest, manifestBytes: read.manifestBytes, skeleton: [], problems: [{ kind: 'manifest', subject: `${bundlePath}:${MANIFEST_ENTRY}`, message: `${MANIFEST_ENTRY} does not describe a bundle layout: ${(err as Error).message}` }] };
  }
}

/** The volumes must hold exactly the bytes the layout prescribes. */
export function layoutSizeProblems(bundlePath: string, layout: BundleLayout, volumesTotal: number): VerifyProblem[] {
  if (layout.totalSize === volumesTotal) return [];
  return [{ kind: 'tar', subject: bundlePath, message: `the bundle's volumes hold ${volumesTotal} bytes, the layout ${MANIFEST_ENTRY} prescribes ${layout.totalSize}`, expected: `${layout.totalSize} bytes`, found: `${volumesTotal} bytes` }];
}

/** The blobs to hash: each at the offset the layout gives it, with its entry by range id. */
export interface BlobRanges {
  readonly ranges: HashRange[];
  readonly entryOf: ReadonlyMap<number, LayoutEntry>;
  readonly problems: VerifyProblem[];
}

/**
 * A hash range for every blob of the layout (ids from `firstId` on, after the volumes'); a blob that lies past
 * the end of the volumes is a problem, not a range. The rest of the tar is the skeleton, compared apart.
 */
export function blobRanges(layout: BundleLayout | undefined, firstId: number, volumesTotal: number): BlobRanges {
  const ranges: HashRange[] = [];
  const entryOf = new Map<number, LayoutEntry>();
  const problems: VerifyProblem[] = [];
  for (const entry of layout?.entries ?? []) {
    if (entry.kind !== 'blob') continue;
    const range = { id: firstId + ranges.length, offset: entry.dataOffset, size: entry.size };
    if (range.offset + range.size > volumesTotal) {
      problems.push({ kind: 'blob-missing', subject: entry.digest!, message: `blob ${entry.digest} (${entry.size} bytes) lies past the end of the bundle's volumes (byte ${range.offset} of ${volumesTotal})` });
      continue;
    }
    ranges.push(range);
    entryOf.set(range.id, entry);
  }
  return { ranges, entryOf, problems };
}

/**
 * The one pass over the bytes: hashes the volume and blob ranges, compares the skeleton at the same time, and
 * writes the copy when asked. Without volume checksums each byte is hashed once: two workers take the blobs
 * from one queue in tar order, each reading and hashing its own (so both cores hash even while one works
 * through a large layer, the reads stay near-sequential on the media, and both end within about one blob of each
 * other), and when copying write them from the buffer they hashed;
 * the main thread reads, compares and copies the rest
 * (pin-preload.json from the bytes checked against the seal). With them, the main thread reads every byte
 * once for two workers (volume hashes, blob hashes) and writes the copy from that shared buffer.
 */
async function readEveryByte(
  onDisk: readonly VolumeOnDisk[],
  volumes: VolumeSet,
  /** The volumes' ranges when their checksums are wanted. */
  volumeRanges: readonly HashRange[] | undefined,
  { ranges: blobs, entryOf }: Pick<BlobRanges, 'ranges' | 'entryOf'>,
  read: ReadLayout,
  options: VerifyOptions,
): Promise<{ hashes: Map<number, RangeHash>; skeletonProblems: VerifyProblem[]; bytesRead: number }> {
  const total = onDisk.reduce((s, v) => s + Math.min(v.actualSize ?? 0, v.size), 0);
  let bytesRead = 0;
  const copies = options.copyInto !== undefined ? await copyTargets(options.copyInto, onDisk) : undefined;
  const sink = copies ? copySink(copies, options.signal) : undefined;
  const progress: HashOptions = {
    onBytes: (n) => {
      if (sink && !volumeRanges) sink.progress(n - bytesRead);
      bytesRead = n;
      options.onBytes?.(n, total);
    },
  };
  const skeletonProblems: VerifyProblem[] = [];
  let hashes: Map<number, RangeHash>;
  try {
    // The volumes are opened once, by the VolumeSet, for every reader (this thread and the workers).
    const fds = await Promise.all(onDisk.map((v, i) => (v.actualSize === undefined ? null : volumes.fd(i))));
    if (volumeRanges) {
      const hashing = hashRanges(onDisk, [volumeRanges, blobs], { ...progress, fds, ...(sink ? { sink: sink.write } : {}) });
      [hashes] = await Promise.all([hashing, checkSkeleton(read.skeleton, volumes, onDisk, skeletonProblems)]);
    } else {
      // The workers write to the copies' descriptors: they are stopped, and have stopped, before any of them
      // is closed (a closed descriptor's number may be reused by the next file opened).
      const stop = new AbortController();
      const hashing = hashRangesQueued(onDisk, blobs, {
        ...progress,
        fds,
        ...(copies ? { copyFds: copies.map((c) => c?.handle.fd ?? null), copyPaths: copies.map((c) => c?.path ?? null) } : {}),
        rangeName: (id) => (entryOf.get(id)?.digest !== undefined ? `blob ${entryOf.get(id)!.digest}` : undefined),
        signal: options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal,
      });
      const rest = async () => {
        const copy = sink ? (offset: number, bytes: Buffer) => sink.writeAt(volumes, offset, bytes) : undefined;
        if (copy) await copyManifest(read, blobs, volumes, copy);
        await checkSkeleton(read.skeleton, volumes, onDisk, skeletonProblems, copy);
      };
      const checking = rest().catch((err: unknown) => {
        stop.abort();
        throw err;
      });
      const [hashed, checked] = await Promise.allSettled([hashing, checking]);
      // The main thread's error first: the workers' is then only their being stopped.
      if (checked.status === 'rejected') throw checked.reason;
      if (hashed.status === 'rejected') throw hashed.reason;
      hashes = hashed.value;
    }
    await sink?.settle();
    if (copies) for (const copy of copies) await copy?.handle.sync();
  } finally {
    await sink?.settle().catch(() => undefined); // no fdatasync may outlive its file handle
    if (copies) for (const copy of copies) await copy?.handle.close();
  }
  return { hashes, skeletonProblems, bytesRead };
}

/**
 * Writes pin-preload.json's data to the copy from the bytes checked against the seal, after making sure the
 * copy's writers cover the tar exactly once (blobs by the workers, the skeleton and this by the main thread):
 * a gap would leave zeros in the copy that nothing checked.
 */
async function copyManifest(read: ReadLayout, blobs: readonly HashRange[], volumes: VolumeSet, copy: ReadSink): Promise<void> {
  const entry = read.layout?.entries.find((e) => e.kind === 'manifest');
  if (!entry || !read.manifestBytes) throw new Error('a copy without a layout must be made with volume checksums');
  const pieces = [
    ...blobs.map((b) => ({ offset: b.offset, size: b.size })),
    ...read.skeleton.map((r) => ({ offset: r.offset, size: r.bytes.length })),
    { offset: entry.dataOffset, size: read.manifestBytes.length },
  ].sort((a, b) => a.offset - b.offset);
  let end = 0;
  for (const piece of pieces) {
    if (piece.offset !== end) throw new Error(`the copy's writers leave bytes ${Math.min(end, piece.offset)}–${Math.max(end, piece.offset)} of the tar uncovered or covered twice`);
    end += piece.size;
  }
  if (end !== volumes.totalSize) throw new Error(`the copy's writers cover ${end} of the tar's ${volumes.totalSize} bytes`);
  await copy(entry.dataOffset, read.manifestBytes);
}

/** Each recomputed volume sha256 against the one in the seal. */
export function volumeChecksumProblems(volumeRanges: readonly HashRange[], hashes: ReadonlyMap<number, RangeHash>, sealed: ReadonlyArray<{ readonly sha256: string }>, onDisk: readonly VolumeOnDisk[]): VerifyProblem[] {
  const problems: VerifyProblem[] = [];
  volumeRanges.forEach((r, i) => {
    const result = hashes.get(r.id);
    if (result && 'sha256' in result && result.sha256 !== sealed[i]!.sha256) {
      problems.push({ kind: 'volume-sha256', subject: onDisk[i]!.path, message: `volume ${onDisk[i]!.path} does not match its sha256 in the seal`, expected: sealed[i]!.sha256, found: result.sha256 });
    }
  });
  return problems;
}

/** Each blob's hash against its digest: the damaged or unreadable ones named with where they lie, the good ones kept for the structure check. */
export function blobDigestProblems(blobs: Pick<BlobRanges, 'ranges' | 'entryOf'>, hashes: ReadonlyMap<number, RangeHash>, volumes: VolumeSet): { problems: VerifyProblem[]; goodBlobs: Set<string> } {
  const problems: VerifyProblem[] = [];
  const goodBlobs = new Set<string>();
  for (const r of blobs.ranges) {
    const entry = blobs.entryOf.get(r.id)!;
    const digest = entry.digest!;
    const result = hashes.get(r.id);
    if (!result) problems.push({ kind: 'blob-unreadable', subject: digest, message: `blob ${digest} was not read` });
    else if ('error' in result) problems.push({ kind: 'blob-unreadable', subject: digest, message: `blob ${digest} cannot be checked: ${result.error}` });
    else if (sha256Digest(result.sha256) !== digest) {
      const where = whereOnDisk(volumes, r.offset, r.size);
      problems.push({ kind: 'blob-digest', subject: digest, ...(where.volume ? { volume: where.volume } : {}), message: `blob ${digest} is damaged: its content has another digest (${entry.name}, ${where.text})`, expected: digest, found: sha256Digest(result.sha256) });
    } else goodBlobs.add(digest);
  }
  return { problems, goodBlobs };
}

/** Each volume is ok unless a problem names it as its subject or as the volume the damage is in. */
export function volumeStatus(onDisk: readonly VolumeOnDisk[], problems: readonly VerifyProblem[]): Array<{ path: string; size: number; ok: boolean }> {
  return onDisk.map((v) => ({ path: v.path, size: v.size, ok: !problems.some((p) => p.subject === v.path || p.volume === v.path) }));
}

/** New files for the copies of the volumes that are on disk (copyInto); undefined for missing ones. */
async function copyTargets(dir: string, onDisk: readonly VolumeOnDisk[]): Promise<Array<VolumeCopy | undefined>> {
  const copies: Array<VolumeCopy | undefined> = [];
  try {
    for (const v of onDisk) {
      const copyPath = path.join(dir, path.basename(v.path));
      copies.push(v.actualSize === undefined ? undefined : { path: copyPath, handle: await fs.open(copyPath, 'wx', 0o644) });
    }
  } catch (err) {
    for (const copy of copies) await copy?.handle.close();
    throw err;
  }
  return copies;
}

/** A volume's copy being written (copyInto). */
interface VolumeCopy {
  readonly path: string;
  readonly handle: FileHandle;
}

/** Bytes written to the copy between two background fdatasync rounds. */
const COPY_SYNC_BYTES = 64 * 1024 * 1024;

/**
 * Writes to the volumes' copies, and every COPY_SYNC_BYTES written (by this sink or, reported through
 * `progress`, by the hash workers) starts a background fdatasync of the copies, so the disk writes overlap
 * the hashing instead of all waiting for the final fsync; `settle` awaits them.
 */
function copySink(copies: ReadonlyArray<VolumeCopy | undefined>, signal: AbortSignal | undefined) {
  let unsynced = 0;
  let syncing: Promise<void> | undefined;
  let syncError: unknown;
  const wrote = (bytes: number) => {
    if ((unsynced += bytes) < COPY_SYNC_BYTES || syncing) return;
    unsynced = 0;
    // One round at a time: a round still running when the next is due already covers most of its bytes.
    syncing = Promise.all(copies.map((c) => c?.handle.datasync()))
      .then(
        () => undefined,
        (err: unknown) => {
          syncError ??= err;
        },
      )
      .finally(() => (syncing = undefined));
  };
  const write = async (volume: number, localOffset: number, bytes: Buffer): Promise<void> => {
    if (signal?.aborted) throw copyCancelled();
    if (syncError) throw syncError;
    const copy = copies[volume];
    if (!copy) return;
    await pwriteAll(copy.handle.fd, bytes, localOffset).catch((err: unknown) => {
      throw placeIoError(err, { io: 'write', path: copy.path, offset: localOffset });
    });
    wrote(bytes.length);
  };
  return {
    write,
    /** Writes `bytes` at `offset` of the tar, across volume boundaries. */
    writeAt: async (volumes: VolumeSet, offset: number, bytes: Buffer): Promise<void> => {
      for (const p of volumes.pieces(offset, bytes.length)) await write(p.volume, p.localOffset, bytes.subarray(p.globalOffset - offset, p.globalOffset - offset + p.length));
    },
    /** Bytes the workers wrote to the copies meanwhile. */
    progress: wrote,
    settle: async (): Promise<void> => {
      await syncing;
      if (syncError) throw syncError;
    },
  };
}

/** Human-readable lines for a report: one per problem, then a summary. */
export function formatVerifyReport(report: VerifyReport): string[] {
  const lines = report.problems.map((p) => `FAIL ${p.kind}: ${p.message}${p.expected !== undefined ? ` (expected ${p.expected}, found ${p.found ?? '?'})` : ''}`);
  const sig = { valid: 'signature valid', invalid: 'signature INVALID', unsigned: 'unsigned', 'present-not-checked': 'signed (not checked: no --trusted-key)' }[report.signature];
  if (report.bases) lines.push(`delta bundle: ${report.baseBlobs ?? 0} blob(s) of its images are left to its base ${report.bases.map((b) => `${b.name} (${b.manifestDigest})`).join(', ')}, which must be in the same bundle dir`);
  lines.push(
    report.ok
      ? `OK ${report.bundle}: ${report.volumes.length} volume(s), ${report.images} images, ${report.blobsChecked} blobs verified${report.releaseSignatures > 0 ? `, ${report.releaseSignatures} release signature(s)` : ''}, ${sig}`
      : `FAILED ${report.bundle}: ${report.problems.length} problem(s); ${report.volumes.length} volume(s), ${report.blobsChecked} blobs checked, ${sig}`,
  );
  return lines;
}
