import { test } from 'node:test';
import assert from 'node:assert/strict';
import TOML from '@iarna/toml';
import fc from 'fast-check';
import { parseReference, repositoryPathProblem, type Reference } from '../../src/oci/reference.js';
import { endpointsFor, parseRegistriesConf, registryFor, type Endpoint, type RegistriesConf } from '../../src/registry/registries-conf.js';
import { UserError } from '../../src/util/errors.js';
import { expectOnly, FUZZ_OPTIONS, trickyText } from '../support/fuzz.js';

// A small pool of hosts and paths so that prefixes, locations and references often meet.
const host = fc.constantFrom('quay.io', 'registry.example.com', 'mirror.corp.example', 'localhost:5000', '127.0.0.1:5000', 'docker.io');
const pathPart = fc.constantFrom('ocp', 'openshift-release-dev', 'ocp-v4.0-art-dev', 'library', 'team', 'a', 'b-c');
const namespace = fc.tuple(host, fc.array(pathPart, { maxLength: 3 })).map(([h, p]) => [h, ...p].join('/'));
const reference = fc
  .tuple(namespace, pathPart, fc.option(fc.constantFrom(':latest', ':4.16'), { nil: '' }), fc.option(fc.constant('@sha256:' + 'ab'.repeat(32)), { nil: '' }))
  .map(([ns, leaf, t, d]) => `${ns}/${leaf}${t}${d}`);

/** A scalar TOML value of any type, including integers past 2^53 that @iarna/toml returns as BigInt. */
const tomlValue = fc.oneof(
  trickyText(30),
  fc.boolean(),
  fc.integer(),
  fc.bigInt({ min: -(2n ** 63n) + 1n, max: 2n ** 63n - 1n }),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.date({ min: new Date(0), max: new Date(4e12), noInvalidDate: true }),
  fc.array(fc.string({ maxLength: 5 }), { maxLength: 3 }),
);

function sometimes<T>(valid: fc.Arbitrary<T>): fc.Arbitrary<unknown> {
  return fc.oneof({ weight: 4, arbitrary: valid }, { weight: 1, arbitrary: tomlValue });
}

const mirror = fc.record(
  {
    location: sometimes(fc.oneof(namespace, namespace.map((n) => `${n}/`), namespace.map((n) => `http://${n}`))),
    insecure: sometimes(fc.boolean()),
    'pull-from-mirror': sometimes(fc.constantFrom('all', 'digest-only', 'tag-only', 'sometimes')),
  },
  { requiredKeys: [] },
);
const registry = fc.record(
  {
    prefix: sometimes(fc.oneof(namespace, fc.constantFrom('*.example.com', '*.corp.example', '*.io', '*', 'quay.*'), reference)),
    location: sometimes(fc.oneof(namespace, fc.constant(''))),
    insecure: sometimes(fc.boolean()),
    blocked: sometimes(fc.boolean()),
    'mirror-by-digest-only': sometimes(fc.boolean()),
    mirror: sometimes(fc.array(mirror, { maxLength: 3 })),
  },
  { requiredKeys: [] },
);
const confDocument = fc.record(
  {
    registry: sometimes(fc.array(registry, { maxLength: 4 })),
    'unqualified-search-registries': fc.array(host, { maxLength: 2 }),
    registries: fc.constant({ search: { registries: ['quay.io'] } }),
  },
  { requiredKeys: [] },
);

/** TOML text: a stringified structure (when @iarna/toml can write it), its lines shuffled into junk, or junk. */
const confText = fc.oneof(
  { weight: 5, arbitrary: confDocument.map((d) => { try { return TOML.stringify(d as TOML.JsonMap); } catch { return ''; } }) },
  { weight: 1, arbitrary: fc.tuple(confDocument, fc.nat()).map(([d, n]) => { try { const s = TOML.stringify(d as TOML.JsonMap); return s.slice(0, n % (s.length + 1)); } catch { return '['; } }) },
  { weight: 1, arbitrary: trickyText(200) },
  // Hand-written lines reach values stringify cannot produce (huge integers written directly).
  { weight: 2, arbitrary: fc.array(fc.tuple(fc.constantFrom('prefix', 'location', 'insecure', 'blocked', 'mirror-by-digest-only', 'pull-from-mirror'), fc.constantFrom('99999999999999999999', '9007199254740993', 'true', '"quay.io"', '1.5', '1979-05-27', '[1, 2]', '{ a = 1 }')), { minLength: 1, maxLength: 4 })
    .chain((pairs) => fc.constantFrom('[[registry]]', '[[registry]]\n[[registry.mirror]]', '').map((header) => `${header}\n${pairs.map(([k, v]) => `${k} = ${v}`).join('\n')}\nlocation = "quay.io"\n`)) },
);

test('parseRegistriesConf on arbitrary TOML yields a configuration or a REGISTRIES_CONF_INVALID UserError', () => {
  fc.assert(
    fc.property(confText, (text) => {
      const conf = expectOnly(() => parseRegistriesConf(text, 'fuzz.conf'), [UserError], text);
      if (conf === undefined) {
        try {
          parseRegistriesConf(text, 'fuzz.conf');
        } catch (err) {
          assert.equal((err as UserError).code, 'REGISTRIES_CONF_INVALID');
          assert.ok((err as UserError).message.startsWith('fuzz.conf: '), (err as UserError).message);
        }
      }
    }),
    FUZZ_OPTIONS,
  );
});

function confOrUndefined(text: string): RegistriesConf | undefined {
  try {
    return parseRegistriesConf(text, 'fuzz.conf');
  } catch {
    return undefined;
  }
}

test('endpoint resolution on any parsed configuration returns valid repositories or a UserError, never another exception', () => {
  fc.assert(
    fc.property(confText, fc.array(reference, { minLength: 1, maxLength: 4 }), fc.boolean(), (text, refs, byDigest) => {
      const conf = confOrUndefined(text);
      if (conf === undefined) return;
      for (const refText of refs) {
        const ref: Reference = parseReference(refText);
        expectOnly(() => registryFor(conf, ref), [UserError], { text, refText });
        const endpoints: Endpoint[] | undefined = expectOnly(() => endpointsFor(conf, ref, byDigest), [UserError], { text, refText });
        if (endpoints === undefined) continue;
        assert.ok(endpoints.length > 0, 'resolution returns at least one endpoint or throws');
        for (const e of endpoints) {
          assert.equal(repositoryPathProblem(e.path), undefined, `endpoint path ${e.path} is a valid repository path`);
          assert.ok(e.host.length > 0);
        }
        // Without any matching [[registry]] the image is fetched from where its name says.
        if (registryFor(conf, ref) === undefined) assert.deepEqual(endpoints.map((e) => e.path), [ref.path]);
      }
    }),
    FUZZ_OPTIONS,
  );
});
