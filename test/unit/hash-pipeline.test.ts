// The hash pipeline's failures: a read or write error on a worker or the main thread names the file, the
// byte and the range (blob) it was in, and keeps its code; a closed-off copy descriptor is reported, not hung on.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { hashRanges, hashRangesDirect, type VolumeOnDisk } from '../../src/bundle/hash-pipeline.js';
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
    const hashing = hashRangesDirect([volume], [[{ id: 7, offset: 1024, size: 2048 }]], { rangeName: (id) => (id === 7 ? blob : undefined) });
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
      const hashing = hashRangesDirect([volume], [[{ id: 0, offset: 512, size: 4096 }]], { copyFds: [readOnly.fd], copyPaths: [copyPath], rangeName: () => 'blob sha256:00' });
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
