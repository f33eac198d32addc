import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { openStateDatabase } from '../../../src/state/database.js';
import { MAX_FAILED_GENERATION_ERROR, MAX_UNPINNED_RECORDS, NodeState } from '../../../src/state/node-state.js';

const A = `quay.io/x/a@sha256:${'a'.repeat(64)}`;
const B = `quay.io/x/b@sha256:${'b'.repeat(64)}`;

function memoryState(): NodeState {
  return new NodeState(openStateDatabase(':memory:'));
}

test('a fresh node: generation 0, both conditions False/AsExpected', () => {
  const status = memoryState().status();
  assert.equal(status.desiredGeneration, 0);
  assert.equal(status.currentGeneration, 0);
  assert.deepEqual(status.conditions.map((c) => [c.type, c.status, c.reason]), [
    ['PinnedImageSetsProgressing', 'False', 'AsExpected'],
    ['PinnedImageSetsDegraded', 'False', 'AsExpected'],
  ]);
});

test('the desired generation grows only when the set of bundles changes', () => {
  const state = memoryState();
  assert.equal(state.setDesired('set-1', [{ name: A, bundle: '/b/one' }]), 1);
  assert.equal(state.setDesired('set-1', [{ name: A, bundle: '/b/one' }]), 1, 'same set, same generation');
  assert.equal(state.setDesired('set-2', [{ name: A, bundle: '/b/one' }, { name: B, bundle: '/b/two' }]), 2);
  assert.equal(state.setDesired('set-1', [{ name: A, bundle: '/b/one' }]), 3, 'going back is a new generation, never a decrease');
  assert.deepEqual(state.images().map((i) => i.name), [A], 'images no longer desired leave the image list');
});

test('images go pending → present → pinned, and success makes current = desired with AsExpected', () => {
  const state = memoryState();
  state.setDesired('s', [{ name: A, bundle: '/b' }, { name: B, bundle: '/b' }]);
  assert.deepEqual(state.images().map((i) => i.state), ['pending', 'pending']);
  state.startProgressing('pulling 2 images');
  const progressing = state.status().conditions[0];
  assert.deepEqual([progressing.status, progressing.reason], ['True', 'ImagePrefetch']);
  assert.ok(progressing.lastTransitionTime !== '');
  state.recordAttempt(A);
  state.markPresent([A, B]);
  state.markPinned([A, B]);
  state.recordSuccess('crio pinned_images');
  const status = state.status();
  assert.equal(status.currentGeneration, 1);
  assert.deepEqual(status.conditions.map((c) => [c.status, c.reason]), [['False', 'AsExpected'], ['False', 'AsExpected']]);
  assert.deepEqual(state.images().map((i) => [i.state, i.attempts]), [['pinned', 1], ['pinned', 0]]);
});

test('an image that is not present can never be recorded pinned (the whole transaction is refused)', () => {
  const state = memoryState();
  state.setDesired('s', [{ name: A, bundle: '/b' }, { name: B, bundle: '/b' }]);
  state.markPresent([A]);
  assert.throws(() => state.markPinned([A, B]), /not recorded as present/);
  assert.deepEqual(state.images().map((i) => i.state), ['present', 'pending'], 'A was not pinned either');
});

test('a failure records the generation, the error, and Degraded with its reason; storage numbers kept', () => {
  const state = memoryState();
  state.setDesired('s', [{ name: A, bundle: '/b' }]);
  state.recordFailure('StorageInsufficient', 'not enough space', { requiredBytes: 100, availableBytes: 10 });
  const status = state.status();
  assert.equal(status.lastFailedGeneration, 1);
  assert.equal(status.currentGeneration, 0);
  assert.equal(status.lastFailedGenerationError, 'not enough space');
  assert.deepEqual(status.storage, { requiredBytes: 100, availableBytes: 10 });
  assert.deepEqual([status.conditions[1].status, status.conditions[1].reason, status.conditions[1].message], ['True', 'StorageInsufficient', 'not enough space']);
  state.recordSuccess('x');
  assert.equal(state.status().storage, undefined);
  assert.equal(state.status().lastFailedGeneration, 1, 'the last failure stays on record');
});

test('the failed-generation error is capped at 32768 characters', () => {
  const state = memoryState();
  state.setDesired('s', []);
  state.recordFailure('PrefetchFailed', 'x'.repeat(100_000));
  assert.ok(state.status().lastFailedGenerationError.length <= MAX_FAILED_GENERATION_ERROR);
  assert.ok(state.status().lastFailedGenerationError.endsWith('(truncated)'));
});

test('lastTransitionTime moves only when a condition flips', async () => {
  const state = memoryState();
  state.setDesired('s', []);
  state.startProgressing('one');
  const first = state.status().conditions[0].lastTransitionTime;
  await new Promise((r) => setTimeout(r, 5));
  state.startProgressing('two');
  assert.equal(state.status().conditions[0].lastTransitionTime, first);
  assert.equal(state.status().conditions[0].message, 'two');
  state.recordSuccess('x');
  assert.notEqual(state.status().conditions[0].lastTransitionTime, first);
});

test('a bundle stays verified only while its fingerprint is unchanged', () => {
  const state = memoryState();
  state.upsertBundle({ path: '/b/one', manifestDigest: 'sha256:1', imageCount: 3, fingerprint: 'f1' });
  assert.equal(state.isBundleVerified('/b/one', 'f1'), false);
  state.markBundleVerified('/b/one', 'f1');
  assert.equal(state.isBundleVerified('/b/one', 'f1'), true);
  state.upsertBundle({ path: '/b/one', manifestDigest: 'sha256:1', imageCount: 3, fingerprint: 'f1' });
  assert.equal(state.isBundleVerified('/b/one', 'f1'), true, 're-registering the same bytes keeps it verified');
  state.upsertBundle({ path: '/b/one', manifestDigest: 'sha256:1', imageCount: 3, fingerprint: 'f2' });
  assert.equal(state.isBundleVerified('/b/one', 'f2'), false, 'changed bytes must be verified again');
  state.retainBundles([]);
  assert.deepEqual(state.bundles(), []);
});

test('state survives closing and reopening the database file', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-state-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'state.db');
  const db = openStateDatabase(file);
  const state = new NodeState(db);
  state.setDesired('s', [{ name: A, bundle: '/b' }]);
  state.markPresent([A]);
  db.close();
  const reopened = openStateDatabase(file);
  try {
    const again = new NodeState(reopened);
    assert.equal(again.status().desiredGeneration, 1);
    assert.equal(again.image(A)?.state, 'present');
  } finally {
    reopened.close();
  }
});

test('recording a completed sync is one transaction: a refused pin leaves the previous state whole', () => {
  const state = memoryState();
  state.setDesired('s', [{ name: A, bundle: '/b' }, { name: B, bundle: '/b' }]);
  state.markPresent([A, B]);
  state.markPinned([A, B]);
  state.recordSuccess('before');
  state.markMissing([B]); // B vanished from the runtime
  assert.throws(() => state.recordSynced([A], [A, B], 'after'), /not recorded as present/);
  assert.deepEqual(state.images().map((i) => i.state), ['pinned', 'pending'], 'A was not unpinned, B not pinned');
  assert.equal(state.status().pinning, 'before');
  state.recordSynced([A, B], [A], 'after');
  assert.deepEqual(state.images().map((i) => i.state), ['pinned', 'present']);
  assert.equal(state.status().pinning, 'after');
});

test('an image that leaves the desired set waits on the unpinned list until its pin is removed, then carries the time', () => {
  const state = memoryState();
  state.setDesired('both', [{ name: A, bundle: '/b/one' }, { name: B, bundle: '/b/two' }]);
  state.markPresent([A, B]);
  state.recordSynced([A, B], [A, B], 'pinned');
  state.setDesired('one', [{ name: A, bundle: '/b/one' }]);
  assert.deepEqual(state.leavingImages(), [B]);
  const [leaving] = state.unpinnedImages();
  assert.deepEqual([leaving?.name, leaving?.bundle, leaving?.wasPinned, leaving?.unpinnedAt], [B, '/b/two', true, undefined]);

  state.markUnpinned([B]);
  assert.deepEqual(state.leavingImages(), [], 'unpinned once');
  const [unpinned] = state.unpinnedImages();
  assert.ok(unpinned?.unpinnedAt && unpinned.unpinnedAt >= unpinned.leftAt);

  state.setDesired('both', [{ name: A, bundle: '/b/one' }, { name: B, bundle: '/b/two' }]);
  assert.deepEqual(state.unpinnedImages(), [], 'desired again: off the unpinned list');
  assert.equal(state.image(B)?.state, 'pending');
});

test('pinnedAt is the first time the runtime reported the image pinned, kept across syncs, cleared when unpinned', () => {
  const state = memoryState();
  state.setDesired('s', [{ name: A, bundle: '/b' }, { name: B, bundle: '/b' }]);
  state.markPresent([A, B]);
  state.recordSynced([A, B], [A], 'x');
  const first = state.image(A)?.pinnedAt;
  assert.ok(first);
  assert.equal(state.image(B)?.pinnedAt, undefined);
  state.recordSynced([A, B], [A, B], 'x');
  assert.equal(state.image(A)?.pinnedAt, first, 'still the first time');
  state.recordSynced([A, B], [B], 'x');
  assert.deepEqual([state.image(A)?.state, state.image(A)?.pinnedAt], ['present', undefined]);
});

test('the unpinned list keeps the most recent records only', () => {
  const state = memoryState();
  const names = Array.from({ length: MAX_UNPINNED_RECORDS + 5 }, (_, i) => `quay.io/x/n${i}@sha256:${i.toString(16).padStart(64, '0')}`);
  state.setDesired('all', names.map((name) => ({ name, bundle: '/b' })));
  state.setDesired('none', []);
  state.markUnpinned(state.leavingImages());
  assert.equal(state.unpinnedImages().length, MAX_UNPINNED_RECORDS);
  assert.deepEqual(state.leavingImages(), []);
});
