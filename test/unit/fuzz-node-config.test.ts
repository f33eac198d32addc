import { test } from 'node:test';
import assert from 'node:assert/strict';
import TOML from '@iarna/toml';
import fc from 'fast-check';
import { CONFIG_KEYS, loadNodeConfig, parseConfigText, resolveConfig } from '../../src/node/config.js';
import { UserError } from '../../src/util/errors.js';
import { parseSize } from '../../src/util/size.js';
import { expectOnly, expectOnlyAsync, FUZZ_OPTIONS, trickyText } from '../support/fuzz.js';

const sections = [...new Set(CONFIG_KEYS.map((k) => k.section))];

/** Values that are right for some key and wrong for others, plus any TOML scalar. */
const plausibleValue = fc.oneof(
  fc.constantFrom('/var/lib/pin-preload', 'relative/path', '', ' ', '127.0.0.1:5000', '[::1]:5000', 'host:99999', 'crio', 'containerd', 'docker',
    'unix:///run/containerd/containerd.sock', '10GiB', '5 MB', '12XB', '90s', '1h30m', '0s', '10', '-1', 'constructor'),
  fc.constantFrom(['systemctl', 'reload', 'crio'], [], [''], ['a', 1]),
  fc.integer({ min: -5, max: 200 }),
  fc.bigInt({ min: 2n ** 53n, max: 2n ** 63n - 1n }),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.boolean(),
  fc.date({ min: new Date(0), max: new Date(4e12), noInvalidDate: true }),
  trickyText(20),
);

const knownKeyEntry = fc.constantFrom(...CONFIG_KEYS).chain((k) => plausibleValue.map((v) => [k.section, k.key, v] as const));
const randomKeyEntry = fc.tuple(fc.oneof(fc.constantFrom(...sections), fc.stringMatching(/^[a-z_]{1,8}$/)), fc.stringMatching(/^[a-z_]{1,10}$/), plausibleValue);
const configDocument = fc.array(fc.oneof({ weight: 4, arbitrary: knownKeyEntry }, { weight: 1, arbitrary: randomKeyEntry }), { maxLength: 6 }).map((entries) => {
  const doc: Record<string, Record<string, unknown>> = {};
  for (const [section, key, value] of entries) (doc[section] ??= {})[key] = value;
  return doc;
});
/** A section holding a scalar instead of a table: "paths = 3". */
const scalarSection = fc.tuple(fc.constantFrom(...sections), plausibleValue).map(([s, v]) => ({ [s]: v }));

/** TOML text for `doc`, or undefined when @iarna/toml cannot write it in a form it reads back (e.g. NUL). */
function stringify(doc: object): string | undefined {
  try {
    const text = TOML.stringify(doc as TOML.JsonMap);
    TOML.parse(text);
    return text;
  } catch {
    return undefined;
  }
}

/** The key names the message may point at: each section and each section.key of the document. */
function namesIn(doc: Record<string, unknown>): string[] {
  const names: string[] = [];
  for (const [section, table] of Object.entries(doc)) {
    names.push(section);
    if (table !== null && typeof table === 'object' && !Array.isArray(table) && !(table instanceof Date)) {
      for (const key of Object.keys(table)) names.push(`${section}.${key}`);
    }
  }
  return names;
}

test('a node config file with wrong keys or values fails with a CONFIG_INVALID UserError naming the file and the key', () => {
  fc.assert(
    fc.property(fc.oneof({ weight: 5, arbitrary: configDocument }, { weight: 1, arbitrary: scalarSection }), (doc) => {
      const text = stringify(doc);
      fc.pre(text !== undefined);
      const values = expectOnly(() => parseConfigText(text!, 'fuzz.toml'), [UserError], text);
      if (values !== undefined) {
        // Whatever parsed must also merge into a NodeConfig, or fail naming the TLS pair.
        expectOnly(() => resolveConfig(values, new Map(), 'fuzz.toml'), [UserError], text);
        return;
      }
      try {
        parseConfigText(text!, 'fuzz.toml');
      } catch (err) {
        const e = err as UserError;
        assert.equal(e.code, 'CONFIG_INVALID');
        const reparsed = TOML.parse(text!) as Record<string, unknown>;
        assert.ok(namesIn(reparsed).some((n) => e.message.startsWith(`fuzz.toml: ${n}: `)), `message names a key of the file: ${e.message}`);
      }
    }),
    FUZZ_OPTIONS,
  );
});

test('arbitrary text as a node config file yields values or a CONFIG_INVALID UserError, never another exception', () => {
  fc.assert(
    fc.property(trickyText(200), (text) => {
      const values = expectOnly(() => parseConfigText(text, 'fuzz.toml'), [UserError], text);
      if (values === undefined) {
        try {
          parseConfigText(text, 'fuzz.toml');
        } catch (err) {
          assert.equal((err as UserError).code, 'CONFIG_INVALID');
        }
      }
    }),
    FUZZ_OPTIONS,
  );
});

test('command-line flags with any string value give a NodeConfig or a UserError naming the flag', async () => {
  const flag = fc.constantFrom(...CONFIG_KEYS.map((k) => k.flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())));
  await fc.assert(
    fc.asyncProperty(fc.dictionary(flag, fc.oneof(plausibleValue.map(String), trickyText(20)), { maxKeys: 4 }), async (flags) => {
      try {
        await loadNodeConfig({ configFile: '/dev/null', flags });
      } catch (err) {
        await expectOnlyAsync(() => Promise.reject(err), [UserError], flags);
        const e = err as UserError;
        assert.equal(e.code, 'CONFIG_INVALID');
        assert.match(e.message, /^command line: (--[a-z-]+|mirror\.tls_(cert|key)): /, e.message);
      }
    }),
    { ...FUZZ_OPTIONS, numRuns: Math.min(FUZZ_OPTIONS.numRuns, 200) },
  );
});

test('parseSize throws only a BAD_SIZE UserError and returns safe non-negative integers', () => {
  fc.assert(
    fc.property(fc.oneof(trickyText(20), fc.tuple(fc.stringMatching(/^\d{1,20}(\.\d{1,3})?$/), fc.constantFrom('', 'B', 'KiB', 'mb', 'GB', 'TiB', ' gib', 'xb', 'constructor', 'toString')).map(([n, u]) => n + u)), (text) => {
      const bytes = expectOnly(() => parseSize(text), [UserError], text);
      if (bytes !== undefined) assert.ok(Number.isSafeInteger(bytes) && bytes >= 0, `${text} → ${bytes}`);
    }),
    FUZZ_OPTIONS,
  );
});
