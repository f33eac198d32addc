// The bundle writer against an in-memory source: byte layout, split volumes, determinism, failures that
// leave a resumable work dir, and resume without fetching a byte twice.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open, readFile, readdir, rm, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { buffer } from 'node:stream/consumers';
import { createBundle, smallestSplitMiB, type CreateEvent } from '../../src/bundle/writer.js';
import { BundleDestination } from '../../src/bundle/destination.js';
import { VolumeSet } from '../../src/bundle/volumes.js';
import type { CreateProgress } from '../../src/bundle/create-progress.js';
import { openBundle } from '../../src/bundle/reader.js';
import { sha256Of } from '../../src/oci/digest.js';
import { exitStatusOf } from '../../src/cli/exit-status.js';
import { UserError } from '../../src/util/errors.js';
import { blobContents, MemorySource, testImage, testPlan } from '../support/bundle-plans.js';
import { withTempDir } from '../support/temp-dir.js';

const repo = { domain: 'quay.io', path: 'example/app' };
const images = [
  testImage(repo, 'one', [Buffer.alloc(3000, 1), randomBytes(200_000)], { tag: 'v1' }),
  testImage({ domain: 'registry.example.com', path: 'team/tool' }, 'two', [Buffer.alloc(3000, 1), randomBytes(90_000)]),
];
const plan = testPlan(images);
const contents = blobContents(images);
const created = '2024-01-02T03:04:05Z';

const withDir = (fn: (dir: string) => Promise<void>): Promise<void> => withTempDir('pin-preload-writer-', fn);

/** The big layer of the first image, and a run into `dir` that fails once it has `failAfter` bytes of it. */
const big = images[0]!.blobs.find((b) => b.size > 100_000)!;
async function runFailingAt(dir: string, failAfter: number): Promise<{ output: string; source: MemorySource }> {
  const output = path.join(dir, 'b.tar');
  const source = new MemorySource(contents);
  source.failAfter.set(big.digest, failAfter);
  await assert.rejects(createBundle({ plan, source, output, created }));
  return { output, source };
}

test('writes a bundle the reader opens, every blob with its digest, and no work dir left behind', async () => {
  await withDir(async (dir) => {
    const output = path.join(dir, 'b.tar');
    const result = await createBundle({ plan, source: new MemorySource(contents), output, created });
    assert.equal(result.volumes.length, 1);
    assert.deepEqual((await readdir(dir)).sort(), ['b.tar', 'b.tar.seal.json']);
    const bundle = await openBundle(output);
    try {
      assert.equal(bundle.manifest.created, created);
      for (const [digest, at] of await bundle.locateBlobs()) {
        assert.equal(sha256Of(await buffer(bundle.createReadStream(at.offset, at.size))), digest);
      }
      assert.equal(bundle.seal!.volumes[0]!.sha256, sha256Of(await readFile(output)).slice(7));
    } finally {
      await bundle.close();
    }
  });
});

test('split volumes are each at most the split size, sealed with their own sha256, and concatenate to the unsplit tar', async () => {
  await withDir(async (dir) => {
    await createBundle({ plan, source: new MemorySource(contents), output: path.join(dir, 'one.tar'), created });
    const split = await createBundle({ plan, source: new MemorySource(contents), output: path.join(dir, 'split.tar'), created, splitSize: 50_000 });
    assert.ok(split.volumes.length > 3);
    for (const v of split.volumes) assert.ok(v.size <= 50_000);
    assert.deepEqual(split.volumes.map((v) => path.basename(v.path)).slice(0, 2), ['split.tar.001', 'split.tar.002']);
    const volumeBytes = await Promise.all(split.volumes.map((v) => readFile(v.path)));
    assert.deepEqual(split.volumes.map((v) => v.sha256), volumeBytes.map((b) => sha256Of(b).slice('sha256:'.length)));
    const joined = Buffer.concat(volumeBytes);
    const whole = await readFile(path.join(dir, 'one.tar'));
    assert.ok(joined.equals(whole));
  });
});

test('the same plan and creation time give byte-identical bundles', async () => {
  await withDir(async (dir) => {
    await createBundle({ plan, source: new MemorySource(contents), output: path.join(dir, 'a.tar'), created });
    await createBundle({ plan, source: new MemorySource(contents), output: path.join(dir, 'b.tar'), created, concurrency: 1 });
    assert.ok((await readFile(path.join(dir, 'a.tar'))).equals(await readFile(path.join(dir, 'b.tar'))));
  });
});

test('a failed blob fails the run naming image and blob, keeps the work dir, and a re-run fetches only the rest', async () => {
  await withDir(async (dir) => {
    const output = path.join(dir, 'b.tar');
    const source = new MemorySource(contents);
    source.failAfter.set(big.digest, 70_000);
    await assert.rejects(createBundle({ plan, source, output, created, concurrency: 2 }), (err: unknown) => {
      assert.ok(err instanceof UserError);
      assert.equal(err.code, 'BUNDLE_BLOBS_FAILED');
      assert.match(err.message, new RegExp(`blob ${big.digest}: .*connection reset`));
      assert.match(err.message, /quay\.io\/example\/app/);
      return true;
    });
    await assert.rejects(stat(output));
    await stat(`${output}.partial`);
    const firstServed = new Map(source.served);
    source.failAfter.clear();
    source.served.clear();
    const result = await createBundle({ plan, source, output, created });
    assert.equal(result.resumed, true);
    // Only the missing tail of the failed blob was fetched again, and nothing else.
    assert.deepEqual([...source.served.keys()], [big.digest]);
    assert.equal(firstServed.get(big.digest)! + source.served.get(big.digest)!, big.size);
    await rm(`${output}.ref`, { force: true });
    await createBundle({ plan, source: new MemorySource(contents), output: `${output}.ref`, created });
    assert.ok((await readFile(output)).equals(await readFile(`${output}.ref`)));
  });
});

test('a resumed run counts the kept prefix of a partial blob: its download progress ends at 100 %', async () => {
  await withDir(async (dir) => {
    const { output, source } = await runFailingAt(dir, 70_000);
    source.failAfter.clear();
    const reports: CreateProgress[] = [];
    await createBundle({ plan, source, output, created, onProgress: (p) => reports.push(p) });
    const last = reports.filter((p) => p.phase === 'download').at(-1)!;
    assert.equal(last.bytesDone, last.bytesTotal);
  });
});

test('each putBlob returns the bytes it fetched itself, though blobs are fetched concurrently', async () => {
  const returned: number[] = [];
  const putBlob = BundleDestination.prototype.putBlob;
  BundleDestination.prototype.putBlob = async function (this: BundleDestination, ...args: Parameters<typeof putBlob>) {
    const fetched = await putBlob.apply(this, args);
    returned.push(fetched);
    return fetched;
  };
  try {
    await withDir(async (dir) => {
      const result = await createBundle({ plan, source: new MemorySource(contents), output: path.join(dir, 'b.tar'), created, concurrency: 4 });
      assert.equal(returned.reduce((a, b) => a + b, 0), result.bytesFetched);
    });
  } finally {
    BundleDestination.prototype.putBlob = putBlob;
  }
});

test('a partial blob whose prefix on disk was damaged is fetched again from 0, once (blob-retry), and the bundle is identical', async () => {
  await withDir(async (dir) => {
    const { output, source } = await runFailingAt(dir, 70_000);
    // Where the blob lies: the same plan under the same name puts it at the same offset.
    const reference = path.join(dir, 'ref', 'b.tar');
    await createBundle({ plan, source: new MemorySource(contents), output: reference, created });
    const ref = await openBundle(reference);
    const at = (await ref.locateBlobs()).get(big.digest)!;
    await ref.close();
    const volume = await open(path.join(`${output}.partial`, 'b.tar'), 'r+');
    await volume.write(Buffer.from([0x55 ^ (await readFile(reference))[at.offset + 100]!]), 0, 1, at.offset + 100);
    await volume.close();

    source.failAfter.clear();
    source.served.clear();
    const events: CreateEvent[] = [];
    await createBundle({ plan, source, output, created, onEvent: (e) => events.push(e) });
    // The rest after the recorded position (a Range request), then the whole blob once more: nothing else.
    assert.deepEqual([...source.served.keys()], [big.digest]);
    assert.equal(source.served.get(big.digest), big.size - 70_000 + big.size);
    assert.deepEqual(events.filter((e) => e.kind === 'blob-retry').map((e) => e.kind === 'blob-retry' && e.digest), [big.digest]);
    assert.ok((await readFile(output)).equals(await readFile(reference)));
  });
});

test('manifests the plan already holds are written from its bytes, never fetched again', async () => {
  await withDir(async (dir) => {
    const source = new MemorySource(contents);
    source.getManifest = async (ref) => {
      throw new Error(`manifest ${ref.digest} was fetched`);
    };
    const result = await createBundle({ plan, source, output: path.join(dir, 'b.tar'), created });
    assert.equal(result.blobs, plan.blobs.length);
  });
});

test('an interrupted run (aborted) says so, exits 130 and keeps the work dir for the re-run', async () => {
  await withDir(async (dir) => {
    const output = path.join(dir, 'b.tar');
    const controller = new AbortController();
    controller.abort();
    await assert.rejects(createBundle({ plan, source: new MemorySource(contents), output, created, signal: controller.signal }), (err: unknown) => {
      assert.ok(err instanceof UserError);
      assert.equal(err.code, 'INTERRUPTED');
      assert.equal(exitStatusOf(err), 130);
      return true;
    });
    await stat(`${output}.partial`);
    await assert.rejects(stat(output));
  });
});

for (const [code, code_] of [['EIO', 'BUNDLE_DISK_FAILED'], ['EROFS', 'BUNDLE_DISK_FAILED'], ['ENOSPC', 'DISK_FULL']] as const) {
  test(`a ${code} from the bundle's own disk mid-download is ${code_} naming the directory (exit 1), not an internal error; the work dir is kept`, async () => {
    await withDir(async (dir) => {
      const output = path.join(dir, 'b.tar');
      const original = VolumeSet.prototype.write;
      VolumeSet.prototype.write = async function (): Promise<void> {
        throw Object.assign(new Error(`${code}: simulated, write`), { code });
      };
      try {
        await assert.rejects(createBundle({ plan, source: new MemorySource(contents), output, created }), (err: unknown) => {
          assert.ok(err instanceof UserError, `a UserError, not ${String(err)}`);
          assert.equal(err.code, code_);
          assert.equal(exitStatusOf(err), 1);
          assert.match(err.message, new RegExp(code));
          assert.deepEqual(err.subject, { kind: 'path', name: dir });
          return true;
        });
      } finally {
        VolumeSet.prototype.write = original;
      }
      await stat(`${output}.partial`);
      await assert.rejects(stat(output));
    });
  });
}

test('a blob written to its end but not recorded done is checked on disk, not fetched again; bad bytes are refetched', async () => {
  await withDir(async (dir) => {
    // The source serves the whole blob but then breaks: bytes on disk, blob not done.
    const { output, source } = await runFailingAt(dir, big.size);
    source.failAfter.clear();
    source.served.clear();
    await createBundle({ plan, source, output, created });
    assert.equal(source.served.size, 0);
    const bundle = await openBundle(output);
    const at = (await bundle.locateBlobs()).get(big.digest)!;
    assert.equal(sha256Of(await buffer(bundle.createReadStream(at.offset, at.size))), big.digest);
    await bundle.close();
  });
});

test('a work dir whose volume file vanished is not trusted: the run starts over and says why', async () => {
  await withDir(async (dir) => {
    const { output, source } = await runFailingAt(dir, 1000);
    await rm(path.join(`${output}.partial`, 'b.tar'));
    source.failAfter.clear();
    const events: string[] = [];
    const result = await createBundle({ plan, source, output, created, onEvent: (e) => events.push(e.kind === 'start-over' ? e.reason : e.kind) });
    assert.equal(result.resumed, false);
    assert.ok(events.includes('its volume file b.tar is missing'), events.join('; '));
  });
});

test('a split size that would need more than 999 volumes is refused before any download, naming the smallest that fits', async () => {
  await withDir(async (dir) => {
    const source = new MemorySource(contents);
    const output = path.join(dir, 'out', 'tiny.tar');
    await assert.rejects(createBundle({ plan, source, output, created, splitSize: 256 }), (err: unknown) => {
      assert.ok(err instanceof UserError);
      assert.match(err.message, /would cut the .* bundle into \d{4} volumes, more than 999/);
      assert.match(err.hint ?? '', /use a split size of at least 1MiB/);
      return true;
    });
    assert.equal(source.served.size, 0, 'nothing was downloaded');
    assert.deepEqual(await readdir(dir), [], 'nothing was written');
  });
});

test('the smallest split size the refusal names always fits the bundle in 999 volumes', () => {
  const MiB = 1024 * 1024;
  for (const total of [1, MiB, 999 * MiB, 999 * MiB + 1, 5e12, 12_345_678_901]) {
    const split = smallestSplitMiB(total) * MiB;
    assert.ok(Math.ceil(total / split) <= 999, `${total} bytes at ${split}`);
    if (split > MiB) assert.ok(Math.ceil(total / (split - MiB)) > 999, `${total} bytes: one MiB less would not fit`);
  }
});

test('a re-run with a different plan (here another split size) says so and starts over', async () => {
  await withDir(async (dir) => {
    const { output, source } = await runFailingAt(dir, 1000);
    source.failAfter.clear();
    const events: string[] = [];
    const result = await createBundle({ plan, source, output, created, splitSize: 100_000, onEvent: (e) => events.push(e.kind === 'start-over' ? e.reason : e.kind) });
    assert.equal(result.resumed, false);
    assert.ok(events.some((e) => /different plan/.test(e)), events.join('; '));
    assert.ok(result.volumes.length > 1);
  });
});

test('a second create for the same output is refused while the first runs; a dead writer\'s lock is taken over', async () => {
  const { spawn } = await import('node:child_process');
  const { mkdir, writeFile } = await import('node:fs/promises');
  await withDir(async (dir) => {
    const output = path.join(dir, 'b.tar');
    const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      await mkdir(`${output}.partial`);
      await writeFile(path.join(`${output}.partial`, 'lock'), `${sleeper.pid}\n`);
      await assert.rejects(createBundle({ plan, source: new MemorySource(contents), output, created }), (err: unknown) => {
        assert.ok(err instanceof UserError);
        assert.equal(err.code, 'BUNDLE_BUSY');
        assert.match(err.message, new RegExp(`pid ${sleeper.pid}`));
        return true;
      });
    } finally {
      sleeper.kill('SIGKILL');
      await new Promise((r) => sleeper.once('exit', r));
    }
    // The holder is gone now: its lock is stale and the next run proceeds.
    const result = await createBundle({ plan, source: new MemorySource(contents), output, created });
    assert.equal(result.images, 2);
    await assert.rejects(stat(`${output}.partial`));
  });
});

test('creating the same plan again at a complete output is a no-op that fetches nothing', async () => {
  await withDir(async (dir) => {
    const output = path.join(dir, 'b.tar');
    await createBundle({ plan, source: new MemorySource(contents), output, created });
    const before = await stat(output);
    const source = new MemorySource(contents);
    const again = await createBundle({ plan, source, output, created });
    assert.equal(again.alreadyComplete, true);
    assert.equal(source.served.size, 0);
    assert.equal((await stat(output)).mtimeMs, before.mtimeMs);
    // Another creation time or another plan is written anew.
    const other = await createBundle({ plan, source, output, created: '2025-01-01T00:00:00Z' });
    assert.equal(other.alreadyComplete, undefined);
  });
});
