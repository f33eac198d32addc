// The bundle reader against bundles written in memory by a tiny writer here (layout + headers + seal),
// so the reader is checked independently of the real writer.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { buffer } from 'node:stream/consumers';
import { Readable } from 'node:stream';
import tar from 'tar-stream';
import { planLayout } from '../../src/bundle/layout.js';
import { serializeManifest } from '../../src/bundle/bundle-manifest.js';
import { ociIndexBytes, ociLayoutBytes } from '../../src/bundle/oci-layout.js';
import { encodeHeader } from '../../src/bundle/tar-header.js';
import { serializeSeal } from '../../src/bundle/seal.js';
import { openBundle } from '../../src/bundle/reader.js';
import { BUNDLE_FORMAT, BUNDLE_FORMAT_VERSION } from '../../src/bundle/format.js';
import { sha256Of } from '../../src/oci/digest.js';
import { blobContents, testImage, testPlan } from '../support/bundle-plans.js';
import { withTempDir } from '../support/temp-dir.js';

const repo = { domain: 'quay.io', path: 'example/app' };
const images = [
  testImage(repo, 'one', [Buffer.alloc(3000, 1), randomBytes(70_000)]),
  testImage(repo, 'two', [Buffer.alloc(3000, 1), Buffer.from('x'.repeat(1234))], { tag: 'v2' }),
];
const plan = testPlan(images);
const contents = blobContents(images);

/** Writes the bundle for `plan` into `dir` as NAME (or NAME.001… when split), with a seal. */
async function writeTinyBundle(dir: string, name: string, splitSize?: number): Promise<Buffer> {
  const planned = planLayout(plan, { name, created: '1970-01-01T00:00:00Z', ...(splitSize ? { splitSize } : {}) });
  const tarBytes = Buffer.alloc(planned.layout.totalSize);
  const manifestBytes = serializeManifest(planned.manifest, planned.manifestReservedSize);
  for (const entry of planned.layout.entries) {
    encodeHeader(entry.name, entry.size, entry.type).copy(tarBytes, entry.headerOffset);
    const data = entry.kind === 'manifest' ? manifestBytes
      : entry.kind === 'oci-layout' ? ociLayoutBytes()
      : entry.kind === 'index' ? ociIndexBytes(planned.manifest)
      : entry.kind === 'blob' ? contents.get(entry.digest!)!
      : Buffer.alloc(0);
    data.copy(tarBytes, entry.dataOffset);
  }
  const volumes = [];
  for (const v of planned.layout.volumes) {
    const bytes = tarBytes.subarray(v.offset, v.offset + v.size);
    await writeFile(path.join(dir, v.name), bytes);
    volumes.push({ name: v.name, size: v.size, sha256: createHash('sha256').update(bytes).digest('hex') });
  }
  const seal = { format: BUNDLE_FORMAT, formatVersion: BUNDLE_FORMAT_VERSION, manifestDigest: sha256Of(manifestBytes), totalSize: tarBytes.length, volumes } as const;
  await writeFile(path.join(dir, `${name}.seal.json`), serializeSeal(seal));
  return tarBytes;
}

const withDir = (fn: (dir: string) => Promise<void>): Promise<void> => withTempDir('pin-preload-reader-', fn);

test('opens an unsplit bundle from the tar and from the seal, with the manifest and seal', async () => {
  await withDir(async (dir) => {
    await writeTinyBundle(dir, 'b.tar');
    for (const file of ['b.tar', 'b.tar.seal.json']) {
      const bundle = await openBundle(path.join(dir, file));
      try {
        assert.equal(bundle.name, 'b.tar');
        assert.equal(bundle.volumes.length, 1);
        assert.equal(bundle.manifest.images.length, 2);
        assert.equal(bundle.seal?.manifestDigest, sha256Of(bundle.manifestBytes));
        assert.equal(bundle.manifest.images[1]!.tag, 'v2');
      } finally {
        await bundle.close();
      }
    }
  });
});

test('the hand-written tar is a valid tar with entries in format order', async () => {
  await withDir(async (dir) => {
    const tarBytes = await writeTinyBundle(dir, 'b.tar');
    const names: string[] = [];
    const extract = tar.extract();
    extract.on('entry', (header, stream, next) => {
      names.push(header.name);
      stream.resume();
      stream.on('end', next);
    });
    await new Promise<void>((resolve, reject) => {
      extract.on('finish', resolve).on('error', reject);
      Readable.from([tarBytes]).pipe(extract);
    });
    assert.deepEqual(names.slice(0, 5), ['pin-preload.json', 'oci-layout', 'index.json', 'blobs/', 'blobs/sha256/']);
    assert.equal(names.length, 5 + plan.blobs.length);
  });
});

test('scans headers and streams every blob across volume boundaries of a split bundle', async () => {
  await withDir(async (dir) => {
    const tarBytes = await writeTinyBundle(dir, 'b.tar', 10_000);
    const bundle = await openBundle(path.join(dir, 'b.tar.004'));
    try {
      assert.ok(bundle.volumes.length > 5);
      assert.equal(bundle.totalSize, tarBytes.length);
      const entries = [];
      for await (const e of bundle.scanEntries()) entries.push(e);
      assert.equal(entries[0]!.name, 'pin-preload.json');
      assert.equal(entries.length, 5 + plan.blobs.length);
      const blobs = await bundle.locateBlobs();
      assert.equal(blobs.size, plan.blobs.length);
      for (const [digest, at] of blobs) {
        const bytes = await buffer(bundle.createReadStream(at.offset, at.size));
        assert.equal(sha256Of(bytes), digest);
      }
      const whole = await buffer(bundle.createReadStream(0, bundle.totalSize));
      assert.ok(whole.equals(tarBytes));
    } finally {
      await bundle.close();
    }
  });
});

test('refuses a bundle whose manifest does not match the seal, naming it', async () => {
  await withDir(async (dir) => {
    const tarBytes = await writeTinyBundle(dir, 'b.tar');
    tarBytes[600] = tarBytes[600]! ^ 1; // inside pin-preload.json's data
    await writeFile(path.join(dir, 'b.tar'), tarBytes);
    await assert.rejects(openBundle(path.join(dir, 'b.tar')), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'BUNDLE_DAMAGED');
      assert.match(err.message, /pin-preload\.json has digest .* the seal/);
      return true;
    });
  });
});

test('refuses a split bundle with a missing volume, naming the volume', async () => {
  await withDir(async (dir) => {
    await writeTinyBundle(dir, 'b.tar', 10_000);
    await rm(path.join(dir, 'b.tar.003'));
    await assert.rejects(openBundle(path.join(dir, 'b.tar.seal.json')), /b\.tar\.003 is missing/);
  });
});

test('refuses split volumes without their seal, but opens a lone tar without one', async () => {
  await withDir(async (dir) => {
    await writeTinyBundle(dir, 's.tar', 10_000);
    await rm(path.join(dir, 's.tar.seal.json'));
    await assert.rejects(openBundle(path.join(dir, 's.tar.001')), (err: Error & { code?: string }) => err.code === 'BUNDLE_UNSEALED');
    await writeTinyBundle(dir, 'b.tar');
    await rm(path.join(dir, 'b.tar.seal.json'));
    const bundle = await openBundle(path.join(dir, 'b.tar'));
    assert.equal(bundle.seal, undefined);
    assert.equal((await bundle.locateBlobs()).size, plan.blobs.length);
    await bundle.close();
  });
});
