// The hash pipeline: workers sharing one queue hash every range once, whatever the mix of sizes; its failures:
// a read or write error on a worker or the main thread names the file, the byte and the range (blob) it was in,
// and keeps its code; a closed-off copy descriptor is reported, not hung on.

import { test } from 'node:test';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { hashRanges, hashRangesQueued, idleHashWorkers, prestartHashWorkers, type VolumeOnDisk } from '../../src/bundle/hash-pipeline.js';
import { VolumeIoError } from '../../src/bundle/volume-io-error.js';
import { VolumeSet } from '../../src/bundle/volumes.js';

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-hash-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A "volume" that is a directory: it opens, and every read of it fails with EISDIR, as a bad sector fails with EIO. */
async function unreadableVolume(dir: string, size: number): Promise<VolumeOnDisk> {
  const volume = path.join(dir, 'b.tar.002');
  await mkdir(volume);
  return { path: volume, size, offset: 0, actualSize: size };
}

const isIoError = (io: 'read' | 'write', file: string, offset: number, code: string, what?: string) => (err: unknown): boolean => {
  assert.ok(err instanceof VolumeIoError, `a VolumeIoError, not ${String(err)}`);
  assert.equal(err.code, code);
  assert.equal(err.io, io);
  assert.equal(err.path, file);
  assert.equal(err.offset, offset);
  const verb = io === 'read' ? 'reading volume' : 'writing the copy';
  assert.equal(err.message.startsWith(`${verb} ${file} at byte ${offset}${what ? ` (${what})` : ''} failed: ${code}`), true, err.message);
  return true;
};

test('a read error in a hash worker names the volume, the byte and the blob, and keeps its code', async () => {
  await withDir(async (dir) => {
    const volume = await unreadableVolume(dir, 4096);
    const blob = 'blob sha256:' + 'ab'.repeat(32);
    const hashing = hashRangesQueued([volume], [{ id: 7, offset: 1024, size: 2048 }], { rangeName: (id) => (id === 7 ? blob : undefined) });
    await assert.rejects(hashing, isIoError('read', volume.path, 1024, 'EISDIR', blob));
  });
});

test('a copy descriptor a hash worker cannot write to is an error reply naming the copy and the byte, with its code', async () => {
  await withDir(async (dir) => {
    const source = path.join(dir, 'b.tar');
    await writeFile(source, Buffer.alloc(8192, 1));
    const copyPath = path.join(dir, 'copy.tar');
    await writeFile(copyPath, '');
    const readOnly = await open(copyPath, 'r');
    try {
      const volume: VolumeOnDisk = { path: source, size: 8192, offset: 0, actualSize: 8192 };
      const hashing = hashRangesQueued([volume], [{ id: 0, offset: 512, size: 4096 }], { copyFds: [readOnly.fd], copyPaths: [copyPath], rangeName: () => 'blob sha256:00' });
      await assert.rejects(hashing, isIoError('write', copyPath, 512, 'EBADF', 'blob sha256:00'));
    } finally {
      await readOnly.close();
    }
  });
});

test('a read error of the shared read (volume checksums) names the volume and the byte, and keeps its code', async () => {
  await withDir(async (dir) => {
    const volume = await unreadableVolume(dir, 4096);
    await assert.rejects(hashRanges([volume], [[{ id: 0, offset: 0, size: 4096 }]]), isIoError('read', volume.path, 0, 'EISDIR'));
  });
});

test('a read error of a VolumeSet names the volume and the byte in it, and keeps its code', async () => {
  await withDir(async (dir) => {
    const first = path.join(dir, 'b.tar.001');
    await writeFile(first, Buffer.alloc(100));
    const second = await unreadableVolume(dir, 100);
    const volumes = new VolumeSet([{ path: first, size: 100 }, { path: second.path, size: 100 }]);
    try {
      await assert.rejects(volumes.read(Buffer.alloc(20), 150), isIoError('read', second.path, 50, 'EISDIR'));
    } finally {
      await volumes.close();
    }
  });
});

/** A file of `size` random bytes in `dir`, as one volume. */
async function randomVolume(dir: string, size: number): Promise<{ volume: VolumeOnDisk; bytes: Buffer }> {
  const bytes = randomBytes(size);
  const file = path.join(dir, 'b.tar');
  await writeFile(file, bytes);
  return { volume: { path: file, size, offset: 0, actualSize: size }, bytes };
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

test('workers sharing one queue hash one huge range and many small ones, each once and right, whatever the order', async () => {
  await withDir(async (dir) => {
    const { volume, bytes } = await randomVolume(dir, 3 * 1024 * 1024);
    // One range of 2 MiB, then 40 small ones of different sizes after it, some empty.
    const ranges = [{ id: 0, offset: 0, size: 2 * 1024 * 1024 }];
    for (let offset = 2 * 1024 * 1024, id = 1; id <= 40; id++) {
      const size = (id * 7919) % 20_000;
      ranges.push({ id, offset, size });
      offset += size;
    }
    for (const workers of [1, 2, 3]) {
      let read = 0;
      const hashes = await hashRangesQueued([volume], ranges, { workers, chunkSize: 64 * 1024, onBytes: (n) => (read = n) });
      assert.equal(hashes.size, ranges.length);
      for (const r of ranges) assert.deepEqual(hashes.get(r.id), { sha256: sha256(bytes.subarray(r.offset, r.offset + r.size)) }, `range ${r.id} with ${workers} workers`);
      assert.equal(read, ranges.reduce((n, r) => n + r.size, 0), 'each byte read once');
    }
  });
});

test('prestarted workers take the next call\'s work; a missing volume fails only the ranges on it', async () => {
  await withDir(async (dir) => {
    const { volume, bytes } = await randomVolume(dir, 100_000);
    const missing: VolumeOnDisk = { path: path.join(dir, 'b.tar.002'), size: 50_000, offset: 100_000, actualSize: undefined };
    prestartHashWorkers();
    assert.equal(idleHashWorkers(), 2);
    const hashes = await hashRangesQueued([volume, missing], [{ id: 1, offset: 10, size: 60_000 }, { id: 2, offset: 90_000, size: 20_000 }, { id: 3, offset: 60_010, size: 10 }]);
    assert.equal(idleHashWorkers(), 0, 'the call took both prestarted workers');
    assert.deepEqual(hashes.get(1), { sha256: sha256(bytes.subarray(10, 60_010)) });
    assert.deepEqual(hashes.get(2), { error: `volume ${missing.path} is missing` });
    assert.deepEqual(hashes.get(3), { sha256: sha256(bytes.subarray(60_010, 60_020)) });
  });
});

test('a shared queue hands out its ranges in tar order, whatever their sizes (reads stay near-sequential on a disk)', async () => {
  await withDir(async (dir) => {
    const { volume, bytes } = await randomVolume(dir, 200_000);
    // Sizes that fall and rise along the tar, given out of order: a small range first, the largest in the middle.
    const ranges = [
      { id: 0, offset: 0, size: 1_000 },
      { id: 1, offset: 1_000, size: 30_000 },
      { id: 2, offset: 31_000, size: 90_000 },
      { id: 3, offset: 121_000, size: 500 },
      { id: 4, offset: 121_500, size: 60_000 },
    ];
    const given = [ranges[3]!, ranges[0]!, ranges[4]!, ranges[2]!, ranges[1]!];
    // One worker replies in the order it takes the ranges.
    const hashes = await hashRangesQueued([volume], given, { workers: 1, chunkSize: 4096 });
    assert.deepEqual([...hashes.keys()], [0, 1, 2, 3, 4], 'taken by ascending offset');
    for (const r of ranges) assert.deepEqual(hashes.get(r.id), { sha256: sha256(bytes.subarray(r.offset, r.offset + r.size)) });
  });
});

test('a read error in a worker of a shared queue names the volume, the byte and the blob', async () => {
  await withDir(async (dir) => {
    const volume = await unreadableVolume(dir, 8192);
    const blob = 'blob sha256:' + 'cd'.repeat(32);
    const hashing = hashRangesQueued([volume], [{ id: 9, offset: 1024, size: 4096 }, { id: 3, offset: 0, size: 512 }], { rangeName: (id) => (id === 3 ? blob : undefined), workers: 1 });
    // The first range in the tar is taken first.
    await assert.rejects(hashing, isIoError('read', volume.path, 0, 'EISDIR', blob));
  });
});

test('idle prestarted workers do not keep the process alive', async () => {
  await withDir(async (dir) => {
    // A module file, not `-e`: workers inherit the parent's `--input-type=module -e` and would die at start.
    const module = new URL('../../src/bundle/hash-pipeline.js', import.meta.url).href;
    const script = path.join(dir, 'prestart.mjs');
    // The timer holds the process for 300 ms, long enough for the workers to be up and idle; then nothing should.
    await writeFile(script, `(await import(${JSON.stringify(module)})).prestartHashWorkers(2);\nsetTimeout(() => {}, 300);\n`);
    const child = spawn(process.execPath, [script], { stdio: 'inherit' });
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      child.kill('SIGKILL');
    }, 5_000);
    const [code] = (await once(child, 'exit')) as [number | null, string | null];
    clearTimeout(timer);
    assert.equal(killed, false, 'the process exited by itself within 5 s');
    assert.equal(code, 0);
  });
});
