// How a bundle's tar entries are named in errors (src/bundle/format.ts).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeEntry } from '../../src/bundle/format.js';

const HEX = 'a'.repeat(64);

test('describeEntry names a blob entry by its digest, and blobs/sha256/ itself and other entries by their file name', () => {
  assert.equal(describeEntry(`blobs/sha256/${HEX}`), `blob sha256:${HEX}`);
  assert.equal(describeEntry('blobs/sha256/'), 'blobs/sha256/', 'the directory entry is no blob with an empty digest');
  assert.equal(describeEntry('blobs/sha256/not-a-digest'), 'blobs/sha256/not-a-digest');
  assert.equal(describeEntry(`blobs/sha256/${HEX.slice(1)}`), `blobs/sha256/${HEX.slice(1)}`, 'a hex one digit short is no digest');
  assert.equal(describeEntry('blobs/'), 'blobs/');
  assert.equal(describeEntry('pin-preload.json'), 'pin-preload.json');
  assert.equal(describeEntry('index.json'), 'index.json');
});
