import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseImageReferences } from '../../src/release/image-stream.js';
import { parseReleaseMetadata } from '../../src/release/release-metadata.js';
import { UserError } from '../../src/util/errors.js';

const D1 = `sha256:${'1'.repeat(64)}`;
const D2 = `sha256:${'2'.repeat(64)}`;
const ART = 'quay.io/openshift-release-dev/ocp-v4.0-art-dev';

function stream(tags: unknown[], overrides: Record<string, unknown> = {}): string {
  return JSON.stringify({
    kind: 'ImageStream',
    apiVersion: 'image.openshift.io/v1',
    metadata: { name: '4.16.3', creationTimestamp: '2024-07-10T00:00:00Z', annotations: { 'release.openshift.io/from-image-stream': 'ocp/4.16-art-latest' } },
    spec: { lookupPolicy: { local: false }, tags },
    status: { dockerImageRepository: '' },
    ...overrides,
  });
}

const tag = (name: string, from: unknown) => ({ name, annotations: { 'io.openshift.build.commit.id': 'abc' }, from, generation: null, importPolicy: {}, referencePolicy: { type: '' } });

test('image-references gives the version and every DockerImage tag by digest, in file order', () => {
  const parsed = parseImageReferences(stream([
    tag('machine-config-operator', { kind: 'DockerImage', name: `${ART}@${D1}` }),
    tag('cli', { kind: 'DockerImage', name: `${ART}@${D2}` }),
  ]), 'rel');
  assert.equal(parsed.version, '4.16.3');
  assert.deepEqual(parsed.components.map((c) => c.name), ['machine-config-operator', 'cli']);
  assert.deepEqual(parsed.components[0]!.reference, { domain: 'quay.io', path: 'openshift-release-dev/ocp-v4.0-art-dev', digest: D1 });
});

test('tags without a from, or whose from is not a DockerImage, are skipped as oc skips them', () => {
  const parsed = parseImageReferences(stream([
    { name: 'no-from' },
    tag('istag', { kind: 'ImageStreamTag', name: 'foo:bar' }),
    tag('cli', { kind: 'DockerImage', name: `${ART}@${D2}` }),
  ]), 'rel');
  assert.deepEqual(parsed.components.map((c) => c.name), ['cli']);
});

test('a tag by tag rather than digest is refused, naming the tag', () => {
  assert.throws(
    () => parseImageReferences(stream([tag('cli', { kind: 'DockerImage', name: `${ART}:latest` })]), 'quay.io/x/rel:1'),
    (err: unknown) => err instanceof UserError && err.code === 'RELEASE_TAG_NOT_BY_DIGEST'
      && /image-references should only contain pointers to images by digest/.test(err.message) && /"cli"/.test(err.message),
  );
});

test('a tag with an unparseable image name is refused, naming the tag', () => {
  assert.throws(
    () => parseImageReferences(stream([tag('broken', { kind: 'DockerImage', name: 'Quay.io/UPPER/case@sha256:zz' })]), 'rel'),
    (err: unknown) => err instanceof UserError && err.code === 'RELEASE_TAG_INVALID' && /"broken"/.test(err.message),
  );
});

test('a wrong kind or apiVersion is "unrecognized image-references"', () => {
  for (const overrides of [{ kind: 'ImageStreamList' }, { apiVersion: 'v1' }]) {
    assert.throws(() => parseImageReferences(stream([], overrides), 'rel'), (err: unknown) => err instanceof UserError && /unrecognized image-references in release payload rel/.test(err.message));
  }
  assert.throws(() => parseImageReferences('not json', 'rel'), /unrecognized image-references/);
});

test('release-metadata gives version and previous versions', () => {
  const meta = parseReleaseMetadata(JSON.stringify({ kind: 'cincinnati-metadata-v0', version: '4.16.3', previous: ['4.15.20', '4.16.2'], metadata: { url: 'https://access.redhat.com/errata/X' } }), 'rel');
  assert.equal(meta.version, '4.16.3');
  assert.deepEqual(meta.previous, ['4.15.20', '4.16.2']);
  assert.equal(meta.metadata.url, 'https://access.redhat.com/errata/X');
  assert.throws(() => parseReleaseMetadata(JSON.stringify({ kind: 'other', version: '1' }), 'rel'), /cincinnati-metadata-v0/);
});
