// `pin-preload import`: a bundle from "media" into the node's bundle dir, hashed while copied, verified, renamed
// into place seal last; bad bundles rejected with the reason and nothing left behind.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createBundle } from '../../src/bundle/writer.js';
import { generateSigningKey } from '../../src/bundle/signing.js';
import { serializeSeal } from '../../src/bundle/seal.js';
import type { BundleSeal } from '../../src/bundle/format.js';
import { createHash, randomBytes } from 'node:crypto';
import { openBundle } from '../../src/bundle/reader.js';
import { resolveConfig, type NodeConfig } from '../../src/node/config.js';
import { importBundle } from '../../src/node/import.js';
import { openStateDatabase } from '../../src/state/database.js';
import { NodeState } from '../../src/state/node-state.js';
import { BundleStore } from '../../src/mirror/bundle-store.js';
import { isUserError } from '../../src/util/errors.js';
import { deltaPlan, readPrevious } from '../../src/plan/delta.js';
import { blobContents, MemorySource, tarEntry, testImage, testPlan } from '../support/bundle-plans.js';
import { assertNoInternalError, CLI, runCli, type CliResult } from '../support/cli.js';
import { cliUnderEio, cliUnderFault, skippedWithoutStrace } from '../support/eio.js';
import { flipByte } from '../support/damage.js';

const REPO = { domain: 'quay.io', path: 'openshift-release-dev/ocp-v4.0-art-dev' };
const CREATED = '2026-01-01T00:00:00Z';

async function tempDir(t: { after(fn: () => Promise<void>): void }, label: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `pin-preload-${label}-`));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A signed bundle of three small images, split into 3+ volumes, on "media". */
async function makeBundle(dir: string): Promise<{ seal: string; volumes: string[] }> {
  // Random layer bytes do not compress, so the bundle really spans several 64 KiB volumes.
  const images = [0, 1, 2].map((i) => testImage(REPO, `img${i}`, [randomBytes(40_000 + i), randomBytes(30_000)]));
  const key = path.join(dir, 'key');
  await generateSigningKey(key);
  const result = await createBundle({
    plan: testPlan(images),
    source: new MemorySource(blobContents(images)),
    output: path.join(dir, 'media', 'ocp.tar'),
    splitSize: 64 * 1024,
    signKey: key,
    created: CREATED,
  });
  return { seal: result.sealPath, volumes: result.volumes.map((v) => v.path) };
}

function nodeConfig(root: string): NodeConfig {
  return resolveConfig(
    new Map<string, unknown>([
      ['paths.bundles', path.join(root, 'bundles')],
      ['paths.state', path.join(root, 'state.db')],
    ]),
    new Map(),
    undefined,
  );
}

test('imports every volume, the seal and the signature, verified, and registers the bundle for state and mirror', async (t) => {
  const dir = await tempDir(t, 'import');
  const { seal, volumes } = await makeBundle(dir);
  assert.ok(volumes.length >= 3, 'a split bundle');
  const config = nodeConfig(path.join(dir, 'node'));
  const result = await importBundle(config, volumes[1]!); // any volume names the bundle
  assert.equal(result.alreadyImported, false);
  assert.equal(result.bundlePath, path.join(config.paths.bundles, 'ocp.tar'));
  const expected = [...volumes.map((v) => path.basename(v)), 'ocp.tar.seal.json', 'ocp.tar.sig'].sort();
  assert.deepEqual((await readdir(config.paths.bundles)).sort(), expected, 'the whole bundle and nothing else (no temp dir)');
  for (const v of volumes) assert.ok((await readFile(v)).equals(await readFile(path.join(config.paths.bundles, path.basename(v)))));
  assert.ok((await readFile(seal)).equals(await readFile(result.sealPath)));

  const db = openStateDatabase(config.paths.state);
  try {
    const state = new NodeState(db);
    const bundles = state.bundles();
    assert.deepEqual(bundles.map((b) => [b.path, b.verified, b.imageCount]), [[result.bundlePath, true, 3]]);
    assert.equal(state.status().desiredGeneration, 1, 'a new bundle is a new desired generation');
    assert.equal(state.status().currentGeneration, 0, 'not current until a preload completes');
    assert.deepEqual(state.images().map((i) => i.state), ['pending', 'pending', 'pending'], 'its images wait for the preload');
    const store = await BundleStore.open(db);
    assert.deepEqual(store.listBundles().map((b) => b.path), [result.bundlePath], 'the mirror serves it');
  } finally {
    db.close();
  }

  const again = await importBundle(config, seal);
  assert.equal(again.alreadyImported, true);
  assert.equal(again.bytesCopied, 0);
});

/** Where [offset, offset+size) of the tar lies in the volumes: "volume V bytes a–b", pieces joined by " and ". */
function volumeText(volumes: readonly string[], sizes: readonly number[], offset: number, size: number): string {
  const pieces: string[] = [];
  let start = 0;
  volumes.forEach((v, i) => {
    const from = Math.max(offset, start);
    const to = Math.min(offset + size, start + sizes[i]!);
    if (to > from) pieces.push(`volume ${v} bytes ${from - start}–${to - start}`);
    start += sizes[i]!;
  });
  return pieces.join(' and ');
}

/** The volume and offset in it of byte `offset` of the tar. */
function volumeAt(volumes: readonly string[], sizes: readonly number[], offset: number): { volume: string; local: number } {
  let i = 0;
  while (offset >= sizes[i]!) offset -= sizes[i++]!;
  return { volume: volumes[i]!, local: offset };
}

test('a blob damaged on the media is rejected naming the blob, its volume and its byte range, leaving nothing behind', async (t) => {
  const dir = await tempDir(t, 'import-bad');
  const { seal, volumes } = await makeBundle(dir);
  const sizes = await Promise.all(volumes.map(async (v) => (await readFile(v)).length));
  const opened = await openBundle(seal);
  const layer = opened.manifest.blobs.find((b) => b.role === 'layer')!;
  const at = (await opened.locateBlobs()).get(layer.digest)!;
  await opened.close();
  const damaged = volumeAt(volumes, sizes, at.offset + Math.floor(at.size / 2));
  await flipByte(damaged.volume, damaged.local);
  const config = nodeConfig(path.join(dir, 'node'));
  await assert.rejects(importBundle(config, seal), (err: unknown) => {
    assert.ok(isUserError(err));
    assert.equal(err.code, 'IMPORT_REJECTED');
    assert.ok(err.message.includes(`blob ${layer.digest} is damaged: its content has another digest (blobs/sha256/${layer.digest.slice(7)}, ${volumeText(volumes, sizes, at.offset, at.size)})`), err.message);
    return true;
  });
  assert.deepEqual(await readdir(config.paths.bundles), [], 'no volume, seal or temp dir left');
  await assert.rejects(importBundle(config, seal, { volumeChecksums: true }), (err: unknown) => {
    assert.ok(isUserError(err));
    assert.match(err.message, new RegExp(`volume ${path.basename(damaged.volume).replace('.', '\\.')} has sha256 [0-9a-f]{64}, the seal says`), 'with volumeChecksums, the volume sha256 as well');
    return true;
  });
  assert.deepEqual(await readdir(config.paths.bundles), []);
  await flipByte(damaged.volume, damaged.local);
  assert.equal((await importBundle(config, seal)).alreadyImported, false, 'the repaired media imports on a re-run');
});

test('a damaged tar header or padding on the media (bytes no digest covers) is rejected naming the entry, volume and byte, leaving nothing behind', async (t) => {
  const dir = await tempDir(t, 'import-skeleton');
  const { seal, volumes } = await makeBundle(dir);
  const sizes = await Promise.all(volumes.map(async (v) => (await readFile(v)).length));
  const opened = await openBundle(seal);
  const layers = opened.manifest.blobs.filter((b) => b.role === 'layer');
  await opened.close();
  const padded = layers.find((b) => b.size % 512 !== 0)!;
  const cases = [
    { name: `blobs/sha256/${layers[0]!.digest.slice(7)}`, at: (e: { headerOffset: number }) => e.headerOffset + 130, what: 'the tar header of' },
    { name: `blobs/sha256/${padded.digest.slice(7)}`, at: (e: { dataOffset: number; size: number }) => e.dataOffset + e.size + 3, what: 'the padding after' },
  ];
  for (const c of cases) {
    const byte = volumeAt(volumes, sizes, c.at(await tarEntry(seal, c.name)));
    await flipByte(byte.volume, byte.local);
    const config = nodeConfig(path.join(dir, `node-${c.what.split(' ')[1]!}`));
    await assert.rejects(importBundle(config, seal), (err: unknown) => {
      assert.ok(isUserError(err));
      assert.equal(err.code, 'IMPORT_REJECTED');
      assert.match(err.message, new RegExp(`${c.what} ${c.name} .*\\(volume ${byte.volume.replace(/\./g, '\\.')} byte ${byte.local}\\)`));
      return true;
    });
    assert.deepEqual(await readdir(config.paths.bundles), [], `${c.what}: nothing left`);
    await flipByte(byte.volume, byte.local);
  }
});

test('import opens each volume of the media once, reads the seal and the signature once, with volume checksums or without, and pin-preload.json once without (system calls counted)', async (t) => {
  if (skippedWithoutStrace(t)) return;
  const dir = await tempDir(t, 'import-opens');
  const { seal, volumes } = await makeBundle(dir);
  const opened = await openBundle(seal);
  const manifest = { offset: 512, size: opened.manifestBytes.length };
  await opened.close();
  for (const flags of [[], ['--volume-checksums']]) {
    const what = flags.length > 0 ? 'with volume checksums' : 'without volume checksums';
    const config = nodeConfig(path.join(dir, `node${flags.length}`));
    const traces = path.join(dir, `traces${flags.length}`);
    await mkdir(traces);
    // One file per thread (-ff): a call is never split by another thread's, and -ttt orders them all.
    execFileSync('strace', ['-ff', '-ttt', '-s', '0', '-e', 'trace=openat,pread64,close', '-o', path.join(traces, 'trace'), process.execPath, CLI,
      'import', seal, ...flags, '--config', '/dev/null', '--bundles', config.paths.bundles, '--state', config.paths.state], { stdio: 'ignore', timeout: 120_000 });
    const calls = (await Promise.all((await readdir(traces)).map((f) => readFile(path.join(traces, f), 'utf8'))))
      .flatMap((text) => text.split('\n').filter(Boolean))
      .sort((a, b) => Number(a.split(' ')[0]) - Number(b.split(' ')[0]));
    const opens = new Map<string, number>();
    const fdPath = new Map<number, string>();
    let manifestReads = 0;
    for (const call of calls) {
      const open = /openat\([^,]+, "([^"]+)".* = (\d+)$/.exec(call);
      if (open) {
        opens.set(open[1]!, (opens.get(open[1]!) ?? 0) + 1);
        fdPath.set(Number(open[2]), open[1]!);
      }
      const close = /close\((\d+)\) = 0/.exec(call);
      if (close) fdPath.delete(Number(close[1]));
      const pread = /pread64\((\d+), .*, (\d+), (\d+)\) = (\d+)/.exec(call);
      if (pread && fdPath.get(Number(pread[1])) === volumes[0] && Number(pread[3]) < manifest.offset + manifest.size && Number(pread[3]) + Number(pread[4]) > manifest.offset) manifestReads++;
    }
    for (const v of volumes) assert.equal(opens.get(v), 1, `${v} opened once, ${what}`);
    assert.equal(opens.get(seal), 1, `the seal read once, ${what}`);
    assert.equal(opens.get(seal.replace(/\.seal\.json$/, '.sig')), 1, `the signature read once, ${what}`);
    // With volume checksums the volumes' hashes read every byte, pin-preload.json's too, after the layout's read.
    assert.equal(manifestReads, flags.length > 0 ? 2 : 1, `pin-preload.json read ${flags.length > 0 ? 'twice' : 'once'}, ${what}`);
    assert.deepEqual((await readdir(config.paths.bundles)).filter((f) => !f.startsWith('.')).sort(), [...volumes.map((v) => path.basename(v)), 'ocp.tar.seal.json', 'ocp.tar.sig'].sort());
  }
});

function importArgs(seal: string, config: NodeConfig): string[] {
  return ['import', seal, '--json', '--config', '/dev/null', '--bundles', config.paths.bundles, '--state', config.paths.state];
}

/** The one JSON error a failed command printed (exit 1, never an internal error). */
function jsonError(result: CliResult, what: string): { code: string; message: string; subject?: { kind: string; name: string } } {
  assertNoInternalError(result, what);
  assert.equal(result.code, 1, result.stderr);
  return (JSON.parse(result.stdout) as { error: { code: string; message: string; subject?: { kind: string; name: string } } }).error;
}

/**
 * An import under EIO on volume `damaged`: BUNDLE_READ_FAILED, as every reader of a bundle reports a volume it
 * cannot read, with that volume as subject, nothing left behind. Returns its message.
 */
async function failedImportMessage(seal: string, config: NodeConfig, damaged: string, firstOnly: boolean): Promise<string> {
  const error = jsonError(cliUnderEio(damaged, importArgs(seal, config), firstOnly), 'import with a read error on the media');
  assert.equal(error.code, 'BUNDLE_READ_FAILED');
  assert.deepEqual(error.subject, { kind: 'path', name: damaged }, 'the subject is the damaged volume');
  assert.match(error.message, /^importing bundle ocp\.tar into .* failed: reading volume .* failed: EIO.*; the import did not complete$/);
  // A failed read before the copy starts leaves even the bundle dir uncreated.
  const left = await readdir(config.paths.bundles).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [];
    throw err;
  });
  assert.deepEqual(left.filter((f) => !f.startsWith('.pin-preload')), [], 'nothing imported');
  return error.message;
}

test('a read error on the media (EIO injected) fails the import naming the volume, the byte and the blob, with the volume as subject, leaving nothing behind', async (t) => {
  if (skippedWithoutStrace(t)) return;
  const dir = await tempDir(t, 'import-eio');
  const { seal, volumes } = await makeBundle(dir);
  // Every read of the second volume fails: the error comes mid-copy, the first volume read and copied.
  const damaged = volumes[1]!;
  const message = await failedImportMessage(seal, nodeConfig(path.join(dir, 'node')), damaged, false);
  // The first read of the volume is the structure check's (a header or padding), else a blob's: either is named.
  assert.match(message, new RegExp(`failed: reading volume ${damaged.replace(/\./g, '\\.')} at byte \\d+ \\(((tar header of |padding after )?blob sha256:[0-9a-f]{64})\\) failed: EIO`));
});

test('a read error on the padding after a blob (the first skeleton read of a volume fails with EIO) names the volume, the byte and the blob it follows; the first tar header likewise', async (t) => {
  if (skippedWithoutStrace(t)) return;
  const dir = await tempDir(t, 'import-padding-eio');
  const { seal, volumes } = await makeBundle(dir);
  // The structure check reads the skeleton on the main thread before any blob is hashed or copied: the first
  // read of the second volume is a run of skeleton regions, which starts with the padding after the blob the
  // volume boundary cuts (the EIO is at the run's first byte; a failed tar header read is in
  // test/unit/bundle-verify-checks.test.ts).
  const damaged = volumes[1]!;
  const entryNamed = new RegExp(`reading volume ${damaged.replace(/\./g, '\\.')} at byte \\d+ \\(padding after blob sha256:[0-9a-f]{64}\\) failed: EIO`);
  const message = await failedImportMessage(seal, nodeConfig(path.join(dir, 'node')), damaged, true);
  assert.match(message, entryNamed);
  // bundle verify reads the same skeleton the same way.
  const verified = cliUnderEio(damaged, ['bundle', 'verify', seal, '--json'], true);
  assertNoInternalError(verified, 'verify with a read error on the padding after a blob');
  assert.equal(verified.code, 1, verified.stderr);
  const failed = (JSON.parse(verified.stdout) as { error: { code: string; message: string; subject?: { kind: string; name: string } } }).error;
  assert.equal(failed.code, 'BUNDLE_READ_FAILED');
  assert.deepEqual(failed.subject, { kind: 'path', name: damaged });
  assert.match(failed.message, entryNamed);
  // The first header of all, read before the layout is known (pin-preload.json's), is named as the first: a
  // read error of the media (BUNDLE_READ_FAILED, for verify and import alike), not a damaged manifest.
  const firstNamed = `reading volume ${volumes[0]!} at byte 0 (the first tar header) failed: EIO`;
  const first = cliUnderEio(volumes[0]!, ['bundle', 'verify', seal, '--json'], true);
  assertNoInternalError(first, 'verify with a read error on the first tar header');
  assert.equal(first.code, 1, first.stderr);
  const firstFailed = (JSON.parse(first.stdout) as { error: { code: string; message: string; subject?: { kind: string; name: string } } }).error;
  assert.equal(firstFailed.code, 'BUNDLE_READ_FAILED');
  assert.deepEqual(firstFailed.subject, { kind: 'path', name: volumes[0]! });
  assert.ok(firstFailed.message.includes(firstNamed), firstFailed.message);
  const firstImport = await failedImportMessage(seal, nodeConfig(path.join(dir, 'node-first')), volumes[0]!, true);
  assert.ok(firstImport.includes(firstNamed), firstImport);
});

test('a write error of the bundle dir (EIO injected into the copy\'s writes) fails the import with IMPORT_FAILED naming the copy and the byte, leaving nothing behind', async (t) => {
  if (skippedWithoutStrace(t)) return;
  const dir = await tempDir(t, 'import-write-eio');
  const { seal } = await makeBundle(dir);
  const config = nodeConfig(path.join(dir, 'node'));
  const result = cliUnderFault({ syscalls: 'pwrite64', errno: 'EIO' }, importArgs(seal, config));
  const error = jsonError(result, 'import with a write error on the bundle dir');
  assert.equal(error.code, 'IMPORT_FAILED', 'the bundle dir\'s disk, not the media');
  assert.match(error.message, /failed: writing the copy .*ocp\.tar\.\d{3} at byte \d+ .*failed: EIO/);
  // The copy's temp dir is gone by the time the error is read: the subject is the dir it was in.
  assert.deepEqual(error.subject, { kind: 'path', name: config.paths.bundles });
  assert.deepEqual((await readdir(config.paths.bundles)).filter((f) => !f.startsWith('.pin-preload')), [], 'nothing imported');
});

test('a bundle dir that cannot be written (every mkdir refused with EROFS, as outside the units\' ReadWritePaths=) fails the import with IMPORT_FAILED naming the dir, not an internal error, whether the dir is there or not', async (t) => {
  if (skippedWithoutStrace(t)) return;
  const dir = await tempDir(t, 'import-erofs');
  const { seal } = await makeBundle(dir);
  const erofs = { syscalls: 'mkdir', errno: 'EROFS' };
  // The dir there: Node's recursive mkdir finds it, and the import's temp dir (mkdtemp, a mkdir) is refused.
  const present = nodeConfig(path.join(dir, 'node'));
  await mkdir(present.paths.bundles, { recursive: true });
  const error = jsonError(cliUnderFault(erofs, importArgs(seal, present)), 'import into a read-only bundle dir');
  assert.equal(error.code, 'IMPORT_FAILED');
  assert.match(error.message, /^importing bundle ocp\.tar into .* failed: EROFS: read-only file system, mkdtemp /);
  assert.deepEqual(error.subject, { kind: 'path', name: present.paths.bundles });
  assert.deepEqual(await readdir(present.paths.bundles), [], 'nothing written');
  // The dir not there: creating it fails (every mkdir refused: Node's recursive mkdir then reports the missing
  // parent it could not make, ENOENT), still the bundle dir's failure.
  const absent = nodeConfig(path.join(dir, 'node-absent'));
  const failed = jsonError(cliUnderFault(erofs, importArgs(seal, absent)), 'import into a bundle dir that cannot be created');
  assert.equal(failed.code, 'IMPORT_FAILED');
  assert.match(failed.message, /^importing bundle ocp\.tar into .* failed: ENOENT: .*, mkdir /);
  assert.deepEqual(failed.subject, { kind: 'path', name: absent.paths.bundles });
});

test('a state dir that cannot be made, a state database file that cannot be written (EIO) or is not SQLite, once the bundle is in place: the bundle is there but not registered, naming the path; a placed volume unreadable when indexed is BUNDLE_READ_FAILED; importing again registers it without copying', async (t) => {
  if (skippedWithoutStrace(t)) return;
  const dir = await tempDir(t, 'import-register');
  const { seal } = await makeBundle(dir);
  const good = nodeConfig(path.join(dir, 'node'));
  const notRegistered = (error: { code: string; message: string }) => {
    assert.equal(error.code, 'IMPORT_FAILED');
    assert.match(error.message, new RegExp(`^bundle ocp\\.tar is in ${good.paths.bundles.replace(/[.]/g, '\\.')} but could not be registered: `));
  };
  // The state dir under a regular file: it cannot be made (the copy is done by then).
  const notADir = path.join(dir, 'not-a-dir');
  await writeFile(notADir, '');
  const underFile = { ...good, paths: { ...good.paths, state: path.join(notADir, 'state.db') } };
  const error = jsonError(await runCli(importArgs(seal, underFile)), 'import with a state path under a file');
  notRegistered(error);
  assert.ok(error.subject?.name.startsWith(notADir), `the subject is the path that failed: ${JSON.stringify(error.subject)}`);
  assert.ok((await readdir(good.paths.bundles)).includes('ocp.tar.seal.json'), 'the bundle is in place');
  // The database file's writes failing (SQLite's disk I/O error), the bundle already in the dir.
  const state = good.paths.state;
  const failing = jsonError(cliUnderFault({ file: [state, `${state}-wal`, `${state}-journal`], syscalls: 'pwrite64,write', errno: 'EIO' }, importArgs(seal, good)), 'import with the state database unwritable');
  notRegistered(failing);
  assert.deepEqual(failing.subject, { kind: 'path', name: state });
  // A state file that is not SQLite: SQLite finds out at its first statement, still part of opening it.
  const garbage = path.join(dir, 'garbage.db');
  await writeFile(garbage, 'not a database, '.repeat(64));
  const notSqlite = jsonError(await runCli(importArgs(seal, { ...good, paths: { ...good.paths, state: garbage } })), 'import with a state file that is not SQLite');
  notRegistered(notSqlite);
  assert.match(notSqlite.message, /cannot open state database .*: file is not a database/);
  assert.deepEqual(notSqlite.subject, { kind: 'path', name: garbage });
  // A fresh import whose placed volume cannot be read when it is indexed: the bundle's read error.
  const fresh = nodeConfig(path.join(dir, 'node-fresh'));
  const placed = path.join(fresh.paths.bundles, 'ocp.tar.002');
  const unreadable = jsonError(cliUnderFault({ file: placed, syscalls: 'read,pread64', errno: 'EIO' }, importArgs(seal, fresh)), 'import with a placed volume unreadable');
  assert.equal(unreadable.code, 'BUNDLE_READ_FAILED', unreadable.message);
  assert.deepEqual(unreadable.subject, { kind: 'path', name: placed });
  assert.ok(unreadable.message.startsWith(`bundle ${path.join(fresh.paths.bundles, 'ocp.tar')}: reading volume ${placed}`), unreadable.message);
  const again = await runCli(importArgs(seal, good));
  assert.equal(again.code, 0, again.stderr);
  assert.equal((JSON.parse(again.stdout) as { bytesCopied: number }).bytesCopied, 0, 'not copied again');
});

test('a seal in the bundle dir that cannot be read (EIO) when the same bundle is imported again is BUNDLE_READ_FAILED naming it, not an internal error', async (t) => {
  if (skippedWithoutStrace(t)) return;
  const dir = await tempDir(t, 'import-again-eio');
  const { seal } = await makeBundle(dir);
  const config = nodeConfig(path.join(dir, 'node'));
  const first = await runCli(importArgs(seal, config));
  assert.equal(first.code, 0, first.stderr);
  const placed = path.join(config.paths.bundles, path.basename(seal));
  const error = jsonError(cliUnderFault({ file: placed, syscalls: 'read,pread64', errno: 'EIO' }, importArgs(seal, config)), 'import again with the placed seal unreadable');
  assert.equal(error.code, 'BUNDLE_READ_FAILED');
  assert.deepEqual(error.subject, { kind: 'path', name: placed });
  assert.ok(error.message.includes(`reading the seal ${placed} failed: EIO`), error.message);
});

test('a seal, a signature or a volume of the media that cannot be read or opened (EIO) is BUNDLE_READ_FAILED naming that file, for import, bundle verify and bundle push alike', async (t) => {
  if (skippedWithoutStrace(t)) return;
  const dir = await tempDir(t, 'import-files-eio');
  const { seal, volumes } = await makeBundle(dir);
  const signature = seal.replace(/\.seal\.json$/, '.sig');
  const cases = [
    { file: seal, syscalls: 'read,pread64', named: `reading the seal ${seal} failed: EIO` },
    { file: signature, syscalls: 'read,pread64', named: `reading the signature ${signature} failed: EIO` },
    { file: volumes[1]!, syscalls: 'openat', named: `reading volume ${volumes[1]!} failed: EIO` },
  ];
  for (const [i, { file, syscalls, named }] of cases.entries()) {
    const fault = { file, syscalls, errno: 'EIO' };
    const config = nodeConfig(path.join(dir, `node-${i}`));
    // verify and push read the signature only to check it: with the key.
    const trusted = ['--trusted-key', path.join(dir, 'key.pub')];
    const readers = [
      ['import', importArgs(seal, config)],
      ['bundle verify', ['bundle', 'verify', seal, '--json', ...trusted]],
      ['bundle push', ['bundle', 'push', seal, '--to', `oci:${path.join(dir, `pushed-${i}`)}`, '--json', ...trusted]],
    ] as const;
    for (const [what, args] of readers) {
      const error = jsonError(cliUnderFault(fault, args), `${what} with ${path.basename(file)} unreadable`);
      assert.equal(error.code, 'BUNDLE_READ_FAILED', `${what}, ${path.basename(file)}: ${error.message}`);
      assert.deepEqual(error.subject, { kind: 'path', name: file }, `${what}: the subject is the file`);
      assert.ok(error.message.includes(named), `${what}: ${error.message}`);
    }
    const left = await readdir(config.paths.bundles).catch(() => []);
    assert.deepEqual(left.filter((f) => !f.startsWith('.')), [], 'nothing imported');
  }
});

test('media pulled out mid-read (ENOMEDIUM, an errno Node has no name for) is BUNDLE_READ_FAILED naming the volume, for import and bundle verify alike', async (t) => {
  if (skippedWithoutStrace(t)) return;
  const dir = await tempDir(t, 'import-enomedium');
  const { seal, volumes } = await makeBundle(dir);
  const fault = { file: volumes[1]!, syscalls: 'pread64', errno: 'ENOMEDIUM' };
  const config = nodeConfig(path.join(dir, 'node'));
  for (const [what, args] of [['import', importArgs(seal, config)], ['bundle verify', ['bundle', 'verify', seal, '--json']]] as const) {
    const error = jsonError(cliUnderFault(fault, args), `${what} with the media gone`);
    assert.equal(error.code, 'BUNDLE_READ_FAILED', `${what}: ${error.message}`);
    assert.deepEqual(error.subject, { kind: 'path', name: volumes[1]! });
    assert.match(error.message, /reading volume .* at byte \d+ .*failed: Unknown system error -123/);
  }
});

test('a bundle whose blob is damaged (sealed that way) is rejected by blob verification, leaving nothing behind', async (t) => {
  const dir = await tempDir(t, 'import-blob');
  const { seal, volumes } = await makeBundle(dir);
  // Damage a byte in the middle of a layer, then re-seal, as if it was corrupted before sealing: the volume
  // checksums now match, only the blob digests can tell.
  const opened = await openBundle(seal);
  const layer = opened.manifest.blobs.find((b) => b.role === 'layer')!;
  const at = (await opened.locateBlobs()).get(layer.digest)!;
  await opened.close();
  let offset = at.offset + Math.floor(at.size / 2);
  let volume = 0;
  for (const sizes = await Promise.all(volumes.map(async (v) => (await readFile(v)).length)); offset >= sizes[volume]!; volume++) offset -= sizes[volume]!;
  await flipByte(volumes[volume]!, offset);
  const sealDoc = JSON.parse(await readFile(seal, 'utf8')) as BundleSeal;
  const resealed: BundleSeal = {
    ...sealDoc,
    volumes: await Promise.all(sealDoc.volumes.map(async (v) => ({ ...v, sha256: createHash('sha256').update(await readFile(path.join(path.dirname(seal), v.name))).digest('hex') }))),
  };
  await writeFile(seal, serializeSeal(resealed));
  await rm(seal.replace(/\.seal\.json$/, '.sig'));
  const config = nodeConfig(path.join(dir, 'node'));
  await assert.rejects(importBundle(config, seal), (err: unknown) => {
    assert.ok(isUserError(err));
    assert.equal(err.code, 'IMPORT_REJECTED');
    assert.match(err.message, new RegExp(`failed verification: blob ${layer.digest} is damaged`));
    return true;
  });
  assert.deepEqual(await readdir(config.paths.bundles), []);
});

test('a bundle dir without room for the bundle is refused before copying, with the numbers', async (t) => {
  const dir = await tempDir(t, 'import-full');
  const { seal } = await makeBundle(dir);
  const small = path.join(dir, 'small');
  await mkdir(small);
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', small], { stdio: 'ignore' });
  } catch {
    t.skip('cannot mount a small tmpfs here (needs CAP_SYS_ADMIN)');
    return;
  }
  try {
    const config = nodeConfig(small);
    await assert.rejects(importBundle(config, seal), (err: unknown) => {
      assert.ok(isUserError(err));
      assert.equal(err.code, 'IMPORT_NO_SPACE');
      assert.match(err.message, /needs .* \(\d+ bytes\), available .* \(\d+ bytes\)/);
      return true;
    });
    assert.deepEqual(await readdir(config.paths.bundles), []);
  } finally {
    execFileSync('umount', [small]);
  }
});

test('with [paths] trusted_key, a bundle signed by that key imports and one signed by another key is rejected, leaving nothing', async (t) => {
  const dir = await tempDir(t, 'import-trust');
  const { seal } = await makeBundle(dir); // signed with dir/key
  const stranger = path.join(dir, 'stranger');
  await generateSigningKey(stranger);

  const trusting = (root: string, key: string) =>
    resolveConfig(new Map<string, unknown>([
      ['paths.bundles', path.join(root, 'bundles')],
      ['paths.state', path.join(root, 'state.db')],
      ['paths.trusted_key', key],
    ]), new Map(), undefined);

  const good = trusting(path.join(dir, 'node-good'), path.join(dir, 'key.pub'));
  const result = await importBundle(good, seal);
  assert.equal(result.alreadyImported, false);

  const wary = trusting(path.join(dir, 'node-wary'), `${stranger}.pub`);
  await assert.rejects(importBundle(wary, seal), (err: unknown) => {
    assert.ok(isUserError(err));
    assert.match(err.message, /signature|signed/);
    return true;
  });
  const left = await readdir(wary.paths.bundles).catch(() => [] as string[]);
  assert.deepEqual(left.filter((f) => !f.startsWith('.')), [], 'a rejected bundle leaves nothing in the bundle dir');
});

test('with [paths] trusted_key, an unsigned bundle is rejected by name', async (t) => {
  const dir = await tempDir(t, 'import-unsigned');
  const { seal } = await makeBundle(dir);
  await rm(seal.replace(/\.seal\.json$/, '.sig'));
  const config = resolveConfig(new Map<string, unknown>([
    ['paths.bundles', path.join(dir, 'node', 'bundles')],
    ['paths.state', path.join(dir, 'node', 'state.db')],
    ['paths.trusted_key', path.join(dir, 'key.pub')],
  ]), new Map(), undefined);
  await assert.rejects(importBundle(config, seal), /not signed/);
});

test('a bundle in the bundle dir with a missing volume does not break importing a delta: beside its base it imports, and a delta on the damaged bundle is refused naming it (CLI, no stack)', async (t) => {
  const dir = await tempDir(t, 'import-damaged-neighbour');
  const node = path.join(dir, 'node');
  const config = nodeConfig(node);
  const make = async (name: string, plan: ReturnType<typeof testPlan>, images: ReturnType<typeof testImage>[]) =>
    (await createBundle({ plan, source: new MemorySource(blobContents(images)), output: path.join(dir, 'media', name), created: CREATED })).sealPath;
  const images = ['base', 'other', 'new', 'newer'].map((name) => testImage(REPO, name, [randomBytes(3000)]));
  const [base, other, fresh, newer] = images as [typeof images[0], typeof images[0], typeof images[0], typeof images[0]];
  for (const [name, image] of [['base.tar', base], ['other.tar', other]] as const) await importBundle(config, await make(name, testPlan([image]), [image]));
  const deltaOnBase = await make('delta.tar', deltaPlan(testPlan([fresh]), await readPrevious(path.join(dir, 'media', 'base.tar.seal.json'))), [fresh]);
  const deltaOnOther = await make('delta-other.tar', deltaPlan(testPlan([newer]), await readPrevious(path.join(dir, 'media', 'other.tar.seal.json'))), [newer]);
  await rm(path.join(config.paths.bundles, 'other.tar')); // its only volume, the seal left behind

  const args = ['--bundles', config.paths.bundles, '--state', config.paths.state];
  const beside = await runCli(['import', deltaOnBase, ...args]);
  assertNoInternalError(beside, 'import of a delta beside its base');
  assert.equal(beside.code, 0, beside.stderr);

  const onDamaged = await runCli(['import', deltaOnOther, ...args]);
  assertNoInternalError(onDamaged, 'import of a delta whose base lost a volume');
  assert.equal(onDamaged.code, 1);
  assert.match(onDamaged.stderr, /its base other\.tar \(sha256:[0-9a-f]{64}\) is not in .*; unreadable there: other\.tar \(bundle volume .*other\.tar is missing\)/);
  assert.deepEqual((await readdir(config.paths.bundles)).filter((f) => f.startsWith('delta-other')), [], 'nothing of the refused delta');
});
