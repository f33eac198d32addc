import { test } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import { statfs } from 'node:fs/promises';
import { checkStorage, storageNeed, StorageInsufficientError, type ImageLayers } from '../../../src/node/storage-check.js';

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
  assert.deepEqual(storageNeed(IMAGES, new Set(['a', 'b']), 0, 'crio'), { layerCount: 1, layerBytes: 3000, reserveBytes: 0, requiredBytes: 3000 });
  assert.equal(storageNeed(IMAGES, new Set(['a', 'b', 'c']), 0, 'crio').layerCount, 0);
});

test('containerd also keeps the compressed blobs in its content store', () => {
  assert.equal(storageNeed(IMAGES, new Set(['a']), 0, 'containerd').layerBytes, 2000 + 200 + 3000 + 300);
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
