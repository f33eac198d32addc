// An OCI image layout directory (image-spec image-layout.md) as files: where a blob lies, what index.json
// names. The one place that knows the layout's paths; its readers and writers (src/copy/) build on it.

import { promises as fs } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../util/atomic-file.js';
import { errnoCode, UserError } from '../util/errors.js';
import { killPoint } from '../util/kill-point.js';
import { type Digest } from './digest.js';
import { parseManifest, type ImageIndex } from './manifest.js';

export const OCI_LAYOUT_FILE = 'oci-layout';
export const INDEX_FILE = 'index.json';
/** The annotation that names an image in index.json (`skopeo … oci:DIR:NAME` looks NAME up in it). */
export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';

export function ociLayoutBytes(): Buffer {
  return Buffer.from(`${JSON.stringify({ imageLayoutVersion: '1.0.0' })}\n`, 'utf8');
}

/** `blobs/<algorithm>`: the directory of every blob of that algorithm. */
export function layoutBlobDir(dir: string, algorithm = 'sha256'): string {
  return path.join(dir, 'blobs', algorithm);
}

/** `blobs/<algorithm>/<encoded>`: manifests, configs and layers alike. */
export function layoutBlobPath(dir: string, digest: Digest): string {
  const colon = digest.indexOf(':');
  return path.join(layoutBlobDir(dir, digest.slice(0, colon)), digest.slice(colon + 1));
}

/**
 * Writes index.json and then oci-layout, each atomically: the spec requires both, and oci-layout is what
 * marks the directory as a layout, so it never appears before the index it needs (a crash in between leaves a
 * directory that is not yet a layout). oci-layout already there is left as it is.
 */
export async function writeLayoutIndex(dir: string, document: Readonly<Record<string, unknown>>): Promise<void> {
  await writeFileAtomic(path.join(dir, INDEX_FILE), `${JSON.stringify(document, null, 2)}\n`);
  killPoint('layout:index-written');
  await writeOciLayoutIfAbsent(dir);
}

/** oci-layout, when the directory has none yet (another tool's, formatted otherwise, stays). */
export async function writeOciLayoutIfAbsent(dir: string): Promise<void> {
  const file = path.join(dir, OCI_LAYOUT_FILE);
  if (!(await fs.stat(file).then(() => true, () => false))) await writeFileAtomic(file, ociLayoutBytes());
}

/** Whether the layout holds the blob (any size: for a manifest the reader checks the digest when it reads it). */
export async function layoutHasBlob(dir: string, digest: Digest): Promise<boolean> {
  return fs.access(layoutBlobPath(dir, digest)).then(
    () => true,
    () => false,
  );
}

/** index.json, parsed; `document` and `entries` (its `manifests`) as written, every field kept for a writer that merges. */
export interface LayoutIndex {
  readonly file: string;
  readonly index: ImageIndex;
  readonly document: Readonly<Record<string, unknown>>;
  readonly entries: ReadonlyArray<Readonly<Record<string, unknown>>>;
}

/** The layout's index.json, or undefined when `dir` has none yet (`missing: 'empty'`); LAYOUT_INVALID when it is not an index. */
export async function readLayoutIndex(dir: string, missing?: 'invalid'): Promise<LayoutIndex>;
export async function readLayoutIndex(dir: string, missing: 'empty'): Promise<LayoutIndex | undefined>;
export async function readLayoutIndex(dir: string, missing: 'invalid' | 'empty' = 'invalid'): Promise<LayoutIndex | undefined> {
  const file = path.join(dir, INDEX_FILE);
  let bytes: Buffer;
  try {
    bytes = await fs.readFile(file);
  } catch (err) {
    if (missing === 'empty' && errnoCode(err) === 'ENOENT') return undefined;
    throw new UserError('LAYOUT_INVALID', `${dir} is not an OCI image layout: cannot read ${file} (${errnoCode(err) ?? (err as Error).message})`, { subject: { kind: 'path', name: dir }, cause: err });
  }
  let index;
  try {
    index = parseManifest(bytes, undefined, file);
  } catch (err) {
    throw new UserError('LAYOUT_INVALID', `${dir} is not an OCI image layout: ${(err as Error).message}`, { subject: { kind: 'path', name: dir }, cause: err });
  }
  if (index.kind !== 'index') throw new UserError('LAYOUT_INVALID', `${file} is not an image index`, { subject: { kind: 'path', name: file } });
  const document = JSON.parse(bytes.toString('utf8')) as { manifests: Array<Record<string, unknown>> };
  return { file, index, document, entries: document.manifests };
}

/** A manifest's bytes from the layout; LAYOUT_INVALID naming `where` (the image) when the file is not there. */
export async function readLayoutManifest(dir: string, digest: Digest, where: string): Promise<Buffer> {
  const file = layoutBlobPath(dir, digest);
  try {
    return await fs.readFile(file);
  } catch (err) {
    throw new UserError('LAYOUT_INVALID', `${where}: manifest ${digest} is missing from ${path.dirname(file)}`, { subject: { kind: 'path', name: file }, cause: err });
  }
}
