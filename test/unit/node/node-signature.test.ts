// The node's own signature check (every sync with [paths] trusted_key): a seal or signature it cannot read is
// the bundle's read error, named by file, as every reader of a bundle names it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { generateSigningKey } from '../../../src/bundle/signing.js';
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
    assert.ok(err.message.startsWith(`bundle ${path.join(dir, 'ocp.tar')}: reading ${what} ${file} at byte 0 failed: EISDIR`), err.message);
    return true;
  };
  await assert.rejects(checkNodeBundleSignature(seal, `${key}.pub`), unreadable(signature, 'the signature'));
  await rm(seal);
  await mkdir(seal);
  await assert.rejects(checkNodeBundleSignature(seal, `${key}.pub`), unreadable(seal, 'the seal'));
});
