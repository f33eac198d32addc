// bundle verify: a good bundle passes; each kind of damage is named precisely (volume or blob, expected
// vs found) and fails; signatures are checked against a trusted key.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, mkdir, mkdtemp, open, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { createBundle } from '../../src/bundle/writer.js';
import { openBundle } from '../../src/bundle/reader.js';
import { verifyBundle, type VerifyReport } from '../../src/bundle/verify.js';
import { generateSigningKey } from '../../src/bundle/signing.js';
import { blobContents, MemorySource, tarEntry, testImage, testPlan } from '../support/bundle-plans.js';
import { flipByte } from '../support/damage.js';

const repo = { domain: 'quay.io', path: 'example/app' };
const images = [
  testImage(repo, 'one', [randomBytes(120_000), randomBytes(5000)], { tag: 'v1' }),
  testImage(repo, 'two', [randomBytes(80_000)]),
];
const plan = testPlan(images);
const contents = blobContents(images);
const created = '2024-01-02T03:04:05Z';
const bigLayer = images[0]!.blobs.find((b) => b.size > 100_000)!;

async function withBundle(options: { splitSize?: number; sign?: boolean }, fn: (dir: string, output: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-verify-'));
  try {
    const output = path.join(dir, 'b.tar');
    const key = options.sign ? (await generateSigningKey(path.join(dir, 'key'))).keyPath : undefined;
    await createBundle({ plan, source: new MemorySource(contents), output, created, ...(options.splitSize ? { splitSize: options.splitSize } : {}), ...(key ? { signKey: key } : {}) });
    await fn(dir, output);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Flips one bit of the big layer's byte `at` in the unsplit bundle `output`; returns where the layer lies. */
async function flipBlobByte(output: string, at: number): Promise<{ offset: number; size: number }> {
  const bundle = await openBundle(output);
  const located = (await bundle.locateBlobs()).get(bigLayer.digest)!;
  await bundle.close();
  const handle = await open(output, 'r+');
  const byte = Buffer.alloc(1);
  await handle.read(byte, 0, 1, located.offset + at);
  byte[0] = byte[0]! ^ 0x01;
  await handle.write(byte, 0, 1, located.offset + at);
  await handle.close();
  return located;
}

function kinds(report: VerifyReport): string[] {
  return [...new Set(report.problems.map((p) => p.kind))].sort();
}

test('a freshly created bundle verifies, split or not', async () => {
  for (const splitSize of [undefined, 40_000]) {
    await withBundle(splitSize ? { splitSize } : {}, async (_dir, output) => {
      const report = await verifyBundle(splitSize ? `${output}.002` : output);
      assert.deepEqual(report.problems, []);
      assert.equal(report.ok, true);
      assert.equal(report.blobsChecked, plan.blobs.length);
      assert.equal(report.signature, 'unsigned');
    });
  }
});

test('one flipped byte in a blob names the blob with expected and found digests, and its volume', async () => {
  await withBundle({}, async (_dir, output) => {
    const at = await flipBlobByte(output, 1000);
    const report = await verifyBundle(output);
    assert.equal(report.ok, false);
    assert.deepEqual(kinds(report), ['blob-digest']);
    const blob = report.problems.find((p) => p.kind === 'blob-digest')!;
    assert.equal(blob.subject, bigLayer.digest);
    assert.equal(blob.expected, bigLayer.digest);
    assert.notEqual(blob.found, bigLayer.digest);
    assert.equal(blob.volume, output);
    assert.match(blob.message, new RegExp(`volume ${output} bytes ${at.offset}–${at.offset + at.size}`));
    assert.deepEqual(report.volumes.map((v) => v.ok), [false]);
    // --volume-checksums also recomputes the volume's sha256, which no longer matches the seal.
    const full = await verifyBundle(output, { volumeChecksums: true });
    assert.deepEqual(kinds(full), ['blob-digest', 'volume-sha256']);
    assert.equal(full.problems.find((p) => p.kind === 'volume-sha256')!.subject, output);
  });
});

/** Flips one bit of the byte at tar offset `at` in a bundle split every `split` bytes (or unsplit). */
async function flipTarByte(output: string, at: number, split?: number): Promise<{ file: string; local: number }> {
  const file = split ? `${output}.${String(Math.floor(at / split) + 1).padStart(3, '0')}` : output;
  const local = split ? at % split : at;
  await flipByte(file, local, 0x04);
  return { file, local };
}

test('a flipped byte in a blob\'s tar header is named: entry, volume, byte, expected and found', async () => {
  await withBundle({ splitSize: 40_000 }, async (_dir, output) => {
    const name = `blobs/sha256/${bigLayer.digest.slice('sha256:'.length)}`;
    const entry = await tarEntry(output, name);
    const { file, local } = await flipTarByte(output, entry.headerOffset + 130, 40_000); // inside the size field
    const report = await verifyBundle(output);
    assert.deepEqual(kinds(report), ['tar-header']);
    const p = report.problems[0]!;
    assert.equal(p.subject, name);
    assert.equal(p.volume, file);
    assert.match(p.message, new RegExp(`the tar header of ${name} differs .*: 1 of its 512 bytes differ, the first at byte 130 of it \\(volume ${file} byte ${local}\\)`));
    assert.notEqual(p.expected, p.found);
    assert.equal(report.blobsChecked, plan.blobs.length);
    assert.deepEqual(report.volumes.map((v) => v.path === file ? !v.ok : v.ok), report.volumes.map(() => true));
  });
});

test('a non-zero byte in the padding after a blob, and in the end-of-archive blocks, is named', async () => {
  await withBundle({}, async (_dir, output) => {
    const padded = images.flatMap((i) => i.blobs).find((b) => b.size % 512 !== 0 && b.size % 512 < 500)!;
    const name = `blobs/sha256/${padded.digest.slice('sha256:'.length)}`;
    const entry = await tarEntry(output, name);
    await flipTarByte(output, entry.dataOffset + padded.size + 3);
    const total = (await verifyBundle(output)).volumes[0]!.size;
    await flipTarByte(output, total - 1);
    const report = await verifyBundle(output);
    assert.deepEqual(kinds(report), ['end-of-archive', 'padding']);
    const padding = report.problems.find((p) => p.kind === 'padding')!;
    assert.equal(padding.subject, name);
    assert.match(padding.message, new RegExp(`the padding after ${name} is not zeros: 1 of its ${512 - (padded.size % 512)} bytes differ, the first at byte 3 of it \\(volume ${output} byte ${entry.dataOffset + padded.size + 3}\\)`));
    assert.deepEqual([padding.expected, padding.found], ['0x00', '0x04']);
    assert.match(report.problems.find((p) => p.kind === 'end-of-archive')!.message, new RegExp(`the first at byte 1023 of it \\(volume ${output} byte ${total - 1}\\)`));
  });
});

test('a flipped byte in index.json is named with its offset, though the file is still valid JSON', async () => {
  await withBundle({}, async (_dir, output) => {
    const entry = await tarEntry(output, 'index.json');
    const bytes = Buffer.alloc(entry.size);
    const handle = await open(output, 'r');
    await handle.read(bytes, 0, entry.size, entry.dataOffset);
    await handle.close();
    // A letter inside the "io.pin-preload.image.origin" annotation: JSON stays valid, the digests unchanged.
    const at = bytes.indexOf('io.pin-preload.image.origin') + 3;
    await flipTarByte(output, entry.dataOffset + at);
    const report = await verifyBundle(output);
    assert.deepEqual(kinds(report), ['index']);
    const p = report.problems[0]!;
    assert.equal(p.subject, 'index.json');
    assert.match(p.message, new RegExp(`index.json differs from the one pin-preload.json implies: 1 of its ${entry.size} bytes differ, the first at byte ${at} of it`));
    assert.deepEqual([p.expected, p.found], [`0x${bytes[at]!.toString(16)}`, `0x${(bytes[at]! ^ 0x04).toString(16)}`]);
  });
});

test('a seal whose volume sha256 is wrong is caught with volume checksums', async () => {
  await withBundle({ splitSize: 40_000 }, async (_dir, output) => {
    const sealPath = `${output}.seal.json`;
    const seal = JSON.parse(await readFile(sealPath, 'utf8')) as { volumes: Array<{ sha256: string }> };
    const real = seal.volumes[1]!.sha256;
    seal.volumes[1]!.sha256 = '0'.repeat(64);
    await writeFile(sealPath, `${JSON.stringify(seal, null, 2)}\n`);
    const report = await verifyBundle(output, { volumeChecksums: true });
    assert.equal(report.volumeChecksums, true);
    assert.deepEqual(kinds(report), ['volume-sha256']);
    const p = report.problems[0]!;
    assert.equal(p.subject, `${output}.002`);
    assert.deepEqual([p.expected, p.found], ['0'.repeat(64), real]);
  });
});

test('a truncated volume and a missing volume are named, with sizes', async () => {
  await withBundle({ splitSize: 40_000 }, async (_dir, output) => {
    await truncate(`${output}.002`, 12_345);
    await rm(`${output}.004`);
    const report = await verifyBundle(`${output}.seal.json`);
    assert.equal(report.ok, false);
    const size = report.problems.find((p) => p.kind === 'volume-size')!;
    assert.equal(size.subject, `${output}.002`);
    assert.equal(size.expected, '40000 bytes');
    assert.equal(size.found, '12345 bytes');
    const missing = report.problems.find((p) => p.kind === 'volume-missing')!;
    assert.equal(missing.subject, `${output}.004`);
    assert.ok(report.problems.some((p) => p.kind === 'blob-unreadable' || p.kind === 'blob-missing'));
  });
});

test('a stale extra volume from an earlier bundle is reported', async () => {
  await withBundle({ splitSize: 40_000 }, async (_dir, output) => {
    const report0 = await verifyBundle(output + '.001');
    const extra = `${output}.${String(report0.volumes.length + 1).padStart(3, '0')}`;
    await writeFile(extra, 'old bytes');
    const report = await verifyBundle(`${output}.001`);
    assert.deepEqual(kinds(report), ['volume-stale']);
    assert.equal(report.problems[0]!.subject, extra);
  });
});

test('a signed bundle verifies with its key; a tampered seal or another key fails; unsigned with --trusted-key fails', async () => {
  await withBundle({ sign: true }, async (dir, output) => {
    const good = await verifyBundle(output, { trustedKey: path.join(dir, 'key.pub') });
    assert.equal(good.signature, 'valid');
    assert.equal(good.ok, true);
    const other = await generateSigningKey(path.join(dir, 'other'));
    const wrongKey = await verifyBundle(output, { trustedKey: other.publicKeyPath });
    assert.equal(wrongKey.signature, 'invalid');
    assert.match(wrongKey.problems[0]!.message, /not by the trusted key/);
    // A seal changed by one byte of whitespace no longer matches the signature.
    await appendFile(`${output}.seal.json`, ' ');
    const tampered = await verifyBundle(output, { trustedKey: path.join(dir, 'key.pub') });
    assert.deepEqual(kinds(tampered), ['signature']);
    assert.match(tampered.problems[0]!.message, /does not match the seal/);
    await rm(`${output}.sig`);
    const unsigned = await verifyBundle(output, { trustedKey: path.join(dir, 'key.pub') });
    assert.equal(unsigned.signature, 'unsigned');
    assert.deepEqual(kinds(unsigned), ['signature']);
  });
});

test('a bundle without its seal is reported as incomplete', async () => {
  await withBundle({}, async (_dir, output) => {
    const seal = await readFile(`${output}.seal.json`);
    assert.ok(seal.length > 0);
    await rm(`${output}.seal.json`);
    const report = await verifyBundle(output);
    assert.deepEqual(kinds(report), ['seal']);
    assert.equal(report.blobsChecked, plan.blobs.length);
  });
});

test('inspect reads only the seal and the manifest: it works with every volume but the first gone', async () => {
  const { inspectBundle } = await import('../../src/bundle/inspect.js');
  await withBundle({ splitSize: 40_000 }, async (_dir, output) => {
    const full = await inspectBundle(output);
    for (const v of full.volumes.slice(1)) await rm(path.join(path.dirname(output), v.name));
    const partial = await inspectBundle(`${output}.seal.json`);
    assert.equal(partial.images.length, 2);
    assert.equal(partial.sealed, true);
    assert.equal(partial.blobs, plan.blobs.length);
    assert.deepEqual(partial.volumes.map((v) => v.present), full.volumes.map((_, i) => i === 0));
    assert.equal(partial.images[0]!.tag, 'v1');
  });
});

test('create with an unreadable signing key fails before downloading anything', async () => {
  const { mkdtemp: mk } = await import('node:fs/promises');
  const dir = await mk(path.join(os.tmpdir(), 'pin-preload-verify-'));
  try {
    const source = new MemorySource(contents);
    await assert.rejects(createBundle({ plan, source, output: path.join(dir, 'b.tar'), created, signKey: path.join(dir, 'nope.key') }), /cannot read signing key/);
    assert.equal(source.served.size, 0);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the skeleton, the blob data and pin-preload.json cover every byte of the tar exactly once', async () => {
  const { bundleSkeleton } = await import('../../src/bundle/skeleton.js');
  const { bundleFiles, placeEntries } = await import('../../src/bundle/layout.js');
  await withBundle({ splitSize: 40_000 }, async (_dir, output) => {
    const bundle = await openBundle(output);
    const layout = placeEntries(bundleFiles(bundle.manifest, bundle.manifestBytes.length), { name: 'b.tar' });
    const pieces = [
      ...bundleSkeleton(layout, bundle.manifest).map((r) => [r.offset, r.bytes.length] as const),
      ...layout.entries.filter((e) => e.kind === 'blob' || e.kind === 'manifest').map((e) => [e.dataOffset, e.size] as const),
    ].sort((a, b) => a[0] - b[0]);
    let covered = 0;
    for (const [offset, length] of pieces) {
      assert.equal(offset, covered, `a gap or an overlap at byte ${covered}`);
      covered += length;
    }
    assert.equal(covered, bundle.totalSize);
    await bundle.close();
  });
});

test('a copy made while verifying (copyInto) is byte-identical, split or not; each blob byte is read and hashed once, and with volume checksums every byte read once', async () => {
  for (const splitSize of [undefined, 40_000]) {
    for (const volumeChecksums of [false, true]) {
      await withBundle(splitSize ? { splitSize } : {}, async (dir, output) => {
        const copy = path.join(dir, 'copy');
        await mkdir(copy);
        const bundle = await openBundle(output);
        const blobBytes = [...(await bundle.locateBlobs()).values()].reduce((sum, b) => sum + b.size, 0);
        const totalBytes = bundle.totalSize;
        await bundle.close();
        const report = await verifyBundle(output, { copyInto: copy, ...(volumeChecksums ? { volumeChecksums } : {}) });
        assert.deepEqual(report.problems, []);
        assert.equal(report.volumeChecksums, volumeChecksums, 'the volume sha256 only when asked, as for verify');
        // bytesRead counts what the hash workers read and hash (without volume checksums: each its share of the
        // blobs, so a byte hashed twice would count twice), or what the shared read passed to both workers.
        assert.equal(report.bytesRead, volumeChecksums ? totalBytes : blobBytes, volumeChecksums ? 'every byte read once for both hashes' : 'each blob byte read and hashed once');
        for (const v of report.volumes) assert.ok((await readFile(v.path)).equals(await readFile(path.join(copy, path.basename(v.path)))), `${v.path} copied exactly`);
      });
    }
  }
});

test('a copy names a damaged blob with its volume and range, and holds what was read', async () => {
  await withBundle({}, async (dir, output) => {
    const located = await flipBlobByte(output, 7);
    const copy = path.join(dir, 'copy');
    await mkdir(copy);
    const report = await verifyBundle(output, { copyInto: copy });
    assert.deepEqual(kinds(report), ['blob-digest']);
    const damaged = report.problems[0]!;
    assert.equal(damaged.subject, bigLayer.digest);
    assert.equal(damaged.volume, output);
    assert.match(damaged.message, new RegExp(`volume ${output} bytes ${located.offset}–${located.offset + located.size}\\)$`));
    assert.ok((await readFile(output)).equals(await readFile(path.join(copy, 'b.tar'))), 'the copy holds what was read and hashed');
  });
});

test('a copy names a damaged tar header and padding (bytes no hash covers) and still holds what was read', async () => {
  await withBundle({ splitSize: 40_000 }, async (dir, output) => {
    const name = `blobs/sha256/${bigLayer.digest.slice('sha256:'.length)}`;
    const entry = await tarEntry(output, name);
    const header = await flipTarByte(output, entry.headerOffset + 130, 40_000);
    const padded = images.flatMap((i) => i.blobs).find((b) => b.size % 512 !== 0 && b.size % 512 < 500)!;
    const paddedEntry = await tarEntry(output, `blobs/sha256/${padded.digest.slice('sha256:'.length)}`);
    const padding = await flipTarByte(output, paddedEntry.dataOffset + padded.size + 3, 40_000);
    const copy = path.join(dir, 'copy');
    await mkdir(copy);
    const report = await verifyBundle(output, { copyInto: copy });
    assert.deepEqual(kinds(report), ['padding', 'tar-header']);
    assert.match(report.problems.find((p) => p.kind === 'tar-header')!.message, new RegExp(`the tar header of ${name} differs .*\\(volume ${header.file} byte ${header.local}\\)`));
    assert.match(report.problems.find((p) => p.kind === 'padding')!.message, new RegExp(`\\(volume ${padding.file} byte ${padding.local}\\)`));
    for (const v of report.volumes) assert.ok((await readFile(v.path)).equals(await readFile(path.join(copy, path.basename(v.path)))), `${v.path} copied as read`);
  });
});

test('a copy stops with ABORT_ERR when its signal is aborted', async () => {
  await withBundle({}, async (dir, output) => {
    const copy = path.join(dir, 'copy');
    await mkdir(copy);
    const controller = new AbortController();
    controller.abort();
    await assert.rejects(verifyBundle(output, { copyInto: copy, signal: controller.signal }), (err: unknown) => (err as { code?: string }).code === 'ABORT_ERR');
  });
});

test('a copy of a larger bundle aborted mid-way stops both workers and the main thread with ABORT_ERR, every descriptor closed', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-verify-abort-'));
  try {
    // Two 36 MiB layers, one per worker: a worker reports progress every 32 MiB, so the first report comes
    // while both still have bytes to read and copy.
    const big = testImage(repo, 'big', [randomBytes(36 * 1024 * 1024), randomBytes(36 * 1024 * 1024)]);
    const output = path.join(dir, 'big.tar');
    await createBundle({ plan: testPlan([big]), source: new MemorySource(blobContents([big])), output, created });
    const copy = path.join(dir, 'copy');
    await mkdir(copy);
    const openFds = async () => (await readdir('/proc/self/fd')).length;
    const fdsBefore = await openFds();
    const controller = new AbortController();
    let seen = 0;
    let total = 0;
    const copying = verifyBundle(output, {
      copyInto: copy,
      signal: controller.signal,
      onBytes: (bytes, totalBytes) => {
        seen = bytes;
        total = totalBytes;
        controller.abort();
      },
    });
    await assert.rejects(copying, (err: unknown) => (err as { code?: string }).code === 'ABORT_ERR');
    assert.ok(seen > 0 && seen < total, `aborted mid-copy: ${seen} of ${total} bytes read`);
    assert.equal(await openFds(), fdsBefore, 'the volumes and the copies are closed');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a carried signature verifies with the image it is about; one about an image the bundle lacks is named', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-verify-signature-'));
  try {
    const repo = { domain: 'registry.example.com', path: 'team/app' };
    const app = testImage(repo, 'app', [randomBytes(300)]);
    const sig = testImage(repo, 'sig', [randomBytes(50)]);
    const signatureOf = (subject: typeof app.image.reference.digest) => ({ ...sig, image: { ...sig.image, origin: 'signature' as const, subject, tag: `sha256-${subject.slice(7)}.sig`, platforms: [] } });
    const good = path.join(dir, 'good.tar');
    await createBundle({ plan: testPlan([app, signatureOf(app.image.reference.digest)]), source: new MemorySource(blobContents([app, sig])), output: good, created: '2026-01-01T00:00:00Z' });
    assert.deepEqual((await verifyBundle(good)).problems, []);
    const orphan = path.join(dir, 'orphan.tar');
    const elsewhere = testImage({ domain: 'registry.example.com', path: 'team/other' }, 'other', [randomBytes(10)]).image.reference.digest;
    await createBundle({ plan: testPlan([app, signatureOf(elsewhere)]), source: new MemorySource(blobContents([app, sig])), output: orphan, created: '2026-01-01T00:00:00Z' });
    const report = await verifyBundle(orphan);
    assert.equal(report.ok, false);
    assert.deepEqual(report.problems.map((p) => [p.kind, p.message]), [['image-manifest', `signature registry.example.com/team/app@${sig.image.reference.digest} is about ${elsewhere}, which is not an image of registry.example.com/team/app in the bundle`]]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a bundle of one large blob and many small ones verifies; damaged blobs, whichever worker takes them, are named with their volume and bytes', async () => {
  const split = 64_000;
  const mixedImages = [testImage(repo, 'large', [randomBytes(400_000)]), ...Array.from({ length: 6 }, (_, i) => testImage(repo, `small-${i}`, Array.from({ length: 5 }, (_, j) => randomBytes(500 + 97 * (i * 5 + j)))))];
  const mixed = { plan: testPlan(mixedImages), contents: blobContents(mixedImages) };
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-verify-'));
  try {
    const output = path.join(dir, 'b.tar');
    await createBundle({ plan: mixed.plan, source: new MemorySource(mixed.contents), output, created, splitSize: split });
    const good = await verifyBundle(output);
    assert.deepEqual(good.problems, []);
    assert.equal(good.blobsChecked, mixed.plan.blobs.length);

    // The largest blob and the three smallest that lie in one volume.
    const bundle = await openBundle(`${output}.001`);
    const located = [...(await bundle.locateBlobs())].map(([digest, at]) => ({ digest, ...at }));
    await bundle.close();
    const inOneVolume = located.filter((b) => Math.floor(b.offset / split) === Math.floor((b.offset + b.size - 1) / split) && b.size > 0);
    const bySize = [...inOneVolume].sort((a, b) => a.size - b.size);
    const damaged = [...bySize.slice(0, 3), [...located].sort((a, b) => b.size - a.size)[0]!];
    for (const b of damaged) await flipTarByte(output, b.offset + Math.floor(b.size / 2), split);

    const report = await verifyBundle(output);
    assert.deepEqual(kinds(report), ['blob-digest']);
    assert.deepEqual(report.problems.map((p) => p.subject).sort(), damaged.map((b) => b.digest).sort());
    for (const b of damaged.slice(0, 3)) {
      const problem = report.problems.find((p) => p.subject === b.digest)!;
      const file = `${output}.${String(Math.floor(b.offset / split) + 1).padStart(3, '0')}`;
      const local = b.offset % split;
      assert.equal(problem.volume, file);
      assert.match(problem.message, new RegExp(`volume ${file} bytes ${local}–${local + b.size}\\)$`));
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
