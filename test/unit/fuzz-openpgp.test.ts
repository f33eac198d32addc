// Fuzzing the release signature reader with fixed seeds: a real gpg signature mutated and cut, and random
// bytes, end in OpenPgpFormatError (the packet reader) or UserError (the payload check), never anything else.

import { test, before, after } from 'node:test';
import fc from 'fast-check';
import { OpenPgpFormatError, signedLiteralData } from '../../src/release/openpgp.js';
import { checkSignaturePayload, releaseSignature } from '../../src/release/release-signature.js';
import { UserError } from '../../src/util/errors.js';
import type { Digest } from '../../src/oci/digest.js';
import { atomicPayload, createTestSigner, type TestSigner } from '../support/gpg.js';
import { expectOnly, FUZZ_OPTIONS } from '../support/fuzz.js';

const DIGEST = `sha256:${'a'.repeat(64)}` as Digest;
let signer: TestSigner;
let valid: Buffer;

before(async () => {
  signer = await createTestSigner();
  valid = await signer.sign(atomicPayload(DIGEST));
});
after(async () => {
  await signer?.close();
});

/** A valid signature with one byte replaced, then cut at some length. */
const mutated = () =>
  fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 1, max: valid.length })).map(([at, byte, cut]) => {
    const copy = Buffer.from(valid);
    copy[at] = byte;
    return copy.subarray(0, cut);
  });
const random = () => fc.uint8Array({ maxLength: 512 }).map((a) => Buffer.from(a));

test('fuzz: mutated and random messages end in OpenPgpFormatError, never another exception', () => {
  fc.assert(fc.property(fc.oneof(mutated(), random()), (bytes) => void expectOnly(() => signedLiteralData(bytes), [OpenPgpFormatError], bytes.toString('hex'))), FUZZ_OPTIONS);
});

test('fuzz: the payload check ends in a UserError (invalid or mismatched), never another exception', () => {
  fc.assert(fc.property(fc.oneof(mutated(), random()), (bytes) => void expectOnly(() => checkSignaturePayload(releaseSignature(1, bytes), DIGEST, 'signature-1'), [UserError], bytes.toString('hex'))), FUZZ_OPTIONS);
});

test('fuzz: arbitrary JSON payloads in a well-formed message end in a UserError or pass only when they name the digest', () => {
  // Built by hand (no gpg per run): a literal data packet of the JSON, then a signature packet.
  const message = (json: string) => {
    const literal = Buffer.concat([Buffer.from([0x62, 0]), Buffer.alloc(4), Buffer.from(json)]);
    const header = Buffer.from([0xc0 | 11, 255, 0, 0, 0, 0]);
    header.writeUInt32BE(literal.length, 2);
    return Buffer.concat([header, literal, Buffer.from([0xc2, 2, 4, 0])]);
  };
  fc.assert(
    fc.property(fc.json(), (json) => {
      const claims = expectOnly(() => checkSignaturePayload(releaseSignature(1, message(json)), DIGEST, 'signature-1'), [UserError], json);
      if (claims && claims.manifestDigest !== DIGEST) throw new Error(`accepted a payload naming ${claims.manifestDigest}`);
    }),
    FUZZ_OPTIONS,
  );
});
