// The node's own signature check (every sync with [paths] trusted_key): a missing or bad signature refuses the
// bundle by name; a seal or signature it cannot read is the bundle's read error, named by file, as every reader
// of a bundle names it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { generateSigningKey, signSeal } from '../../../src/bundle/signing.js';
import { checkNodeBundleSignature } from '../../../src/node/verify.js';
import { isUserError } from '../../../src/util/errors.js';

test('a signature or a seal the node cannot read (a directory in its place: EISDIR) is BUNDLE_READ_FAILED naming that file', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-node-signature-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const key = path.join(dir, 'key');
  await generateSigningKey(key);
  const seal = path.join(dir, 'ocp.tar.seal.json');
  const signature = path.join(dir, 'ocp.tar.sig');
  await writeFile(seal, '{}');
  await mkdir(signature);
  const unreadable = (file: string, what: string) => (err: unknown): boolean => {
    assert.ok(isUserError(err), `a user error, not ${String(err)}`);
    assert.equal(err.code, 'BUNDLE_READ_FAILED');
    assert.deepEqual(err.subject, { kind: 'path', name: file });
    assert.ok(err.message.startsWith(`bundle ${path.join(dir, 'ocp.tar')}: reading ${what} ${file} failed: EISDIR`), err.message);
    return true;
  };
  await assert.rejects(checkNodeBundleSignature(seal, `${key}.pub`), unreadable(signature, 'the signature'));
  await rm(seal);
  await mkdir(seal);
  await assert.rejects(checkNodeBundleSignature(seal, `${key}.pub`), unreadable(seal, 'the seal'));
});

test('with trusted_key set, a bundle without a .sig, signed by another key, or whose seal changed after signing is BUNDLE_SIGNATURE_INVALID naming the bundle; one signed by the trusted key passes', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-node-signature-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const [trusted, other] = [path.join(dir, 'trusted'), path.join(dir, 'other')];
  await generateSigningKey(trusted);
  await generateSigningKey(other);
  const bundle = path.join(dir, 'ocp.tar');
  const seal = `${bundle}.seal.json`;
  const signature = `${bundle}.sig`;
  const sealBytes = Buffer.from('{"volumes":[]}\n');
  await writeFile(seal, sealBytes);
  const invalid = (says: string) => (err: unknown): boolean => {
    assert.ok(isUserError(err), `a user error, not ${String(err)}`);
    assert.equal(err.code, 'BUNDLE_SIGNATURE_INVALID');
    assert.ok(err.message.startsWith(`bundle ${bundle}${says}`), err.message);
    return true;
  };

  await assert.rejects(checkNodeBundleSignature(seal, `${trusted}.pub`), invalid(` is not signed (no ${signature})`));
  await writeFile(signature, await signSeal(sealBytes, other));
  await assert.rejects(checkNodeBundleSignature(seal, `${trusted}.pub`), invalid(': bad signature: signed by key sha256:'));
  await writeFile(signature, await signSeal(sealBytes, trusted));
  await checkNodeBundleSignature(seal, `${trusted}.pub`);
  await writeFile(seal, '{"volumes":[{}]}\n');
  await assert.rejects(checkNodeBundleSignature(seal, `${trusted}.pub`), invalid(": bad signature: the signature does not match the seal's bytes"));
});
