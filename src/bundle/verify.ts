// `bundle verify`: checks a bundle completely against its seal in one streaming pass — volumes present with
// their size and sha256, every blob's digest, manifests and index.json consistent, and the signature.

import { promises as fs } from 'node:fs';
import path from 'node:path';
import { MANIFEST_ENTRY, type BundleManifest } from './format.js';
import { BLOB_ENTRY_PREFIX, locateBundle, readBundleManifest, scanTar, type BundleFiles, type TarEntry } from './reader.js';
import { VolumeSet } from './volumes.js';
import { hashRanges, type HashRange, type VolumeOnDisk } from './hash-pipeline.js';
import { INDEX_ENTRY, OCI_LAYOUT_ENTRY, REF_NAME_ANNOTATION } from './oci-layout.js';
import { checkSignature, loadPublicKey } from './signing.js';
import { isDigest, type Digest } from '../oci/digest.js';
import { ManifestError, parseManifest, referencedBlobs } from '../oci/manifest.js';
import { errnoCode } from '../util/errors.js';

export type ProblemKind =
  | 'seal' | 'volume-missing' | 'volume-size' | 'volume-sha256' | 'volume-stale' | 'tar' | 'manifest'
  | 'blob-missing' | 'blob-size' | 'blob-digest' | 'blob-unreadable' | 'image-manifest' | 'index' | 'signature';

export interface VerifyProblem {
  readonly kind: ProblemKind;
  /** The volume file, blob digest, image or file concerned. */
  readonly subject: string;
  readonly message: string;
  readonly expected?: string;
  readonly found?: string;
}

export type SignatureState = 'valid' | 'invalid' | 'unsigned' | 'present-not-checked';

export interface VerifyReport {
  readonly bundle: string;
  readonly ok: boolean;
  readonly sealed: boolean;
  readonly volumes: ReadonlyArray<{ readonly path: string; readonly size: number; readonly ok: boolean }>;
  readonly images: number;
  readonly blobsChecked: number;
  readonly bytesRead: number;
  readonly signature: SignatureState;
  readonly problems: readonly VerifyProblem[];
}

export interface VerifyOptions {
  /** PEM Ed25519 public key; when given, a missing or wrong signature is a failure. */
  readonly trustedKey?: string;
  readonly onBytes?: (bytesRead: number, totalBytes: number) => void;
}

const MAX_JSON_BLOB = 16 * 1024 * 1024;

async function actualSize(file: string): Promise<number | undefined> {
  try {
    return (await fs.stat(file)).size;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  }
}

/** Files NAME.NNN next to the bundle that its seal does not list (left from an earlier, larger bundle). */
async function staleVolumes(files: BundleFiles): Promise<string[]> {
  const listed = new Set(files.volumes.map((v) => path.basename(v.path)));
  const names = await fs.readdir(files.dir);
  return names
    .filter((n) => !listed.has(n) && n.startsWith(`${files.name}.`) && /^\d{3}$/.test(n.slice(files.name.length + 1)))
    .sort()
    .map((n) => path.join(files.dir, n));
}

/** Reads the tar headers as far as they can be read; a damaged or missing part ends the scan with a problem. */
async function scanWhatIsThere(files: BundleFiles, volumes: VolumeSet, problems: VerifyProblem[]): Promise<TarEntry[]> {
  const entries: TarEntry[] = [];
  try {
    for await (const entry of scanTar(files, volumes)) entries.push(entry);
  } catch (err) {
    const last = entries.at(-1);
    problems.push({
      kind: 'tar',
      subject: path.join(files.dir, files.name),
      message: `the tar cannot be read past ${last ? `entry ${last.name}` : 'its start'}: ${(err as Error).message}`,
    });
  }
  return entries;
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
  const blobEntry = (d: Digest) => byName.get(`${BLOB_ENTRY_PREFIX}${d.slice('sha256:'.length)}`);
  for (const name of [OCI_LAYOUT_ENTRY, INDEX_ENTRY]) {
    if (!byName.has(name)) problems.push({ kind: 'tar', subject: name, message: `the tar has no ${name} entry (skopeo and podman need it)` });
  }
  for (const image of manifest.images) {
    const listed = new Set<string>([...image.manifests, ...image.blobs]);
    for (const d of listed) {
      if (!inBundle.has(d)) problems.push({ kind: 'image-manifest', subject: image.name, message: `image ${image.name} needs blob ${d}, which ${MANIFEST_ENTRY} does not list` });
    }
    if (image.manifests[0] !== image.digest) problems.push({ kind: 'image-manifest', subject: image.name, message: `image ${image.name}: its first manifest is not its digest ${image.digest}` });
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
          if (!inBundle.has(ref)) {
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

async function checkSignatureState(files: BundleFiles, trustedKey: string | undefined, problems: VerifyProblem[]): Promise<SignatureState> {
  const present = files.signaturePath !== undefined;
  if (!trustedKey) return present ? 'present-not-checked' : 'unsigned';
  const key = await loadPublicKey(trustedKey);
  const sigPath = path.join(files.dir, `${files.name}.sig`);
  if (!present) {
    problems.push({ kind: 'signature', subject: sigPath, message: `the bundle is not signed (no ${path.basename(sigPath)}), but --trusted-key was given` });
    return 'unsigned';
  }
  if (!files.sealBytes) {
    problems.push({ kind: 'signature', subject: sigPath, message: 'the signature cannot be checked without the seal' });
    return 'invalid';
  }
  const check = checkSignature(files.sealBytes, await fs.readFile(sigPath), key);
  if (check.ok) return 'valid';
  problems.push({ kind: 'signature', subject: sigPath, message: `bad signature: ${check.reason}` });
  return 'invalid';
}

export async function verifyBundle(file: string, options: VerifyOptions = {}): Promise<VerifyReport> {
  const files = await locateBundle(file);
  const bundlePath = path.join(files.dir, files.name);
  const problems: VerifyProblem[] = [];
  if (!files.seal) {
    problems.push({ kind: 'seal', subject: files.sealPath, message: `no seal ${path.basename(files.sealPath)}: the bundle is incomplete (its creation did not finish) or the seal was not copied; volume checksums cannot be checked` });
  }
  const signature = await checkSignatureState(files, options.trustedKey, problems);

  // Volumes: present and of their sealed size; stale extras reported.
  const onDisk: VolumeOnDisk[] = [];
  let offset = 0;
  for (const v of files.volumes) {
    const size = await actualSize(v.path);
    onDisk.push({ path: v.path, size: v.size, offset, actualSize: size });
    offset += v.size;
    if (size === undefined) problems.push({ kind: 'volume-missing', subject: v.path, message: `volume ${v.path} is missing`, expected: `${v.size} bytes`, found: 'no file' });
    else if (size !== v.size) problems.push({ kind: 'volume-size', subject: v.path, message: `volume ${v.path} has the wrong size`, expected: `${v.size} bytes`, found: `${size} bytes` });
  }
  if (files.seal) {
    for (const stale of await staleVolumes(files)) {
      problems.push({ kind: 'volume-stale', subject: stale, message: `${stale} is not a volume of this bundle (the seal lists ${files.volumes.length}); it is left from another bundle: remove it` });
    }
  }

  const volumes = new VolumeSet(files.volumes);
  try {
    let manifest: BundleManifest | undefined;
    try {
      manifest = (await readBundleManifest(files, volumes)).manifest;
    } catch (err) {
      problems.push({ kind: 'manifest', subject: `${bundlePath}:${MANIFEST_ENTRY}`, message: (err as Error).message });
    }
    const entries = manifest ? await scanWhatIsThere(files, volumes, problems) : [];
    const located = new Map<string, TarEntry>();
    for (const e of entries) if (e.type === 'file' && e.name.startsWith(BLOB_ENTRY_PREFIX)) located.set(`sha256:${e.name.slice(BLOB_ENTRY_PREFIX.length)}`, e);

    // One pass: volume hashes on one worker, blob hashes on another.
    const volumeRanges: HashRange[] = files.seal ? onDisk.map((v, i) => ({ id: i, offset: v.offset, size: v.size })) : [];
    const blobRanges: HashRange[] = [];
    const blobOfRange = new Map<number, Digest>();
    for (const blob of manifest?.blobs ?? []) {
      const entry = located.get(blob.digest);
      if (!entry) {
        problems.push({ kind: 'blob-missing', subject: blob.digest, message: `blob ${blob.digest} (${blob.role}, ${blob.size} bytes) has no tar entry${problems.some((p) => p.kind === 'tar') ? ' in the readable part of the bundle' : ''}` });
        continue;
      }
      if (entry.size !== blob.size) {
        problems.push({ kind: 'blob-size', subject: blob.digest, message: `blob ${blob.digest} has the wrong size in the tar`, expected: `${blob.size} bytes`, found: `${entry.size} bytes` });
        continue;
      }
      const id = volumeRanges.length + blobRanges.length;
      blobRanges.push({ id, offset: entry.dataOffset, size: entry.size });
      blobOfRange.set(id, blob.digest);
    }
    for (const [digest] of located) {
      if (manifest && !manifest.blobs.some((b) => b.digest === digest)) problems.push({ kind: 'tar', subject: digest, message: `the tar holds blob ${digest}, which ${MANIFEST_ENTRY} does not list` });
    }
    const total = onDisk.reduce((s, v) => s + Math.min(v.actualSize ?? 0, v.size), 0);
    let bytesRead = 0;
    const hashes = await hashRanges(onDisk, [volumeRanges, blobRanges], {
      onBytes: (n) => {
        bytesRead = n;
        options.onBytes?.(n, total);
      },
    });
    const sealed = files.seal?.volumes ?? [];
    volumeRanges.forEach((r, i) => {
      const result = hashes.get(r.id);
      if (result && 'sha256' in result && result.sha256 !== sealed[i]!.sha256) {
        problems.push({ kind: 'volume-sha256', subject: onDisk[i]!.path, message: `volume ${onDisk[i]!.path} does not match its sha256 in the seal`, expected: sealed[i]!.sha256, found: result.sha256 });
      }
    });
    const goodBlobs = new Set<string>();
    for (const r of blobRanges) {
      const digest = blobOfRange.get(r.id)!;
      const result = hashes.get(r.id);
      if (!result) problems.push({ kind: 'blob-unreadable', subject: digest, message: `blob ${digest} was not read` });
      else if ('error' in result) problems.push({ kind: 'blob-unreadable', subject: digest, message: `blob ${digest} cannot be checked: ${result.error}` });
      else if (`sha256:${result.sha256}` !== digest) problems.push({ kind: 'blob-digest', subject: digest, message: `blob ${digest} is damaged: its content has another digest`, expected: digest, found: `sha256:${result.sha256}` });
      else goodBlobs.add(digest);
    }
    if (manifest) await checkStructure(manifest, entries, goodBlobs, volumes, problems);
    return {
      bundle: bundlePath,
      ok: problems.length === 0,
      sealed: files.seal !== undefined,
      volumes: onDisk.map((v) => ({ path: v.path, size: v.size, ok: !problems.some((p) => p.subject === v.path) })),
      images: manifest?.images.length ?? 0,
      blobsChecked: blobRanges.length,
      bytesRead,
      signature,
      problems,
    };
  } finally {
    await volumes.close();
  }
}

/** Human-readable lines for a report: one per problem, then a summary. */
export function formatVerifyReport(report: VerifyReport): string[] {
  const lines = report.problems.map((p) => `FAIL ${p.kind}: ${p.message}${p.expected !== undefined ? ` (expected ${p.expected}, found ${p.found ?? '?'})` : ''}`);
  const sig = { valid: 'signature valid', invalid: 'signature INVALID', unsigned: 'unsigned', 'present-not-checked': 'signed (not checked: no --trusted-key)' }[report.signature];
  lines.push(
    report.ok
      ? `OK ${report.bundle}: ${report.volumes.length} volume(s), ${report.images} images, ${report.blobsChecked} blobs verified, ${sig}`
      : `FAILED ${report.bundle}: ${report.problems.length} problem(s); ${report.volumes.length} volume(s), ${report.blobsChecked} blobs checked, ${sig}`,
  );
  return lines;
}
