// What a push learns about its target from answers (src/registry/target-knowledge.ts): when a repository
// counts as empty of the push's blobs; a target that answers "present" first never does; a mount stands for
// a HEAD only on a target that has answered a mount with 201.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TargetKnowledge } from '../../src/registry/target-knowledge.js';
import type { Digest } from '../../src/oci/digest.js';

const DIGEST = `sha256:${'a'.repeat(64)}` as Digest;

test('before any answer no repository looks empty: the first blobs are asked with a HEAD', () => {
  const known = new TargetKnowledge();
  assert.equal(known.looksEmpty('ns/app'), false);
});

test('after "absent" answers only, a repository not asked yet looks empty too', () => {
  const known = new TargetKnowledge();
  known.blobAbsent('ns/app');
  assert.equal(known.looksEmpty('ns/app'), true);
  assert.equal(known.looksEmpty('ns/other'), true);
});

test('one "present" answer ends it for that repository, and for repositories not asked yet', () => {
  const known = new TargetKnowledge();
  known.blobAbsent('ns/app');
  known.blobAbsent('ns/both');
  known.blobPresent('ns/both');
  assert.equal(known.looksEmpty('ns/both'), false);
  assert.equal(known.looksEmpty('ns/app'), true, 'a repository that answered absent only stays empty');
  assert.equal(known.looksEmpty('ns/new'), false);
});

test('a re-run whose first answer is "present" never looks empty', () => {
  const known = new TargetKnowledge();
  known.blobPresent('ns/app');
  known.blobAbsent('ns/app');
  assert.equal(known.looksEmpty('ns/app'), false);
  assert.equal(known.looksEmpty('ns/other'), false);
});

test('remembers which blobs this run placed where (a mount source)', () => {
  const known = new TargetKnowledge();
  known.blobPlaced('ns/app', DIGEST);
  assert.equal(known.placedIn('ns/app', DIGEST), true);
  assert.equal(known.placedIn('ns/other', DIGEST), false);
});

test('a repository that looks empty is asked by a mount from itself only once the target has answered a mount with 201', () => {
  const known = new TargetKnowledge();
  known.blobAbsent('ns/app');
  assert.equal(known.looksEmpty('ns/app'), true);
  assert.equal(known.asksByOwnMount('ns/app'), false, 'a 202 could come from a registry that does not mount');
  assert.equal(known.mountsProven(), false);
  known.mountLinked();
  assert.equal(known.mountsProven(), true);
  assert.equal(known.asksByOwnMount('ns/app'), true);
  assert.equal(known.asksByOwnMount('ns/new'), true);
  known.blobPresent('ns/app');
  assert.equal(known.asksByOwnMount('ns/app'), false);
});

test('a 202 to a mount of a blob its own repository holds ends own-repository mounts, even after a later cross-repository 201', () => {
  const known = new TargetKnowledge();
  known.blobAbsent('ns/app');
  known.ownMountsUninformative();
  known.mountLinked();
  assert.equal(known.mountsProven(), true, 'cross-repository mounts are proven by the 201');
  assert.equal(known.asksByOwnMount('ns/app'), false, 'a 202 from its own repository still says nothing of absence');
});
