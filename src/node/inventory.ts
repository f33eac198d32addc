// The node inventory (`pin-preload inventory`): what a node holds — its bundles (manifest digests, releases),
// every blob digest across them, and the images present in the runtime — as one JSON file (docs/inventory.md)
// that goes back to the bastion, so that a delta bundle can target what the node really has. readInventory is
// the bastion's reader (for `bundle create --since`, issue 13 item 1).

import { readFile } from 'node:fs/promises';
import os from 'node:os';
import { bundleReleases } from '../bundle/bundle-manifest.js';
import type { CriImageService } from '../cri/image-service.js';
import { isDigest, type Digest } from '../oci/digest.js';
import { writeFileAtomic } from '../util/atomic-file.js';
import { UserError, errnoCode } from '../util/errors.js';
import { TOOL_VERSION } from '../version.js';
import { listSealFiles, readNodeBundle } from './bundle-dir.js';

export const INVENTORY_KIND = 'pin-preload.inventory';
/** Inventories larger than this are refused when reading (10 000 blobs are ~1 MiB). */
const MAX_INVENTORY_BYTES = 64 * 1024 * 1024;

export interface NodeInventory {
  readonly kind: typeof INVENTORY_KIND;
  readonly schemaVersion: 1;
  readonly tool: { readonly name: 'pin-preload'; readonly version: string };
  readonly node: { readonly name: string; readonly hostname: string };
  readonly generatedAt: string;
  readonly bundles: ReadonlyArray<{
    readonly path: string;
    readonly manifestDigest: string;
    /** When the bundle was made (its manifest's `created`): which of several holders of a blob is newest. */
    readonly created?: string;
    readonly releases: ReadonlyArray<{ readonly name: string; readonly version: string; readonly channel?: string }>;
    readonly images: number;
    readonly blobs: number;
  }>;
  /**
   * Every blob (manifest, config, layer) of every bundle, once, sorted by digest, with the manifest digests of
   * the bundles holding it (in `bundles[]` order): a delta records as bases only the bundles it leaves blobs to.
   * Inventories written before `bundles` was added lack it.
   */
  readonly blobs: ReadonlyArray<{ readonly digest: string; readonly size: number; readonly bundles?: readonly string[] }>;
  /** The runtime as CRI Version names it, and every image it lists (CRI ListImages), sorted by id. */
  readonly runtime: {
    readonly name: string;
    readonly version: string;
    readonly images: ReadonlyArray<{ readonly id: string; readonly repoDigests: readonly string[]; readonly repoTags: readonly string[] }>;
  };
}

/** Collects the inventory of the bundles in `bundleDir` and of the runtime behind `cri`. */
export async function collectInventory(bundleDir: string, cri: CriImageService, nodeName?: string): Promise<NodeInventory> {
  const bundles = [];
  const blobs = new Map<string, { size: number; bundles: string[] }>();
  for (const seal of await listSealFiles(bundleDir)) {
    const bundle = await readNodeBundle(seal);
    for (const blob of bundle.manifest.blobs) {
      const known = blobs.get(blob.digest);
      if (known) known.bundles.push(bundle.manifestDigest);
      else blobs.set(blob.digest, { size: blob.size, bundles: [bundle.manifestDigest] });
    }
    bundles.push({
      path: bundle.path,
      manifestDigest: bundle.manifestDigest,
      created: bundle.manifest.created,
      releases: bundleReleases(bundle.manifest).map((r) => ({ name: r.name, version: r.version, ...(r.channel !== undefined ? { channel: r.channel } : {}) })),
      images: bundle.manifest.images.length,
      blobs: bundle.manifest.blobs.length,
    });
  }
  const version = await cri.version();
  const images = (await cri.listImages())
    .map((i) => ({ id: i.id, repoDigests: [...i.repoDigests].sort(), repoTags: [...i.repoTags].sort() }))
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const hostname = os.hostname();
  return {
    kind: INVENTORY_KIND,
    schemaVersion: 1,
    tool: { name: 'pin-preload', version: TOOL_VERSION },
    node: { name: nodeName ?? hostname, hostname },
    generatedAt: new Date().toISOString(),
    bundles,
    blobs: [...blobs].sort(([a], [b]) => (a < b ? -1 : 1)).map(([digest, { size, bundles: holders }]) => ({ digest, size, bundles: holders })),
    runtime: { name: version.runtimeName, version: version.runtimeVersion, images },
  };
}

/** Writes the inventory atomically (temp, fsync, rename): a reader finds the old file or the whole new one. */
export async function writeInventory(file: string, inventory: NodeInventory): Promise<void> {
  try {
    await writeFileAtomic(file, `${JSON.stringify(inventory, null, 2)}\n`);
  } catch (err) {
    const code = errnoCode(err);
    if (code === undefined) throw err;
    throw new UserError('INVENTORY_WRITE_FAILED', `cannot write node inventory ${file}: ${code}`, { subject: { kind: 'path', name: file } });
  }
}

function invalid(file: string, why: string): UserError {
  return new UserError('INVENTORY_INVALID', `${file} is not a pin-preload node inventory: ${why}`, {
    subject: { kind: 'path', name: file },
  });
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStringList = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');

/** Reads and validates an inventory file; anything else is a UserError naming the file and what is wrong. */
export async function readInventory(file: string): Promise<NodeInventory> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new UserError('INVENTORY_UNREADABLE', `cannot read node inventory ${file}: ${errnoCode(err) ?? (err as Error).message}`, { subject: { kind: 'path', name: file } });
  }
  if (text.length > MAX_INVENTORY_BYTES) throw invalid(file, `larger than ${MAX_INVENTORY_BYTES} bytes`);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw invalid(file, `not JSON (${(err as Error).message})`);
  }
  if (!isObject(doc)) throw invalid(file, 'not a JSON object');
  if (doc.kind !== INVENTORY_KIND) throw invalid(file, `kind is ${JSON.stringify(doc.kind ?? null)}, not "${INVENTORY_KIND}"`);
  if (doc.schemaVersion !== 1) throw invalid(file, `schemaVersion ${JSON.stringify(doc.schemaVersion ?? null)} is not supported (this pin-preload reads 1)`);
  if (!isObject(doc.node) || typeof doc.node.name !== 'string' || typeof doc.node.hostname !== 'string') throw invalid(file, 'node must be {name, hostname}');
  if (typeof doc.generatedAt !== 'string' || Number.isNaN(Date.parse(doc.generatedAt))) throw invalid(file, 'generatedAt must be an RFC 3339 time');
  if (!Array.isArray(doc.bundles)) throw invalid(file, 'bundles must be a list');
  doc.bundles.forEach((b: unknown, i) => {
    if (!isObject(b) || typeof b.path !== 'string' || typeof b.manifestDigest !== 'string' || !isDigest(b.manifestDigest)) throw invalid(file, `bundle ${i + 1} needs a path and a manifestDigest`);
    if (!Array.isArray(b.releases) || !b.releases.every((r: unknown) => isObject(r) && typeof r.name === 'string' && typeof r.version === 'string')) throw invalid(file, `bundle ${b.path}: releases must be a list of {name, version}`);
    if (b.created !== undefined && (typeof b.created !== 'string' || Number.isNaN(Date.parse(b.created)))) throw invalid(file, `bundle ${b.path}: created must be an RFC 3339 time`);
  });
  const listed = new Set((doc.bundles as Array<{ manifestDigest: string }>).map((b) => b.manifestDigest));
  if (!Array.isArray(doc.blobs)) throw invalid(file, 'blobs must be a list');
  doc.blobs.forEach((b: unknown, i) => {
    if (!isObject(b) || typeof b.digest !== 'string' || !isDigest(b.digest)) throw invalid(file, `blob ${i + 1} has no valid digest`);
    if (typeof b.size !== 'number' || !Number.isSafeInteger(b.size) || b.size < 0) throw invalid(file, `blob ${b.digest} has no valid size`);
    if (b.bundles !== undefined && (!isStringList(b.bundles) || b.bundles.length === 0 || !b.bundles.every((d) => listed.has(d)))) {
      throw invalid(file, `blob ${b.digest}: bundles must be a non-empty list of manifest digests of bundles[]`);
    }
  });
  const runtime = doc.runtime;
  if (!isObject(runtime) || !Array.isArray(runtime.images)) throw invalid(file, 'runtime.images must be a list');
  runtime.images.forEach((image: unknown, i) => {
    if (!isObject(image) || typeof image.id !== 'string' || !isStringList(image.repoDigests) || !isStringList(image.repoTags)) throw invalid(file, `runtime image ${i + 1} needs an id, repoDigests and repoTags`);
  });
  return doc as unknown as NodeInventory;
}

/**
 * Which bundles (manifest digests) hold each blob, or undefined for an inventory written before blobs named
 * their bundles (then any listed bundle may hold any blob).
 */
export function inventoryBlobHolders(inventory: NodeInventory): Map<Digest, readonly string[]> | undefined {
  if (inventory.blobs.some((b) => b.bundles === undefined)) return undefined;
  return new Map(inventory.blobs.map((b) => [b.digest as Digest, b.bundles ?? []]));
}

/** The blob digests an inventory says the node holds in its bundles: what a delta may leave out. */
export function inventoryBlobDigests(inventory: NodeInventory): Set<Digest> {
  // readInventory checked every one with isDigest.
  return new Set(inventory.blobs.map((b) => b.digest as Digest));
}
