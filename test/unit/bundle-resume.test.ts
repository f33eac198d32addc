// The steps `bundle create` takes before and after downloading, each alone: the journal an earlier run left
// (real files in a temp dir) read into a start, the resume arithmetic, the download order, and how an
// unfinished run ends.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { Journal, readJournal, type JournalHeader, type JournalState } from '../../src/bundle/journal.js';
import { createdFor, resumePoint, workStart, type WorkStart } from '../../src/bundle/resume.js';
import { blobTasks } from '../../src/bundle/blob-tasks.js';
import { planLayout } from '../../src/bundle/layout.js';
import { refuseUnfinished } from '../../src/bundle/writer.js';
import { UserError } from '../../src/util/errors.js';
import type { Digest } from '../../src/oci/digest.js';
import { withTempDir } from '../support/temp-dir.js';
import { testImage, testPlan } from '../support/bundle-plans.js';

const repo = { domain: 'quay.io', path: 'example/app' };
const images = [
  testImage(repo, 'one', [randomBytes(40_000), randomBytes(9_000)], { tag: 'v1' }),
  testImage(repo, 'two', [randomBytes(25_000)]),
];
const plan = testPlan(images);
const tasks = blobTasks(plan, planLayout(plan, { name: 'b.tar', created: '1970-01-01T00:00:00Z' }).layout);
const header: JournalHeader = { journalVersion: 1, layoutKey: 'key-of-this-plan', created: '2024-01-02T03:04:05Z', blobCount: tasks.length };
const exact = (size: number) => ({ size, estimated: false });
/** The layers, largest first: big enough to be partly written. */
const layers = tasks.filter((t) => t.blob.role === 'layer').sort((x, y) => y.blob.size - x.blob.size);

function withWorkDir(fn: (dir: string) => Promise<void>): Promise<void> {
  return withTempDir('pin-preload-resume-', fn);
}

function resumed(done: ReadonlyMap<Digest, { size: number; estimated: boolean }>, progress: readonly number[]): WorkStart {
  return workStart({ kind: 'resumable', header, done, progress }, undefined);
}

test('a task for every blob of the layout, indexed in layout order, each with its planned blob', () => {
  assert.equal(tasks.length, plan.blobs.length);
  assert.deepEqual(tasks.map((t) => t.index), tasks.map((_, i) => i));
  for (const t of tasks) assert.equal(t.blob.digest, t.entry.digest);
});

test('no journal starts fresh; another plan\'s or unreadable journal starts over and says why', () => {
  assert.deepEqual(workStart({ kind: 'absent' }, undefined), { kind: 'fresh' });
  const other: JournalState = { kind: 'different-plan', header };
  assert.deepEqual(workStart(other, undefined), { kind: 'start-over', reason: 'it holds an unfinished bundle of a different plan (other images or split size)' });
});

test('a resumable journal resumes, unless its volume files are damaged: then it starts over naming the damage', () => {
  const state: JournalState = { kind: 'resumable', header, done: new Map(), progress: [] };
  assert.equal(workStart(state, undefined).kind, 'resume');
  assert.deepEqual(workStart(state, 'its volume file b.tar is missing'), { kind: 'start-over', reason: 'its volume file b.tar is missing' });
});

test('a resumed run keeps the first run\'s creation time; a fixed time always wins; a fresh run takes the time given', () => {
  const now = { created: '2030-05-05T05:05:05Z', fromEnv: false };
  const fixed = { created: '2001-01-01T00:00:00Z', fromEnv: true };
  assert.equal(createdFor(resumed(new Map(), []), now), header.created);
  assert.equal(createdFor(resumed(new Map(), []), fixed), fixed.created);
  assert.equal(createdFor({ kind: 'fresh' }, now), now.created);
  assert.equal(createdFor({ kind: 'start-over', reason: 'x' }, now), now.created);
});

test('a fresh start resumes nothing: every blob from byte 0', () => {
  const point = resumePoint(tasks, { kind: 'fresh' });
  assert.deepEqual(point.resumeFrom, tasks.map(() => 0));
  assert.equal(point.written, 0);
  assert.equal(point.done.size, 0);
  assert.equal(point.bytesDone, 0);
});

test('resume arithmetic: a done blob counts whole, a partial one from its slot, a slot past the end is cut to the size', () => {
  const [a, b, c] = [tasks[0]!, layers[0]!, layers[1]!];
  const progress = tasks.map(() => 0);
  progress[b.index] = 700; // partly written
  progress[c.index] = c.blob.size + 5000; // a slot can run ahead of a blob that then failed its digest
  const point = resumePoint(tasks, resumed(new Map([[a.blob.digest, exact(a.blob.size)]]), progress));
  assert.equal(point.resumeFrom[a.index], a.blob.size);
  assert.equal(point.resumeFrom[b.index], 700);
  assert.equal(point.resumeFrom[c.index], c.blob.size);
  assert.equal(point.written, a.blob.size + 700 + c.blob.size);
  // Only done blobs count as bytes done now: a partial one is counted when its task starts.
  assert.equal(point.bytesDone, a.blob.size);
  assert.deepEqual([...point.done.keys()], [a.blob.digest]);
});

test('a done line for a blob this plan does not hold is not taken over, and a short progress file reads as zeros', () => {
  const stranger = `sha256:${'e'.repeat(64)}` as Digest;
  const point = resumePoint(tasks, resumed(new Map([[stranger, exact(10)]]), [5]));
  assert.equal(point.done.size, 0);
  assert.equal(point.resumeFrom[0], 5);
  assert.deepEqual(point.resumeFrom.slice(1), tasks.slice(1).map(() => 0));
});

test('what a journal records is what the next run resumes from: progress slots and done lines, read back from disk', async () => {
  await withWorkDir(async (dir) => {
    const [a, b] = [tasks[0]!, layers[0]!];
    const journal = await Journal.open(dir, header, true);
    try {
      await journal.recordProgress(a.index, a.blob.size);
      await journal.recordDone([{ digest: a.blob.digest, uncompressed: exact(123) }]);
      await journal.recordProgress(b.index, 512);
    } finally {
      journal.close();
    }
    const state = await readJournal(dir, header.layoutKey);
    const start = workStart(state, undefined);
    assert.equal(start.kind, 'resume');
    const point = resumePoint(tasks, start);
    assert.deepEqual(point.done, new Map([[a.blob.digest, exact(123)]]));
    assert.equal(point.resumeFrom[b.index], 512);
    assert.equal(point.written, a.blob.size + 512);
    assert.equal(createdFor(start, { created: '2030-05-05T05:05:05Z', fromEnv: false }), header.created);
  });
});

test('a journal is read against the plan: another layout key, or a journal that is not JSON, means another plan', async () => {
  await withWorkDir(async (dir) => {
    assert.deepEqual(await readJournal(dir, header.layoutKey), { kind: 'absent' });
    (await Journal.open(dir, header, true)).close();
    assert.equal((await readJournal(dir, 'key-of-another-plan')).kind, 'different-plan');
    await writeFile(path.join(dir, 'journal.json'), '{ cut sho');
    assert.equal((await readJournal(dir, header.layoutKey)).kind, 'different-plan');
  });
});

test('a done line cut by a crash was never acknowledged: the blob is not done', async () => {
  await withWorkDir(async (dir) => {
    const [a, b] = [tasks[0]!, tasks[1]!];
    const journal = await Journal.open(dir, header, true);
    await journal.recordDone([{ digest: a.blob.digest, uncompressed: exact(1) }]);
    journal.close();
    await appendFile(path.join(dir, 'done.log'), `${b.blob.digest} 99 exa`);
    const point = resumePoint(tasks, workStart(await readJournal(dir, header.layoutKey), undefined));
    assert.deepEqual([...point.done.keys()], [a.blob.digest]);
  });
});

test('closing a journal twice is harmless (it could otherwise close a file opened meanwhile under the same fd)', async () => {
  await withWorkDir(async (dir) => {
    const journal = await Journal.open(dir, header, true);
    journal.close();
    assert.doesNotThrow(() => journal.close());
  });
});

test('an unfinished run ends with INTERRUPTED when cancelled, else with every failed blob named under its image', () => {
  const failed = images[1]!.blobs[2]!;
  const written = { done: new Map([[tasks[0]!.blob.digest, exact(1)]]), failures: new Map([[failed.digest, 'connection reset']]) };
  const cancelled = new AbortController();
  cancelled.abort();
  assert.throws(() => refuseUnfinished(written, tasks.length, plan, '/out/b.tar.work', cancelled.signal), (err: unknown) => {
    assert.ok(err instanceof UserError);
    assert.equal(err.code, 'INTERRUPTED');
    assert.match(err.message, new RegExp(`1 of ${tasks.length} blobs are written and kept in /out/b\\.tar\\.work`));
    return true;
  });
  assert.throws(() => refuseUnfinished(written, tasks.length, plan, '/out/b.tar.work', undefined), (err: unknown) => {
    assert.ok(err instanceof UserError);
    assert.equal(err.code, 'BUNDLE_BLOBS_FAILED');
    assert.match(err.message, /image quay\.io\/example\/app:latest .*:\n {4}blob sha256:[0-9a-f]{64}: connection reset/);
    return true;
  });
  assert.doesNotThrow(() => refuseUnfinished({ done: written.done, failures: new Map() }, tasks.length, plan, '/out/b.tar.work', new AbortController().signal));
});
