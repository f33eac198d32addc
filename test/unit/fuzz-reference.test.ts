import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import fc from 'fast-check';
import { DigestMismatchError, digestAlgorithm, digestHex, digestProblem, isDigest, parseDigest, sha256Of, VerifyingStream } from '../../src/oci/digest.js';
import { formatReference, parseReference, type Reference } from '../../src/oci/reference.js';
import { UserError } from '../../src/util/errors.js';
import { expectOnly, expectOnlyAsync, FUZZ_OPTIONS, hex64, trickyText } from '../support/fuzz.js';

const alnum = fc.stringMatching(/^[a-z0-9]{1,6}$/);
const separator = fc.constantFrom('.', '_', '__', '-', '--');
const pathComponent = fc
  .tuple(alnum, fc.array(fc.tuple(separator, alnum), { maxLength: 2 }))
  .map(([head, rest]) => head + rest.map(([s, a]) => s + a).join(''));
const repoPath = fc.array(pathComponent, { minLength: 1, maxLength: 4 }).map((c) => c.join('/'));
const hostLabel = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?$/);
const port = fc.integer({ min: 1, max: 65535 }).map(String);
const domain = fc
  .oneof(
    fc.tuple(hostLabel, hostLabel).map(([a, b]) => `${a}.${b}`),
    fc.tuple(hostLabel, hostLabel, port).map(([a, b, p]) => `${a}.${b}:${p}`),
    port.map((p) => `localhost:${p}`),
    fc.constant('localhost'),
    fc.tuple(hostLabel, port).map(([a, p]) => `${a}:${p}`),
  )
  .filter((d) => d !== 'docker.io' && d !== 'index.docker.io');
const tag = fc.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9._-]{0,20}$/);
const digest = hex64.map((h) => `sha256:${h}`);

interface ReferenceParts {
  domain: string;
  path: string;
  tag: string | undefined;
  digest: string | undefined;
}

const validParts: fc.Arbitrary<ReferenceParts> = fc
  .record({ domain, path: repoPath, tag: fc.option(tag, { nil: undefined }), digest: fc.option(digest, { nil: undefined }) })
  .filter((p) => `${p.domain}/${p.path}`.length <= 255);

function textOf(p: ReferenceParts): string {
  return `${p.domain}/${p.path}${p.tag !== undefined ? `:${p.tag}` : ''}${p.digest !== undefined ? `@${p.digest}` : ''}`;
}

/** A valid reference with one character inserted, replaced or deleted. */
const mutatedReference = fc
  .tuple(validParts.map(textOf), fc.nat(), fc.constantFrom('insert', 'replace', 'delete'), fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }))
  .map(([text, at, how, ch]) => {
    const i = at % (text.length + 1);
    if (how === 'insert') return text.slice(0, i) + ch + text.slice(i);
    if (how === 'replace') return text.slice(0, i) + ch + text.slice(i + 1);
    return text.slice(0, i) + text.slice(i + 1);
  });

const anyReferenceText = fc.oneof(trickyText(80), mutatedReference, validParts.map(textOf));

function stripUndefined(ref: Reference): Reference {
  return JSON.parse(JSON.stringify(ref)) as Reference;
}

test('parseReference throws nothing but a REFERENCE_INVALID UserError on arbitrary text', () => {
  fc.assert(
    fc.property(anyReferenceText, (text) => {
      const ref = expectOnly(() => parseReference(text), [UserError], text);
      if (ref === undefined) {
        try {
          parseReference(text);
        } catch (err) {
          assert.equal((err as UserError).code, 'REFERENCE_INVALID');
          assert.ok((err as UserError).message.includes('invalid image reference'), (err as UserError).message);
        }
      }
    }),
    FUZZ_OPTIONS,
  );
});

test('formatReference after parseReference is a fixed point: parsing the canonical text gives the same reference', () => {
  fc.assert(
    fc.property(anyReferenceText, (text) => {
      const ref = expectOnly(() => parseReference(text), [UserError], text);
      if (ref === undefined) return;
      const canonical = formatReference(ref);
      const again = parseReference(canonical);
      assert.deepEqual(stripUndefined(again), stripUndefined(ref), `re-parsing ${canonical}`);
      assert.equal(formatReference(again), canonical);
    }),
    FUZZ_OPTIONS,
  );
});

test('a reference built from the distribution grammar parses into exactly its parts', () => {
  fc.assert(
    fc.property(validParts, (parts) => {
      const ref = parseReference(textOf(parts));
      assert.deepEqual(stripUndefined(ref), stripUndefined(parts as Reference));
      assert.equal(formatReference(ref), textOf(parts));
    }),
    FUZZ_OPTIONS,
  );
});

test('a one-component name without a host is normalised to docker.io/library/NAME', () => {
  const component = fc.tuple(alnum, fc.array(fc.tuple(fc.constantFrom('_', '__', '-'), alnum), { maxLength: 2 })).map(([h, r]) => h + r.map(([s, a]) => s + a).join(''));
  fc.assert(
    fc.property(component, fc.option(tag, { nil: undefined }), (name, t) => {
      const ref = parseReference(`${name}${t !== undefined ? `:${t}` : ''}`);
      assert.equal(ref.domain, 'docker.io');
      assert.equal(ref.path, `library/${name}`);
      assert.equal(ref.tag, t);
    }),
    FUZZ_OPTIONS,
  );
});

test('parseDigest accepts exactly what digestProblem accepts and throws only DIGEST_INVALID otherwise', () => {
  const digestLike = fc.oneof(
    trickyText(80),
    hex64.map((h) => `sha256:${h}`),
    fc.tuple(hex64, hex64).map(([a, b]) => `sha512:${a}${b}`),
    fc.tuple(fc.constantFrom('sha256', 'sha512', 'SHA256', 'md5', 'sha256+b64', ''), fc.string({ maxLength: 130 })).map(([a, e]) => `${a}:${e}`),
  );
  fc.assert(
    fc.property(digestLike, (text) => {
      const parsed = expectOnly(() => parseDigest(text), [UserError], text);
      assert.equal(parsed !== undefined, digestProblem(text) === undefined);
      assert.equal(isDigest(text), parsed !== undefined);
      if (parsed !== undefined) {
        assert.equal(parsed, text);
        assert.equal(`${digestAlgorithm(parsed)}:${digestHex(parsed)}`, text);
        assert.match(digestHex(parsed), /^[a-f0-9]+$/, 'the hex part is safe in a file name');
      }
    }),
    FUZZ_OPTIONS,
  );
});

test('sha256Of always yields a valid digest', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 256 }), (bytes) => {
      assert.equal(digestProblem(sha256Of(bytes)), undefined);
    }),
    FUZZ_OPTIONS,
  );
});

async function verify(chunks: Uint8Array[], expected: string, size: number | undefined): Promise<void> {
  await pipeline(
    Readable.from(chunks.map((c) => Buffer.from(c))),
    new VerifyingStream(parseDigest(expected), size, 'fuzz blob'),
    async function* (source) {
      for await (const _ of source) {
        // drain
      }
    },
  );
}

test('VerifyingStream passes content with its digest and size, and fails any corrupted, short or long copy with DigestMismatchError', async () => {
  const content = fc.array(fc.uint8Array({ minLength: 1, maxLength: 64 }), { minLength: 1, maxLength: 6 });
  await fc.assert(
    fc.asyncProperty(content, fc.nat(), fc.constantFrom('flip', 'short', 'long', 'size'), async (chunks, at, damage) => {
      const whole = Buffer.concat(chunks);
      const digestOf = sha256Of(whole);
      await verify(chunks, digestOf, whole.length);
      await verify(chunks, digestOf, undefined);
      let bad: Uint8Array[];
      let size: number | undefined = whole.length;
      const i = at % whole.length;
      if (damage === 'flip') {
        const copy = Buffer.from(whole);
        copy[i] = copy[i]! ^ 0x01;
        bad = [copy];
      } else if (damage === 'short') {
        bad = [whole.subarray(0, i)];
      } else if (damage === 'long') {
        bad = [whole, Buffer.from([at & 0xff])];
      } else {
        bad = chunks;
        size = whole.length + 1 + (at % 3);
      }
      await expectOnlyAsync(async () => {
        await verify(bad, digestOf, size);
        assert.fail(`damaged content (${damage}) passed verification`);
      }, [DigestMismatchError]);
    }),
    { ...FUZZ_OPTIONS, numRuns: Math.min(FUZZ_OPTIONS.numRuns, 200) },
  );
});
