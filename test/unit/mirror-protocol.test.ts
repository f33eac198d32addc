// The small protocol pieces of the mirror: Range headers, Accept negotiation and list pagination.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRangeHeader } from '../../src/mirror/range.js';
import { negotiate, parseAccept } from '../../src/mirror/negotiation.js';
import { nextLink, paginate, parsePageSize } from '../../src/mirror/pagination.js';
import { MediaType } from '../../src/oci/media-types.js';

test('a single byte range is served, its end clipped to the size', () => {
  assert.deepEqual(parseRangeHeader('bytes=0-9', 100), { kind: 'range', range: { start: 0, end: 9 } });
  assert.deepEqual(parseRangeHeader('bytes=90-500', 100), { kind: 'range', range: { start: 90, end: 99 } });
  assert.deepEqual(parseRangeHeader('bytes=40-', 100), { kind: 'range', range: { start: 40, end: 99 } });
  assert.deepEqual(parseRangeHeader('bytes=-10', 100), { kind: 'range', range: { start: 90, end: 99 } });
  assert.deepEqual(parseRangeHeader('bytes=-1000', 100), { kind: 'range', range: { start: 0, end: 99 } });
});

test('a range starting past the end, or a zero suffix, is unsatisfiable', () => {
  assert.deepEqual(parseRangeHeader('bytes=100-', 100), { kind: 'unsatisfiable' });
  assert.deepEqual(parseRangeHeader('bytes=-0', 100), { kind: 'unsatisfiable' });
  assert.deepEqual(parseRangeHeader('bytes=0-', 0), { kind: 'unsatisfiable' });
});

test('several ranges, other units and malformed headers are ignored (the whole blob)', () => {
  for (const h of ['bytes=0-1,5-6', 'items=0-1', 'bytes=5-1', 'bytes=x-y', 'bytes=-', undefined]) {
    assert.deepEqual(parseRangeHeader(h, 100), { kind: 'whole' }, String(h));
  }
});

const containersImage = [MediaType.ociManifest, MediaType.dockerManifest, 'application/vnd.docker.distribution.manifest.v1+prettyjws', MediaType.dockerManifestList, MediaType.ociIndex].join(', ');

test('what containers/image accepts is served as stored', () => {
  const accepted = parseAccept(containersImage);
  for (const t of [MediaType.ociManifest, MediaType.ociIndex, MediaType.dockerManifest, MediaType.dockerManifestList]) {
    assert.deepEqual(negotiate(t, accepted, true), { kind: 'serve' });
  }
});

test('an OCI manifest or index the client does not accept is unknown to it', () => {
  const dockerOnly = parseAccept(`${MediaType.dockerManifest}, ${MediaType.dockerManifestList}`);
  assert.equal(negotiate(MediaType.ociManifest, dockerOnly, false).kind, 'not-acceptable');
  assert.equal(negotiate(MediaType.ociIndex, dockerOnly, true).kind, 'not-acceptable');
});

test('a Docker manifest list by tag without list types in Accept gives the platform child; by digest it is served', () => {
  const noLists = parseAccept(MediaType.dockerManifest);
  assert.equal(negotiate(MediaType.dockerManifestList, noLists, true).kind, 'platform-child');
  assert.equal(negotiate(MediaType.dockerManifestList, noLists, false).kind, 'serve');
});

test('no Accept header, or a wildcard, accepts everything; q=0 refuses a type', () => {
  assert.equal(parseAccept(undefined).all, true);
  assert.equal(parseAccept('*/*').all, true);
  assert.equal(negotiate(MediaType.ociIndex, parseAccept([`${MediaType.ociIndex};q=0`, MediaType.dockerManifest]), true).kind, 'not-acceptable');
});

test('pagination is lexical with last exclusive, n=0 empty, and a next page only when cut short', () => {
  const tags = ['a', 'b', 'c', 'd'];
  assert.deepEqual(paginate(tags, 2, undefined), { entries: ['a', 'b'], nextLast: 'b' });
  assert.deepEqual(paginate(tags, 2, 'b'), { entries: ['c', 'd'] });
  assert.deepEqual(paginate(tags, 0, undefined), { entries: [] });
  assert.deepEqual(paginate(tags, null, 'bb'), { entries: ['c', 'd'] });
  assert.deepEqual(paginate(tags, 10, 'zz'), { entries: [] });
  assert.equal(parsePageSize('-1'), undefined);
  assert.equal(parsePageSize('abc'), undefined);
  assert.equal(parsePageSize(undefined), null);
  assert.equal(nextLink('/v2/a/tags/list', 2, 'v 1'), '</v2/a/tags/list?n=2&last=v+1>; rel="next"');
});

test('the listen address is loopback unless another address is written out', async () => {
  const { parseListen, DEFAULT_LISTEN } = await import('../../src/mirror/server.js');
  assert.equal(DEFAULT_LISTEN, '127.0.0.1:5000');
  assert.deepEqual(parseListen('5000'), { host: '127.0.0.1', port: 5000 });
  assert.deepEqual(parseListen('0.0.0.0:5000'), { host: '0.0.0.0', port: 5000 });
  assert.deepEqual(parseListen('[::1]:5001'), { host: '::1', port: 5001 });
  assert.deepEqual(parseListen('10.0.0.5:5000'), { host: '10.0.0.5', port: 5000 });
  for (const bad of ['', 'localhost', '1.2.3.4:99999', 'a:b', '[::1]']) assert.throws(() => parseListen(bad), /invalid listen address/, bad);
});
