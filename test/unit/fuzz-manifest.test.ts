import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isDigest } from '../../src/oci/digest.js';
import { ManifestError, parseManifest, referencedBlobs, type Descriptor, type Manifest } from '../../src/oci/manifest.js';
import { isManifestMediaType, MediaType } from '../../src/oci/media-types.js';
import { expectOnly, FUZZ_OPTIONS, hex64 } from '../support/fuzz.js';

/** Either a plausible value for a field or any JSON at all, so documents are near-valid as often as not. */
function sometimes<T>(valid: fc.Arbitrary<T>): fc.Arbitrary<unknown> {
  return fc.oneof({ weight: 3, arbitrary: valid }, { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) }, { weight: 1, arbitrary: fc.constant(undefined) });
}

const mediaTypes = [MediaType.ociManifest, MediaType.dockerManifest, MediaType.ociIndex, MediaType.dockerManifestList];
const mediaType = fc.oneof(fc.constantFrom(...mediaTypes, 'application/vnd.oci.image.layer.v1.tar+gzip', 'application/json', ''), fc.string({ maxLength: 20 }));
const digest = fc.oneof({ weight: 4, arbitrary: hex64.map((h) => `sha256:${h}`) }, { weight: 1, arbitrary: fc.string({ maxLength: 80 }) });
const size = fc.oneof(fc.nat(), fc.integer(), fc.double(), fc.constant(Number.MAX_SAFE_INTEGER + 2), fc.constant('12'));
const platform = fc.record(
  { os: sometimes(fc.constantFrom('linux', 'windows')), architecture: sometimes(fc.constantFrom('amd64', 'arm64')), variant: sometimes(fc.constantFrom('v8', '')) },
  { requiredKeys: [] },
);
const annotations = sometimes(fc.dictionary(fc.string({ maxLength: 10 }), fc.oneof(fc.string({ maxLength: 10 }), fc.integer()), { maxKeys: 3 }));
const descriptor = fc.record(
  { mediaType: sometimes(mediaType), digest: sometimes(digest), size: sometimes(size), annotations, platform: sometimes(platform), artifactType: sometimes(fc.string({ maxLength: 10 })) },
  { requiredKeys: [] },
);
const descriptors = sometimes(fc.array(sometimes(descriptor), { maxLength: 4 }));

const manifestDocument = fc.record(
  {
    schemaVersion: fc.oneof({ weight: 5, arbitrary: fc.constant(2) }, { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 1 }) }),
    mediaType: sometimes(mediaType),
    config: sometimes(descriptor),
    layers: descriptors,
    manifests: descriptors,
    subject: fc.oneof(fc.constant(undefined), descriptor),
    artifactType: sometimes(fc.string({ maxLength: 10 })),
    annotations,
  },
  { requiredKeys: [] },
);

const manifestBytes = fc.oneof(
  { weight: 4, arbitrary: manifestDocument.map((d) => Buffer.from(JSON.stringify(d))) },
  { weight: 1, arbitrary: fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v) ?? 'null')) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)) },
  // A valid document cut short, as a truncated download would leave it.
  { weight: 1, arbitrary: fc.tuple(manifestDocument, fc.nat()).map(([d, n]) => { const s = JSON.stringify(d); return Buffer.from(s.slice(0, n % (s.length + 1))); }) },
);
const contentType = fc.oneof(fc.constant(undefined), fc.constantFrom(...mediaTypes), fc.string({ maxLength: 20 }));

function assertValidDescriptor(d: Descriptor): void {
  assert.equal(typeof d.mediaType, 'string');
  assert.notEqual(d.mediaType, '');
  assert.ok(isDigest(d.digest), `descriptor digest ${d.digest} is valid`);
  assert.ok(Number.isSafeInteger(d.size) && d.size >= 0, `descriptor size ${d.size} is a safe non-negative integer`);
  if (d.annotations) for (const v of Object.values(d.annotations)) assert.equal(typeof v, 'string');
}

function assertValidManifest(m: Manifest): void {
  assert.ok(isManifestMediaType(m.mediaType), `media type ${m.mediaType} is a manifest type`);
  if (m.subject) assertValidDescriptor(m.subject);
  if (m.kind === 'image') {
    for (const d of referencedBlobs(m)) assertValidDescriptor(d);
  } else {
    assert.equal(m.kind, 'index');
    for (const d of m.manifests) {
      assertValidDescriptor(d);
      if (d.platform) {
        assert.equal(typeof d.platform.os, 'string');
        assert.equal(typeof d.platform.architecture, 'string');
      }
    }
  }
}

test('parseManifest on arbitrary bytes yields a valid manifest or a ManifestError, never a TypeError', () => {
  fc.assert(
    fc.property(manifestBytes, contentType, (bytes, type) => {
      const manifest = expectOnly(() => parseManifest(bytes, type, 'fuzz'), [ManifestError], bytes.toString('utf8'));
      if (manifest !== undefined) assertValidManifest(manifest);
    }),
    FUZZ_OPTIONS,
  );
});

test('a ManifestError names where the manifest came from', () => {
  fc.assert(
    fc.property(manifestBytes, fc.stringMatching(/^[a-z0-9./@:]{1,30}$/), (bytes, where) => {
      try {
        parseManifest(bytes, undefined, where);
      } catch (err) {
        assert.ok(err instanceof ManifestError);
        assert.ok(err.message.startsWith(`${where}: invalid manifest: `), err.message);
      }
    }),
    FUZZ_OPTIONS,
  );
});

test('a well-formed image manifest parses to the same descriptors it was written with', () => {
  const goodDescriptor = fc.record({ mediaType: fc.constantFrom('application/vnd.oci.image.layer.v1.tar+gzip', 'application/vnd.oci.image.config.v1+json'), digest: hex64.map((h) => `sha256:${h}`), size: fc.nat() });
  fc.assert(
    fc.property(goodDescriptor, fc.array(goodDescriptor, { maxLength: 5 }), fc.constantFrom(MediaType.ociManifest, MediaType.dockerManifest), (config, layers, type) => {
      const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: type, config, layers }));
      const m = parseManifest(bytes, type, 'fuzz');
      assert.equal(m.kind, 'image');
      if (m.kind !== 'image') return;
      assert.deepEqual(JSON.parse(JSON.stringify(referencedBlobs(m))), JSON.parse(JSON.stringify([config, ...layers])));
    }),
    FUZZ_OPTIONS,
  );
});
