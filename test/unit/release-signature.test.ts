// Release signatures: the OpenPGP packet reader on real gpg output and hand-built framings, the payload check
// against the release digest, gpgv against armored and binary keyrings (fuzzing: fuzz-openpgp.test.ts).

import { exitStatusOf } from '../../src/cli/exit-status.js';
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { deflateRawSync, deflateSync } from 'node:zlib';
import { OpenPgpFormatError, parsePackets, signedLiteralData } from '../../src/release/openpgp.js';
import { checkSignaturePayload, releaseSignature } from '../../src/release/release-signature.js';
import { ReleaseKeyring } from '../../src/release/release-keyring.js';
import { UserError } from '../../src/util/errors.js';
import { sha256Of, type Digest } from '../../src/oci/digest.js';
import type { BundleManifest, BundleRelease } from '../../src/bundle/format.js';
import { releaseSignatureProblems } from '../../src/bundle/release-signatures.js';
import { signatureConfigMap } from '../../src/cluster/signature-config-map.js';
import { atomicPayload, createTestSigner, type TestSigner } from '../support/gpg.js';

const DIGEST = `sha256:${'a'.repeat(64)}` as Digest;
const OTHER = `sha256:${'b'.repeat(64)}` as Digest;

/** A new-format packet with a one- or five-octet length. */
function packet(tag: number, body: Buffer): Buffer {
  const length = body.length < 192 ? Buffer.from([body.length]) : Buffer.concat([Buffer.from([255]), Buffer.alloc(4)]);
  if (body.length >= 192) length.writeUInt32BE(body.length, 1);
  return Buffer.concat([Buffer.from([0xc0 | tag]), length, body]);
}

/** An old-format packet with a two-octet length. */
function oldPacket(tag: number, body: Buffer): Buffer {
  const header = Buffer.from([0x80 | (tag << 2) | 1, 0, 0]);
  header.writeUInt16BE(body.length, 1);
  return Buffer.concat([header, body]);
}

function literal(data: Buffer): Buffer {
  return Buffer.concat([Buffer.from([0x62, 0]), Buffer.alloc(4), data]);
}

const SIGNATURE_PACKET = packet(2, Buffer.from([4, 0, 22, 8, 0, 0, 0, 0]));

describe('OpenPGP packet reader', () => {
  test('reads the literal data of an old-format, uncompressed signed message', () => {
    const message = Buffer.concat([oldPacket(4, Buffer.alloc(13)), oldPacket(11, literal(Buffer.from('{"x":1}'))), oldPacket(2, Buffer.alloc(8))]);
    assert.equal(signedLiteralData(message).toString(), '{"x":1}');
  });

  test('reads every length form: old 1/2/4-octet and indeterminate, new 1/2/5-octet', () => {
    const data = literal(Buffer.alloc(300, 0x42));
    const oldFour = Buffer.concat([Buffer.from([0x80 | (11 << 2) | 2]), Buffer.alloc(4), data]);
    oldFour.writeUInt32BE(data.length, 1);
    const newTwo = Buffer.concat([Buffer.from([0xc0 | 11, ((data.length - 192) >> 8) + 192, (data.length - 192) & 0xff]), data]);
    const oldOne = Buffer.from([0x80 | (2 << 2), 8, ...Buffer.alloc(8)]);
    // Indeterminate length (old format, type 3) runs to the end of the input, so it comes last.
    const oldIndeterminate = Buffer.concat([Buffer.from([0x80 | (2 << 2) | 3]), Buffer.alloc(8)]);
    for (const [name, message] of [['old 4-octet', Buffer.concat([oldFour, oldOne])], ['new 2-octet', Buffer.concat([newTwo, SIGNATURE_PACKET])], ['new 5-octet', Buffer.concat([packet(11, data), oldIndeterminate])]] as const) {
      assert.equal(signedLiteralData(message).length, 300, name);
    }
  });

  test('joins new-format partial body chunks', () => {
    const body = literal(Buffer.alloc(600, 0x41));
    // 512-byte partial chunk (0xe9 = 2^9), then the final 98 bytes with a one-octet length.
    const message = Buffer.concat([Buffer.from([0xc0 | 11, 0xe9]), body.subarray(0, 512), Buffer.from([body.length - 512]), body.subarray(512), SIGNATURE_PACKET]);
    assert.equal(signedLiteralData(message).length, 600);
  });

  test('opens ZIP, ZLIB and stored compressed packets', () => {
    const inner = Buffer.concat([packet(11, literal(Buffer.from('payload'))), SIGNATURE_PACKET]);
    for (const [algorithm, data] of [[0, inner], [1, deflateRawSync(inner)], [2, deflateSync(inner)]] as const) {
      assert.equal(signedLiteralData(packet(8, Buffer.concat([Buffer.from([algorithm]), data]))).toString(), 'payload', `algorithm ${algorithm}`);
    }
  });

  test('rejects garbage, truncation, a missing signature, two literals, bzip2 and a zip bomb with OpenPgpFormatError', () => {
    const lit = packet(11, literal(Buffer.from('p')));
    const cases: Array<[string, Buffer, RegExp]> = [
      ['plain text', Buffer.from('{"critical":{}}'), /not a packet header/],
      ['truncated body', packet(11, literal(Buffer.from('payload'))).subarray(0, 6), /truncated/],
      ['no signature', lit, /no signature packet/],
      ['no literal', SIGNATURE_PACKET, /no literal data/],
      ['two literals', Buffer.concat([lit, lit, SIGNATURE_PACKET]), /more than one literal/],
      ['bzip2', packet(8, Buffer.from([3, 1, 2, 3])), /algorithm 3 is not supported/],
      ['zip bomb', packet(8, Buffer.concat([Buffer.from([2]), deflateSync(Buffer.alloc(4 * 1024 * 1024))])), /inflates to more than the 1048576 bytes/],
      ['bad deflate', packet(8, Buffer.from([2, 1, 2, 3])), /does not inflate/],
      ['foreign packet', Buffer.concat([packet(6, Buffer.alloc(4)), lit, SIGNATURE_PACKET]), /packet type 6/],
    ];
    for (const [name, bytes, message] of cases) assert.throws(() => signedLiteralData(bytes), (err: unknown) => err instanceof OpenPgpFormatError && message.test(err.message), name);
  });

  test('one inflation budget for the whole message: nested packets each under it are refused together', () => {
    // 600 KiB inside 600 KiB: each inflation alone is under 1 MiB, both together are not.
    const inner = packet(8, Buffer.concat([Buffer.from([2]), deflateSync(packet(10, Buffer.alloc(600 * 1024)))]));
    const message = packet(8, Buffer.concat([Buffer.from([1]), deflateRawSync(Buffer.concat([packet(10, Buffer.alloc(600 * 1024)), inner]))]));
    assert.throws(() => signedLiteralData(message), (err: unknown) => err instanceof OpenPgpFormatError && /inflates to more than the 1048576 bytes a whole signed message/.test(err.message));
  });

  test('a message fanning out into many compressed packets fails fast instead of inflating each', () => {
    // 64 packets of 64 packets of ~1 MiB of zeros: a 100 KiB message that would inflate 4 GiB if each packet
    // were only bounded by itself (seconds of blocked event loop per level; minutes with a third level).
    const leaf = packet(8, Buffer.concat([Buffer.from([2]), deflateSync(packet(10, Buffer.alloc(1024 * 1024 - 16)))]));
    const branch = packet(8, Buffer.concat([Buffer.from([2]), deflateSync(Buffer.concat(Array.from({ length: 64 }, () => leaf)))]));
    const message = Buffer.concat(Array.from({ length: 64 }, () => branch));
    const started = performance.now();
    assert.throws(() => signedLiteralData(message), (err: unknown) => err instanceof OpenPgpFormatError && /more than one compressed data packet/.test(err.message));
    // One compressed packet may hold the fan-out too: its first leaf already spends the budget.
    assert.throws(() => signedLiteralData(packet(8, Buffer.concat([Buffer.from([0]), branch]))), (err: unknown) => err instanceof OpenPgpFormatError && /more than one compressed data packet/.test(err.message));
    assert.ok(performance.now() - started < 2000, `refused in ${Math.round(performance.now() - started)} ms`);
  });

  test('rejects compressed packets nested deeper than a signature ever is', () => {
    let message: Buffer = Buffer.concat([packet(11, literal(Buffer.from('p'))), SIGNATURE_PACKET]);
    for (let i = 0; i < 6; i++) message = packet(8, Buffer.concat([Buffer.from([0]), message]));
    assert.throws(() => signedLiteralData(message), /nested more than 4 deep/);
  });
});

describe('release signatures made by gpg', () => {
  let signer: TestSigner;
  let other: TestSigner;
  before(async () => {
    signer = await createTestSigner();
    other = await createTestSigner('Someone Else');
  });
  after(async () => {
    await signer?.close();
    await other?.close();
  });

  test('a gpg-signed payload naming the release digest passes, with its identity', async () => {
    const bytes = await signer.sign(atomicPayload(DIGEST));
    assert.ok(parsePackets(bytes).some((p) => p.tag === 8), 'gpg compresses a signed message by default');
    const claims = checkSignaturePayload(releaseSignature(1, bytes), DIGEST, 'signature-1 of release 4.16.0');
    assert.equal(claims.manifestDigest, DIGEST);
    assert.equal(claims.reference, 'quay.io/openshift-release-dev/ocp-release:4.16.0-x86_64');
  });

  test('a signature of another digest is an error naming both digests', async () => {
    const sig = releaseSignature(2, await signer.sign(atomicPayload(OTHER)));
    assert.throws(
      () => checkSignaturePayload(sig, DIGEST, 'signature-2 of release 4.16.0'),
      (err: unknown) => err instanceof UserError && err.code === 'RELEASE_SIGNATURE_MISMATCH' && err.message.includes(OTHER) && err.message.includes(DIGEST) && err.message.includes('signature-2') && err.subject?.name === sig.digest,
    );
  });

  test('a payload of another type, or not JSON, is RELEASE_SIGNATURE_INVALID', async () => {
    for (const payload of [atomicPayload(DIGEST, 'x', 'cosign container image signature'), 'not json']) {
      const sig = releaseSignature(1, await signer.sign(payload));
      assert.throws(() => checkSignaturePayload(sig, DIGEST, 'signature-1'), (err: unknown) => err instanceof UserError && err.code === 'RELEASE_SIGNATURE_INVALID' && err.subject?.name === sig.digest);
    }
  });

  test('gpgv accepts the signer\'s key as an armored or a binary keyring and refuses another key', async () => {
    const bytes = await signer.sign(atomicPayload(DIGEST));
    for (const file of [signer.armoredKeyring, signer.binaryKeyring]) {
      const keyring = await ReleaseKeyring.open(file);
      try {
        await keyring.verify(releaseSignature(1, bytes), 'signature-1');
      } finally {
        await keyring.close();
      }
    }
    // Another signer's key, and a file that is no keyring at all: both refuse the signature, naming it.
    const garbage = path.join(other.home, 'not-a-keyring');
    await writeFile(garbage, 'hello\n');
    for (const file of [other.armoredKeyring, garbage]) {
      const wrong = await ReleaseKeyring.open(file);
      try {
        await assert.rejects(wrong.verify(releaseSignature(1, bytes), 'signature-1 of release 4.16.0'), (err: unknown) => err instanceof UserError && err.code === 'RELEASE_SIGNATURE_UNTRUSTED' && err.message.includes('signature-1 of release 4.16.0') && err.subject?.name === sha256Of(bytes), file);
      } finally {
        await wrong.close();
      }
    }
    // Armor around something that is not a key: refused when the keyring is opened (before any download).
    const badArmor = path.join(other.home, 'bad.asc');
    await writeFile(badArmor, '-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n!!!!\n-----END PGP PUBLIC KEY BLOCK-----\n');
    await assert.rejects(ReleaseKeyring.open(badArmor).then((k) => k.close()), (err: unknown) => err instanceof UserError && exitStatusOf(err) === 2 && /bad\.asc is not an OpenPGP key export/.test(err.message));
  });
});

describe('signatures carried in a bundle manifest', () => {
  let signer: TestSigner;
  before(async () => {
    signer = await createTestSigner();
  });
  after(async () => {
    await signer?.close();
  });

  test('verify names a carried signature that does not match its digest or signs another release', async () => {
    const good = releaseSignature(1, await signer.sign(atomicPayload(DIGEST)));
    const foreign = releaseSignature(2, await signer.sign(atomicPayload(OTHER)));
    const entry = (s: typeof good) => ({ digest: s.digest, size: s.bytes.length, base64: s.bytes.toString('base64') });
    const release = { name: `quay.io/openshift-release-dev/ocp-release@${DIGEST}`, digest: DIGEST, version: '4.16.0', components: [], signatures: [entry(good), entry(foreign), { ...entry(good), digest: OTHER }] };
    const manifest = { releases: [release] } as unknown as BundleManifest;
    const problems = await releaseSignatureProblems(manifest);
    assert.equal(problems.length, 2);
    assert.match(problems[0]!.message, /signature-2 of release 4\.16\.0 .* signs sha256:b{64}, not the release sha256:a{64}/);
    assert.match(problems[1]!.message, /signature-3 of release 4\.16\.0 .* does not match its recorded size and digest/);
    // With a keyring of another key, the one signature whose payload is right is also named as untrusted.
    const stranger = await createTestSigner('Stranger');
    try {
      const withKeyring = await releaseSignatureProblems(manifest, stranger.armoredKeyring);
      assert.equal(withKeyring.length, 3);
      assert.match(withKeyring[2]!.message, /signature-1 of release 4\.16\.0 .* is not a good signature by a key of the release keyring/);
      assert.equal((await releaseSignatureProblems(manifest, signer.binaryKeyring)).length, 2, 'the signer\'s own keyring trusts them');
    } finally {
      await stranger.close();
    }

    // The CVO's ConfigMap for the same release: keys sha256-<hex>-N, the bytes as carried.
    const configMap = signatureConfigMap(release as BundleRelease)!;
    assert.equal(configMap.metadata.name, `sha256-${'a'.repeat(64)}`);
    assert.deepEqual(Object.keys(configMap.binaryData), [1, 2, 3].map((n) => `sha256-${'a'.repeat(64)}-${n}`));
    assert.ok(Buffer.from(configMap.binaryData[`sha256-${'a'.repeat(64)}-1`]!, 'base64').equals(good.bytes));
    assert.equal(signatureConfigMap({ ...release, signatures: [] } as BundleRelease), undefined, 'no ConfigMap for a release without signatures');
  });

  test('with a keyring, the keyring is opened whatever the bundle carries, and a release carrying no signature is a problem', async () => {
    const unsigned = { releases: [{ name: `quay.io/openshift-release-dev/ocp-release@${DIGEST}`, digest: DIGEST, version: '4.16.0', components: [], signatures: [] }] } as unknown as BundleManifest;
    const noRelease = { images: [] } as unknown as BundleManifest;
    assert.deepEqual(await releaseSignatureProblems(unsigned), [], 'without a keyring nothing is asked of the signatures');
    const absent = path.join(signer.home, 'absent.gpg');
    for (const manifest of [unsigned, noRelease]) {
      await assert.rejects(releaseSignatureProblems(manifest, absent), (err: unknown) => err instanceof UserError && exitStatusOf(err) === 2 && err.message.includes('absent.gpg cannot be read'));
    }
    const [missing] = await releaseSignatureProblems(unsigned, signer.binaryKeyring);
    assert.equal(missing?.subject, `quay.io/openshift-release-dev/ocp-release@${DIGEST}`);
    assert.match(missing?.message ?? '', /release 4\.16\.0 \(.*\) carries no release signature to verify with --release-keyring/);
    const [nothing] = await releaseSignatureProblems(noRelease, signer.binaryKeyring);
    assert.match(nothing?.message ?? '', /the bundle holds no release, so no release signature to verify/);
  });
});
