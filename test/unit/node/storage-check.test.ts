import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { mkdtemp, rm, statfs } from 'node:fs/promises';
import { checkStorage, storageNeed, StorageInsufficientError, type ImageLayers } from '../../../src/node/storage-check.js';
import { isUserError } from '../../../src/util/errors.js';

const run = promisify(execFile);

const L1 = { digest: 'sha256:1', size: 100, uncompressedSize: 1000 };
const L2 = { digest: 'sha256:2', size: 200, uncompressedSize: 2000 };
const L3 = { digest: 'sha256:3', size: 300, uncompressedSize: 3000 };
const IMAGES: ImageLayers[] = [
  { name: 'a', layers: [L1, L2] },
  { name: 'b', layers: [L2, L3] },
  { name: 'c', layers: [L3] },
];

test('counts each layer once across the images not yet present, plus the reserve', () => {
  assert.deepEqual(storageNeed(IMAGES, new Set(), 50, 'crio'), { layerCount: 3, layerBytes: 6000, reserveBytes: 50, requiredBytes: 6050 });
});

test('skips images the runtime already has', () => {
  assert.deepEqual(storageNeed(IMAGES, new Set(['a']), 0, 'crio'), { layerCount: 1, layerBytes: 3000, reserveBytes: 0, requiredBytes: 3000 });
  assert.equal(storageNeed(IMAGES, new Set(['a', 'b', 'c']), 0, 'crio').layerCount, 0);
});

test('layers a present image already brought (a shared base layer) are not counted again', () => {
  // b is missing, but its L2 is on disk with a: only L3 is new.
  assert.deepEqual(storageNeed(IMAGES, new Set(['a', 'c']), 0, 'crio'), { layerCount: 0, layerBytes: 0, reserveBytes: 0, requiredBytes: 0 });
  assert.deepEqual(storageNeed(IMAGES, new Set(['c']), 0, 'crio'), { layerCount: 2, layerBytes: 1000 + 2000, reserveBytes: 0, requiredBytes: 3000 });
});

test('containerd also keeps the compressed blobs in its content store', () => {
  assert.equal(storageNeed(IMAGES, new Set(['c']), 0, 'containerd').layerBytes, 1000 + 100 + 2000 + 200);
});

const fakeCri = (mountpoint: string) => ({ imageFsInfo: async () => [{ mountpoint }] });

test('enough room: the report has the ImageFsInfo mountpoint and its real free space', async () => {
  const dir = os.tmpdir();
  const fs = await statfs(dir);
  const report = await checkStorage({ cri: fakeCri(dir), imageFs: undefined, images: IMAGES, present: new Set(), reserveBytes: 0, runtime: 'crio' });
  assert.equal(report.mountpoint, dir);
  assert.ok(report.enough);
  assert.ok(Math.abs(report.availableBytes - fs.bavail * fs.bsize) < 64 * 2 ** 20, 'statfs free space');
});

test('a reserve larger than the free space is refused with required and available bytes, human and exact', async () => {
  await assert.rejects(
    checkStorage({ cri: fakeCri('/nonexistent'), imageFs: os.tmpdir(), images: IMAGES, present: new Set(), reserveBytes: 2 ** 60, runtime: 'crio' }),
    (err: unknown) => {
      assert.ok(err instanceof StorageInsufficientError);
      assert.equal(err.code, 'STORAGE_INSUFFICIENT');
      assert.equal(err.report.mountpoint, os.tmpdir(), '[runtime] image_fs overrides ImageFsInfo');
      assert.equal(err.report.requiredBytes, 2 ** 60 + 6000);
      assert.match(err.message, new RegExp(`required [0-9.]+ [KMGTP]iB \\(${2 ** 60 + 6000} bytes\\)`));
      assert.match(err.message, /available [0-9.]+ [KMGTP]?i?B \(\d+ bytes\)/);
      return true;
    },
  );
});

test('nothing to pull is never refused, whatever the reserve', async () => {
  const report = await checkStorage({ cri: fakeCri(os.tmpdir()), imageFs: undefined, images: IMAGES, present: new Set(['a', 'b', 'c']), reserveBytes: 2 ** 60, runtime: 'crio' });
  assert.ok(report.enough);
});

/**
 * A 4 MiB tmpfs of our own: nothing else writes to it, so statfs' free space stays exact while a test
 * compares against it byte for byte. Needs root (mount); CI runs as root.
 */
async function quietFilesystem(t: { after(fn: () => Promise<void>): void; skip(message: string): void }): Promise<string | undefined> {
  if (process.getuid?.() !== 0) {
    t.skip('mounting a tmpfs needs root');
    return undefined;
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-storage-'));
  await run('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', dir]);
  t.after(async () => {
    await run('umount', [dir]);
    await rm(dir, { recursive: true, force: true });
  });
  return dir;
}

test('required = available − 1 and = available fit; available + 1 byte is refused', async (t) => {
  const dir = await quietFilesystem(t);
  if (dir === undefined) return;
  const fs = await statfs(dir);
  const available = fs.bavail * fs.bsize;
  const layerBytes = storageNeed(IMAGES, new Set(), 0, 'containerd').layerBytes;
  const check = (required: number) =>
    checkStorage({ cri: fakeCri(dir), imageFs: undefined, images: IMAGES, present: new Set(), reserveBytes: required - layerBytes, runtime: 'containerd' });

  const below = await check(available - 1);
  assert.deepEqual([below.requiredBytes, below.availableBytes, below.enough], [available - 1, available, true]);
  const equal = await check(available);
  assert.deepEqual([equal.requiredBytes, equal.availableBytes, equal.enough], [available, available, true]);
  await assert.rejects(check(available + 1), (err: unknown) => {
    assert.ok(err instanceof StorageInsufficientError);
    assert.deepEqual([err.report.requiredBytes, err.report.availableBytes], [available + 1, available]);
    assert.ok(err.message.includes(`(${available + 1} bytes)`) && err.message.includes(`available`), err.message);
    return true;
  });
});

test('a runtime that reports no image filesystem fails with IMAGE_FS_UNKNOWN, naming [runtime] image_fs', async () => {
  for (const reported of [[], [{ mountpoint: '' }]]) {
    await assert.rejects(
      checkStorage({ cri: { imageFsInfo: async () => reported }, imageFs: undefined, images: IMAGES, present: new Set(), reserveBytes: 0, runtime: 'crio' }),
      (err: unknown) => {
        assert.ok(isUserError(err));
        assert.equal(err.code, 'IMAGE_FS_UNKNOWN');
        assert.match(err.hint ?? '', /\[runtime\] image_fs/);
        return true;
      },
    );
  }
});

test('an image filesystem whose free space cannot be read fails with IMAGE_FS_UNREADABLE naming the directory', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-storage-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const missing = path.join(dir, 'no-such-dir');
  await assert.rejects(
    checkStorage({ cri: fakeCri(missing), imageFs: undefined, images: IMAGES, present: new Set(), reserveBytes: 0, runtime: 'crio' }),
    (err: unknown) => {
      assert.ok(isUserError(err));
      assert.equal(err.code, 'IMAGE_FS_UNREADABLE');
      assert.ok(err.message.includes(missing) && err.message.includes('ENOENT'), err.message);
      return true;
    },
  );
});
