import { test } from 'node:test';
import assert from 'node:assert/strict';
import TOML from '@iarna/toml';
import fc from 'fast-check';
import YAML from 'yaml';
import { formatReference, parseReference } from '../../src/oci/reference.js';
import { parseBundleSpec, BUNDLE_SPEC_KEYS } from '../../src/plan/bundle-spec.js';
import { parseImageList, parsePinnedImageSets, parsePlainList, PINNED_IMAGE_SET_API_VERSIONS } from '../../src/plan/selection.js';
import { UserError } from '../../src/util/errors.js';
import { expectOnly, FUZZ_OPTIONS, hex64, trickyText } from '../support/fuzz.js';

const goodReference = fc
  .tuple(fc.constantFrom('quay.io/openshift-release-dev/ocp-v4.0-art-dev', 'registry.example.com/team/tool', 'localhost:5000/a'), hex64)
  .map(([repo, h]) => `${repo}@sha256:${h}`);
const referenceish = fc.oneof({ weight: 3, arbitrary: goodReference }, { weight: 1, arbitrary: trickyText(40) });
const yamlish = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constant(null));

function sometimes<T>(valid: fc.Arbitrary<T>): fc.Arbitrary<unknown> {
  return fc.oneof({ weight: 4, arbitrary: valid }, { weight: 1, arbitrary: yamlish });
}

const pinnedImageSet = fc.record(
  {
    apiVersion: sometimes(fc.constantFrom(...PINNED_IMAGE_SET_API_VERSIONS, 'v1')),
    kind: sometimes(fc.constantFrom('PinnedImageSet', 'PinnedImageSetList', 'ConfigMap')),
    metadata: fc.record({ name: fc.string({ maxLength: 10 }) }),
    spec: sometimes(fc.record({ pinnedImages: sometimes(fc.array(sometimes(fc.record({ name: sometimes(referenceish) })), { maxLength: 4 })) }, { requiredKeys: [] })),
  },
  { requiredKeys: [] },
);
const pinnedDocument = fc.oneof(
  pinnedImageSet,
  fc.record({ apiVersion: fc.constant('v1'), kind: sometimes(fc.constantFrom('List', 'PinnedImageSetList')), items: sometimes(fc.array(pinnedImageSet, { maxLength: 3 })) }, { requiredKeys: ['kind'] }),
);
const pinnedYaml = fc.oneof(
  fc.array(pinnedDocument, { minLength: 1, maxLength: 3 }).map((docs) => docs.map((d) => YAML.stringify(d)).join('---\n')),
  fc.tuple(pinnedDocument, fc.nat()).map(([d, n]) => { const s = YAML.stringify(d); return s.slice(0, n % (s.length + 1)); }),
  // Anchors and aliases, including ones that point nowhere.
  fc.constantFrom('kind: *k\n', 'a: &k PinnedImageSet\nkind: *k\napiVersion: machineconfiguration.openshift.io/v1\n', '{kind: [', '- a\n- b\n', '"x"', '--- !!binary AAAA\n'),
);

/** Bundle spec TOML: known keys with plausible or wrong values, and keys that are not in the spec at all. */
const specKey = fc.oneof(fc.constantFrom(...BUNDLE_SPEC_KEYS), fc.string({ minLength: 1, maxLength: 6 }));
const specValue = fc.oneof(referenceish, fc.array(referenceish, { maxLength: 3 }), fc.constantFrom('linux/amd64', 'all', '4GiB', '0', 'linux'), fc.integer(), fc.boolean(), fc.array(fc.constantFrom('linux/amd64', 'linux/arm64/v8', 'x'), { maxLength: 2 }));
const specToml = fc.dictionary(specKey, specValue, { maxKeys: 5 }).map((doc) => {
  try {
    return TOML.stringify(doc as TOML.JsonMap);
  } catch {
    return '';
  }
});

const listText = fc.oneof(
  pinnedYaml,
  specToml,
  fc.array(fc.oneof(referenceish, fc.constantFrom('', '# comment', '   ')), { maxLength: 6 }).map((lines) => lines.join('\n')),
  trickyText(200),
);
const listFile = fc.constantFrom('images.yaml', 'images.yml', 'images.json', 'spec.toml', 'images.txt', 'images');

test('parseImageList on arbitrary text yields requested images or a UserError naming the file', () => {
  fc.assert(
    fc.property(listText, listFile, (text, file) => {
      const images = expectOnly(() => parseImageList(text, file), [UserError], { text, file });
      if (images === undefined) {
        try {
          parseImageList(text, file);
        } catch (err) {
          assert.ok((err as UserError).message.startsWith(file), `message names the file: ${(err as UserError).message}`);
        }
        return;
      }
      for (const image of images) {
        assert.equal(image.requestedAs, formatReference(image.reference));
        assert.ok(image.origin.startsWith(file), `origin ${image.origin} names the file`);
      }
    }),
    FUZZ_OPTIONS,
  );
});

test('a bundle spec with arbitrary keys and values parses or fails with a UserError naming the file', () => {
  const oddKey = fc.oneof(specKey, fc.constantFrom('a(', '+', '[x', 'images)', '\\', '*', '?'));
  fc.assert(
    fc.property(fc.dictionary(oddKey, specValue, { maxKeys: 4 }), (doc) => {
      let text: string;
      try {
        text = TOML.stringify(doc as TOML.JsonMap);
      } catch {
        return;
      }
      try {
        parseBundleSpec(text, '/tmp/fuzz-spec.toml');
      } catch (err) {
        assert.ok(err instanceof UserError, `expected a UserError, got ${String(err)} for ${text}`);
        assert.ok(err.message.startsWith('/tmp/fuzz-spec.toml'), err.message);
      }
    }),
    FUZZ_OPTIONS,
  );
});

test('a PinnedImageSet built from valid references lists exactly those references, in order, with their lines', () => {
  fc.assert(
    fc.property(fc.array(goodReference, { maxLength: 8 }), fc.constantFrom(...PINNED_IMAGE_SET_API_VERSIONS), (refs, apiVersion) => {
      const text = YAML.stringify({ apiVersion, kind: 'PinnedImageSet', metadata: { name: 'x' }, spec: { pinnedImages: refs.map((name) => ({ name })) } });
      const images = parsePinnedImageSets(text, 'set.yaml');
      assert.deepEqual(images.map((i) => i.requestedAs), refs.map((r) => formatReference(parseReference(r))));
      const lines = text.split('\n');
      for (const image of images) {
        const line = Number(image.origin.split(':')[1]);
        assert.ok(lines[line - 1]!.includes(image.requestedAs.split('@')[1]!), `line ${line} holds ${image.requestedAs}`);
      }
    }),
    FUZZ_OPTIONS,
  );
});

test('a plain list keeps every reference with its line number and ignores comments and blank lines', () => {
  const line = fc.oneof(goodReference.map((r) => ({ ref: r as string | undefined, text: r })), fc.constantFrom('', '# note', '  ').map((t) => ({ ref: undefined as string | undefined, text: t })), goodReference.map((r) => ({ ref: r as string | undefined, text: `  ${r}  # pinned` })));
  fc.assert(
    fc.property(fc.array(line, { maxLength: 10 }), (lines) => {
      const images = parsePlainList(lines.map((l) => l.text).join('\n'), 'list.txt');
      const expected = lines.flatMap((l, i) => (l.ref === undefined ? [] : [{ ref: l.ref, origin: `list.txt:${i + 1}` }]));
      assert.deepEqual(images.map((i) => ({ ref: i.requestedAs, origin: i.origin })), expected);
    }),
    FUZZ_OPTIONS,
  );
});
