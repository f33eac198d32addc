// The copy's image-readiness scheduler (src/copy/image-readiness.ts): an image's manifests may go once every blob
// it needs is in its repository, and never while one is missing.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ImageReadiness } from '../../src/copy/image-readiness.js';
import type { Digest } from '../../src/oci/digest.js';

const d = (n: number): Digest => `sha256:${n.toString(16).padStart(64, '0')}` as Digest;
const image = (repository: string, ...blobs: number[]) => ({ repository, blobs: blobs.map((n) => ({ digest: d(n) })) });

test('an image without blobs is ready at once; one with blobs only once each of them is placed', () => {
  const empty = image('a');
  const two = image('a', 1, 2);
  const readiness = new ImageReadiness([two, empty]);
  assert.equal(readiness.next(), empty);
  readiness.blobPlaced('a', d(1));
  assert.equal(readiness.next(), undefined);
  readiness.blobPlaced('a', d(2));
  assert.equal(readiness.next(), two);
  assert.equal(readiness.hasReady, false);
});

test('a blob that is never placed (it failed) keeps its images waiting; images sharing the other blobs are not held', () => {
  const failing = image('a', 1, 2);
  const other = image('a', 2);
  const readiness = new ImageReadiness([failing, other]);
  readiness.blobPlaced('a', d(2)); // blob 1 failed: no blobPlaced for it
  assert.equal(readiness.next(), other);
  assert.equal(readiness.next(), undefined);
});

test('a blob counts per repository: placed in one, the image of another still waits for it', () => {
  const inA = image('a', 1);
  const inB = image('b', 1);
  const readiness = new ImageReadiness([inA, inB]);
  readiness.blobPlaced('a', d(1));
  assert.equal(readiness.next(), inA);
  assert.equal(readiness.next(), undefined);
  readiness.blobPlaced('b', d(1));
  assert.equal(readiness.next(), inB);
});

test('a blob listed twice by an image, or placed twice, counts once; images come out in the order they became ready', () => {
  const twice = image('a', 1, 1);
  const later = image('a', 3);
  const first = image('a', 2);
  const readiness = new ImageReadiness([twice, later, first]);
  readiness.blobPlaced('a', d(2));
  readiness.blobPlaced('a', d(1));
  readiness.blobPlaced('a', d(1));
  readiness.blobPlaced('a', d(3));
  assert.deepEqual([readiness.next(), readiness.next(), readiness.next(), readiness.next()], [first, twice, later, undefined]);
});
