// ImageSetConfiguration parsing over arbitrary, mostly well-shaped YAML: a selection or a UserError naming
// the file and a line, never a crash (a TypeError on an odd node is a bug).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import YAML from 'yaml';
import { IMAGE_SET_CONFIG_API_VERSIONS, parseImageSetConfig } from '../../src/plan/image-set-config.js';
import { exitStatusOf } from '../../src/cli/exit-status.js';
import { UserError } from '../../src/util/errors.js';
import { expectOnly, FUZZ_OPTIONS, hex64, trickyText } from '../support/fuzz.js';

const odd = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constant(null));
const sometimes = <T>(valid: fc.Arbitrary<T>): fc.Arbitrary<unknown> => fc.oneof({ weight: 4, arbitrary: valid }, { weight: 1, arbitrary: odd });
const version = fc.oneof(fc.tuple(fc.nat(20), fc.nat(30)).map(([m, p]) => `4.${m}.${p}`), trickyText(10));
const reference = fc.oneof(hex64.map((h) => `quay.io/acme/tool@sha256:${h}`), fc.constantFrom('registry.redhat.io/ubi9/ubi:latest', 'busybox'), trickyText(30));
const channel = fc.record(
  { name: sometimes(fc.constantFrom('stable-4.16', 'eus-4.18')), minVersion: sometimes(version), maxVersion: sometimes(version), shortestPath: sometimes(fc.boolean()), full: sometimes(fc.boolean()), type: sometimes(fc.constantFrom('ocp', 'okd')) },
  { requiredKeys: [] },
);
const isc = fc.record(
  {
    kind: fc.constant('ImageSetConfiguration'),
    apiVersion: sometimes(fc.constantFrom(...IMAGE_SET_CONFIG_API_VERSIONS, 'v1')),
    mirror: sometimes(
      fc.record(
        {
          platform: sometimes(fc.record({ channels: sometimes(fc.array(sometimes(channel), { maxLength: 3 })), architectures: sometimes(fc.array(sometimes(fc.constantFrom('amd64', 'multi', 'ARM')), { maxLength: 2 })), release: sometimes(reference) }, { requiredKeys: [] })),
          additionalImages: sometimes(fc.array(sometimes(fc.record({ name: sometimes(reference) })), { maxLength: 3 })),
          blockedImages: sometimes(fc.array(sometimes(fc.record({ name: sometimes(fc.oneof(fc.constantFrom('.*/a.*', '(', '[a-'), trickyText(12))) })), { maxLength: 2 })),
          operators: fc.constantFrom(undefined, [], [{ catalog: 'x' }]),
        },
        { requiredKeys: [] },
      ),
    ),
  },
  { requiredKeys: ['kind'] },
);
const text = fc.oneof(
  isc.map((doc) => YAML.stringify(doc)),
  fc.tuple(isc, fc.nat()).map(([doc, n]) => YAML.stringify(doc).slice(0, n)),
  fc.constantFrom('kind: ImageSetConfiguration\n--- \nkind: x\n', 'kind: ImageSetConfiguration\nmirror: *a\n', 'kind: ImageSetConfiguration\n{'),
);

test('parseImageSetConfig on arbitrary input yields a selection or a UserError naming FILE:LINE', () => {
  fc.assert(
    fc.property(text, (yamlText) => {
      const parsed = expectOnly(() => parseImageSetConfig(yamlText, 'isc.yaml'), [UserError], { yamlText });
      if (parsed === undefined) {
        try {
          parseImageSetConfig(yamlText, 'isc.yaml');
        } catch (err) {
          assert.match((err as UserError).message, /^isc\.yaml:\d+: /);
          assert.equal(exitStatusOf(err), 2);
        }
        return;
      }
      for (const c of parsed.channels) assert.ok(typeof c.name === 'string' && c.origin.startsWith('isc.yaml:'));
      for (const i of [...parsed.images, ...parsed.releases]) assert.ok(i.origin.startsWith('isc.yaml:'));
    }),
    FUZZ_OPTIONS,
  );
});
