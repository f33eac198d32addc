// An OCI image layout directory (image-spec image-layout.md) as files: where a blob lies, what index.json
// names. The one place that knows the layout's paths; its readers and writers (src/copy/) build on it.

import { promises as fs } from 'node:fs';
import path from 'node:path';
import { errnoCode, UserError } from '../util/errors.js';
import { type Digest } from './digest.js';
import { parseManifest, type ImageIndex } from './manifest.js';

export const OCI_LAYOUT_FILE = 'oci-layout';
export const INDEX_FILE = 'index.json';

/** `blobs/<algorithm>/<encoded>`: manifests, configs and layers alike. */
export function layoutBlobPath(dir: string, digest: Digest): string {
  const colon = digest.indexOf(':');
  return path.join(dir, 'blobs', digest.slice(0, colon), digest.slice(colon + 1));
}

/** Whether the layout holds the blob (any size: for a manifest the reader checks the digest when it reads it). */
export async function layoutHasBlob(dir: string, digest: Digest): Promise<boolean> {
  return fs.access(layoutBlobPath(dir, digest)).then(
    () => true,
    () => false,
  );
}

/** index.json, parsed; `entries` are its `manifests` as written (every field kept, for a writer that merges). */
export interface LayoutIndex {
  readonly file: string;
  readonly index: ImageIndex;
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
  const entries = (JSON.parse(bytes.toString('utf8')) as { manifests: Array<Record<string, unknown>> }).manifests;
  return { file, index, entries };
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
