// Each check of `bundle verify` alone: given what it looks at (the bundle's files, a layout, the hashes the
// byte pass found), the problems it names. The whole command over damaged bundles is in bundle-verify.test.ts.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { createBundle } from '../../src/bundle/writer.js';
import { BLOB_ENTRY_PREFIX, MANIFEST_ENTRY } from '../../src/bundle/format.js';
import { locateBundle, scanTar, type BundleFiles, type TarEntry } from '../../src/bundle/reader.js';
import { VolumeSet, type Volume } from '../../src/bundle/volumes.js';
import { placeIoError, VolumeIoError } from '../../src/bundle/volume-io-error.js';
import { idleHashWorkers, type RangeHash } from '../../src/bundle/hash-pipeline.js';
import { prestartVerifyWorkers, wantsVolumeChecksums } from '../../src/bundle/verify-hashing.js';
import type { Digest } from '../../src/oci/digest.js';
import {
  blobDigestProblems,
  blobRanges,
  checkVolumeFiles,
  layoutSizeProblems,
  readLayout,
  sealProblems,
  staleVolumeProblems,
  volumeChecksumProblems,
  volumeStatus,
  verifyBundle,
  type VerifyProblem,
} from '../../src/bundle/verify.js';
import { withTempDir } from '../support/temp-dir.js';
import { blobContents, MemorySource, testImage, testPlan } from '../support/bundle-plans.js';

const repo = { domain: 'quay.io', path: 'example/app' };
const images = [testImage(repo, 'one', [randomBytes(30_000), randomBytes(2000)], { tag: 'v1' })];
const plan = testPlan(images);
const created = '2024-01-02T03:04:05Z';
const sha = (c: string) => c.repeat(64);

function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  return withTempDir('pin-preload-verify-checks-', fn);
}

/** A real bundle, located as verify locates it, with its volumes open for reading. */
async function withBundle(fn: (files: BundleFiles, volumes: VolumeSet) => Promise<void>): Promise<void> {
  await withDir(async (dir) => {
    const output = path.join(dir, 'b.tar');
    await createBundle({ plan, source: new MemorySource(blobContents(images)), output, created });
    const files = await locateBundle(output);
    const volumes = new VolumeSet(files.volumes);
    try {
      await fn(files, volumes);
    } finally {
      await volumes.close();
    }
  });
}

function unsealed(dir: string): BundleFiles {
  return { dir, name: 'b.tar', sealPath: path.join(dir, 'b.tar.seal.json'), volumes: [{ path: path.join(dir, 'b.tar'), size: 10 }] };
}

test('a bundle without its seal is named incomplete; a sealed one has no seal problem', async () => {
  assert.deepEqual(sealProblems(unsealed('/bundles')).map((p) => [p.kind, p.subject]), [['seal', '/bundles/b.tar.seal.json']]);
  await withBundle(async (files) => assert.deepEqual(sealProblems(files), []));
});

test('volume files: each placed after the one before, a short one and a missing one named with expected and found sizes', async () => {
  await withDir(async (dir) => {
    const volume = (n: number) => ({ path: path.join(dir, `b.tar.00${n}`), size: 100 });
    await writeFile(volume(1).path, Buffer.alloc(100));
    await writeFile(volume(2).path, Buffer.alloc(60));
    const files: BundleFiles = { ...unsealed(dir), volumes: [volume(1), volume(2), volume(3)] };
    const { onDisk, problems } = await checkVolumeFiles(files);
    assert.deepEqual(onDisk.map((v) => [v.offset, v.actualSize]), [[0, 100], [100, 60], [200, undefined]]);
    assert.deepEqual(problems.map((p) => [p.kind, p.subject, p.expected, p.found]), [
      ['volume-size', volume(2).path, '100 bytes', '60 bytes'],
      ['volume-missing', volume(3).path, '100 bytes', 'no file'],
    ]);
  });
});

test('a stale volume left from a larger bundle is named, with how many volumes the seal lists', () => {
  const problems = staleVolumeProblems(unsealed('/bundles'), ['/bundles/b.tar.004']);
  assert.deepEqual(problems.map((p) => [p.kind, p.subject]), [['volume-stale', '/bundles/b.tar.004']]);
  assert.match(problems[0]!.message, /the seal lists 1\); it is left from another bundle: remove it/);
});

test('the layout is regenerated from the sealed manifest; a damaged manifest is named and leaves no layout to check against', async () => {
  await withBundle(async (files, volumes) => {
    const read = await readLayout(files, volumes);
    assert.deepEqual(read.problems, []);
    assert.equal(read.layout?.totalSize, volumes.totalSize);
    assert.equal(read.manifest?.created, created);
    assert.ok(read.skeleton.length > 0);

    const handle = await open(files.volumes[0]!.path, 'r+');
    await handle.write(Buffer.from('X'), 0, 1, read.layout!.entries[0]!.dataOffset + 1);
    await handle.close();
    const reopened = new VolumeSet(files.volumes);
    const damaged = await readLayout(files, reopened).finally(() => reopened.close());
    assert.deepEqual(damaged.problems.map((p) => [p.kind, p.subject]), [['manifest', path.join(files.dir, 'b.tar:pin-preload.json')]]);
    assert.equal(damaged.layout, undefined);
    assert.deepEqual(damaged.skeleton, []);
  });
});

test('volumes that hold other than the layout\'s bytes are named with both sizes', () => {
  const layout = { totalSize: 2048 } as Parameters<typeof layoutSizeProblems>[1];
  assert.deepEqual(layoutSizeProblems('/b.tar', layout, 2048), []);
  assert.deepEqual(layoutSizeProblems('/b.tar', layout, 1024).map((p) => [p.kind, p.expected, p.found]), [['tar', '2048 bytes', '1024 bytes']]);
});

test('a hash range for every blob, numbered after the volumes; a blob past the end of the volumes is missing, not hashed', async () => {
  await withBundle(async (files, volumes) => {
    const { layout } = await readLayout(files, volumes);
    const blobEntries = layout!.entries.filter((e) => e.kind === 'blob');
    const all = blobRanges(layout, 1, volumes.totalSize);
    assert.deepEqual(all.problems, []);
    assert.deepEqual(all.ranges.map((r) => r.id), blobEntries.map((_, i) => 1 + i));
    assert.deepEqual(all.ranges.map((r) => [r.offset, r.size]), blobEntries.map((e) => [e.dataOffset, e.size]));
    for (const r of all.ranges) assert.equal(all.entryOf.get(r.id)?.digest, blobEntries[r.id - 1]!.digest);

    const last = blobEntries.at(-1)!;
    const cut = blobRanges(layout, 1, last.dataOffset + last.size - 1);
    assert.equal(cut.ranges.length, blobEntries.length - 1);
    assert.deepEqual(cut.problems.map((p) => [p.kind, p.subject]), [['blob-missing', last.digest]]);
    assert.deepEqual(blobRanges(undefined, 1, volumes.totalSize).ranges, []);
  });
});

test('volume checksums are computed when asked or when no layout can be checked (copying or not), and never without a seal', async () => {
  await withBundle(async (sealed) => {
    assert.equal(wantsVolumeChecksums(sealed, {}, true), false);
    assert.equal(wantsVolumeChecksums(sealed, { volumeChecksums: true }, true), true);
    assert.equal(wantsVolumeChecksums(sealed, { copyInto: '/copy' }, true), false);
    assert.equal(wantsVolumeChecksums(sealed, { copyInto: '/copy' }, false), true);
    assert.equal(wantsVolumeChecksums(sealed, {}, false), true);
    assert.equal(wantsVolumeChecksums(unsealed('/bundles'), { volumeChecksums: true }, false), false);
  });
});

test('verify\'s reading workers are started ahead only when volume checksums are not asked for', async () => {
  const idle = idleHashWorkers();
  prestartVerifyWorkers({ volumeChecksums: true });
  assert.equal(idleHashWorkers(), idle, 'the shared read does not use them');
  prestartVerifyWorkers({});
  assert.equal(idleHashWorkers(), 2);
});

const onDisk = [
  { path: '/b/b.tar.001', size: 100, offset: 0, actualSize: 100 },
  { path: '/b/b.tar.002', size: 100, offset: 100, actualSize: 100 },
];

test('a volume whose sha256 differs from the seal\'s is named with both; one that could not be hashed is not', () => {
  const ranges = onDisk.map((v, i) => ({ id: i, offset: v.offset, size: v.size }));
  const hashes = new Map<number, RangeHash>([[0, { sha256: sha('a') }], [1, { error: 'short read' }]]);
  assert.deepEqual(volumeChecksumProblems(ranges, hashes, [{ sha256: sha('a') }, { sha256: sha('b') }], onDisk), []);
  const wrong = volumeChecksumProblems(ranges, hashes, [{ sha256: sha('c') }, { sha256: sha('b') }], onDisk);
  assert.deepEqual(wrong.map((p) => [p.kind, p.subject, p.expected, p.found]), [['volume-sha256', '/b/b.tar.001', sha('c'), sha('a')]]);
});

test('each blob against its digest: a damaged one is named with where it lies, an unread or unreadable one as such, good ones kept', () => {
  const volumes = new VolumeSet(onDisk);
  const digest = (c: string) => `sha256:${sha(c)}`;
  const entry = (c: string, dataOffset: number) => ({ name: `blobs/sha256/${sha(c)}`, kind: 'blob' as const, type: 'file' as const, size: 20, headerOffset: dataOffset - 512, dataOffset, digest: digest(c) as Digest });
  const ranges = [{ id: 2, offset: 10, size: 20 }, { id: 3, offset: 90, size: 20 }, { id: 4, offset: 130, size: 20 }, { id: 5, offset: 160, size: 20 }];
  const entryOf = new Map([[2, entry('1', 10)], [3, entry('2', 90)], [4, entry('3', 130)], [5, entry('4', 160)]]);
  const hashes = new Map<number, RangeHash>([[2, { sha256: sha('1') }], [3, { sha256: sha('f') }], [4, { error: 'volume b.tar.002 is short' }]]);
  const { problems, goodBlobs } = blobDigestProblems({ ranges, entryOf }, hashes, volumes);
  assert.deepEqual([...goodBlobs], [digest('1')]);
  assert.deepEqual(problems.map((p) => [p.kind, p.subject]), [['blob-digest', digest('2')], ['blob-unreadable', digest('3')], ['blob-unreadable', digest('4')]]);
  const damaged = problems[0]!;
  assert.equal(damaged.volume, undefined, 'a blob across two volumes names both in its message, neither as its volume');
  assert.match(damaged.message, /volume \/b\/b\.tar\.001 bytes 90–100 and volume \/b\/b\.tar\.002 bytes 0–10/);
  assert.deepEqual([damaged.expected, damaged.found], [digest('2'), digest('f')]);
  assert.match(problems[1]!.message, /cannot be checked: volume b\.tar\.002 is short/);
  assert.match(problems[2]!.message, /was not read/);
});

test('a volume is ok unless a problem is about it or lies in it', () => {
  const problems: VerifyProblem[] = [{ kind: 'blob-digest', subject: 'sha256:x', volume: '/b/b.tar.002', message: 'damaged' }];
  assert.deepEqual(volumeStatus(onDisk, problems).map((v) => v.ok), [true, false]);
  assert.deepEqual(volumeStatus(onDisk, [{ kind: 'volume-size', subject: '/b/b.tar.001', message: 'short' }]).map((v) => v.ok), [false, true]);
});

/** Volumes whose byte `failAt` cannot be read: a read that covers it fails with EIO at that byte, as a bad sector's does. */
class VolumesFailingAt extends VolumeSet {
  constructor(volumes: readonly Volume[], private readonly failAt: number) {
    super(volumes);
  }

  override async read(buffer: Buffer, offset: number, length = buffer.length, bufferOffset = 0): Promise<void> {
    if (offset <= this.failAt && this.failAt < offset + length) {
      const [piece] = this.pieces(this.failAt, 1);
      throw placeIoError(Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' }), { io: 'read', path: this.volumes[piece!.volume]!.path, offset: piece!.localOffset });
    }
    return super.read(buffer, offset, length, bufferOffset);
  }
}

/** What `work` over volumes failing at `failAt` rejects with: a VolumeIoError, whose `what` names what lies there. */
async function readErrorAt(files: BundleFiles, failAt: number, work: (volumes: VolumeSet) => Promise<unknown>): Promise<string | undefined> {
  const failing = new VolumesFailingAt(files.volumes, failAt);
  try {
    const err = await work(failing).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof VolumeIoError, `a VolumeIoError, not ${String(err)}`);
    assert.equal(err.offset, failAt, 'at the byte that failed (one volume)');
    return err.what;
  } finally {
    await failing.close();
  }
}

async function scanAll(files: BundleFiles, volumes: VolumeSet): Promise<TarEntry[]> {
  const entries: TarEntry[] = [];
  for await (const entry of scanTar(files, volumes)) entries.push(entry);
  return entries;
}

test('a read error in the header scan names the header by the entry before it: the first, after pin-preload.json, after blobs/sha256/, after a blob', async () => {
  await withBundle(async (files, volumes) => {
    const entries = await scanAll(files, volumes);
    const at = (name: string) => entries.findIndex((e) => e.name === name);
    const firstBlob = entries.findIndex((e) => e.name.startsWith(BLOB_ENTRY_PREFIX) && e.name !== BLOB_ENTRY_PREFIX);
    const cases: Array<[TarEntry, string]> = [
      [entries[0]!, 'the first tar header'],
      [entries[at(MANIFEST_ENTRY) + 1]!, `the tar header after ${MANIFEST_ENTRY}`],
      [entries[at(BLOB_ENTRY_PREFIX) + 1]!, `the tar header after ${BLOB_ENTRY_PREFIX}`],
      [entries[firstBlob + 1]!, `the tar header after blob sha256:${entries[firstBlob]!.name.slice(BLOB_ENTRY_PREFIX.length)}`],
    ];
    for (const [entry, what] of cases) assert.equal(await readErrorAt(files, entry.headerOffset + 100, (failing) => scanAll(files, failing)), what);
    // pin-preload.json's data, read before the layout is known: a read error, named, not a damaged manifest.
    assert.equal(await readErrorAt(files, entries[0]!.dataOffset + 10, (failing) => readLayout(files, failing)), MANIFEST_ENTRY);
  });
});

test('a read error in a blob\'s tar header while the skeleton is compared names that header ("tar header of blob sha256:…"), not the padding read with it', async () => {
  await withBundle(async (files, volumes) => {
    const read = await readLayout(files, volumes);
    const index = read.skeleton.findIndex((r) => r.part === 'header' && r.entry.startsWith(BLOB_ENTRY_PREFIX) && r.entry !== BLOB_ENTRY_PREFIX);
    const [padding, header] = [read.skeleton[index - 1]!, read.skeleton[index]!];
    assert.equal(padding.offset + padding.bytes.length, header.offset, 'read in one run with the padding before it');
    const hex = header.entry.slice(BLOB_ENTRY_PREFIX.length);
    assert.equal(await readErrorAt(files, header.offset + 100, (failing) => verifyBundle(files, {}, { volumes: failing, read })), `tar header of blob sha256:${hex}`);
  });
});
