// The error table: each code declared once with an exit status, a hint and a guide section; a UserError
// takes its defaults from it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { REGISTRY_ERRORS } from '../../src/mirror/errors.js';
import { CRI_CALL_FAILED, errorKind, GRPC_STATUS_NAMES, GUIDE_SECTIONS, USER_ERRORS, type UserErrorCode } from '../../src/util/error-codes.js';
import { UserError } from '../../src/util/errors.js';

const CODE_SHAPE = /^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$/;
const codes = Object.keys(USER_ERRORS) as UserErrorCode[];

test('every code has an exit status of 1, 2 or 130, a hint and one of the guide sections', () => {
  assert.ok(codes.length >= 70, `only ${codes.length} codes in the table`);
  const anchors = new Set<string>(Object.values(GUIDE_SECTIONS));
  for (const code of codes) {
    const kind = USER_ERRORS[code];
    assert.match(code, CODE_SHAPE);
    assert.ok([1, 2, 130].includes(kind.exit), `${code}: exit ${kind.exit}`);
    assert.ok(kind.hint.trim().length > 10, `${code}: no real hint`);
    assert.ok(anchors.has(kind.anchor), `${code}: ${kind.anchor} is not a guide section`);
  }
});

test('codes are unique across the table, the gRPC status names and the mirror’s spec codes a user sees in a CRI error', () => {
  const grpcNames = new Set<string>(GRPC_STATUS_NAMES);
  assert.deepEqual(codes.filter((c) => grpcNames.has(c)), [], 'a table code that reads like a gRPC status');
  // MANIFEST_UNKNOWN, BLOB_UNKNOWN and DIGEST_INVALID mean the same thing as the spec codes of that name; others must not clash.
  const shared = codes.filter((c) => Object.hasOwn(REGISTRY_ERRORS, c)).sort();
  assert.deepEqual(shared, ['BLOB_UNKNOWN', 'DIGEST_INVALID', 'MANIFEST_UNKNOWN']);
});

test('a UserError takes its code’s hint unless the throw site gives its own, and carries its subject', () => {
  const plain = new UserError('BUNDLE_NOT_FOUND', 'no bundle at /x');
  assert.equal(plain.hint, USER_ERRORS.BUNDLE_NOT_FOUND.hint);
  assert.equal(plain.subject, undefined);
  const specific = new UserError('BUNDLE_NOT_FOUND', 'no bundle at /x', { hint: 'look elsewhere', subject: { kind: 'path', name: '/x' } });
  assert.equal(specific.hint, 'look elsewhere');
  assert.deepEqual(specific.subject, { kind: 'path', name: '/x' });
  assert.equal(errorKind('UNAVAILABLE'), CRI_CALL_FAILED);
  assert.equal(errorKind('GRPC_99'), CRI_CALL_FAILED);
});
