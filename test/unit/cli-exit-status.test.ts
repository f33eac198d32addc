// The CLI's one mapping from an error to the process exit status: by the code's row of the error table,
// 70 for anything that is not a UserError.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { exitStatusOf, INTERNAL_EXIT, USAGE_EXIT } from '../../src/cli/exit-status.js';
import { CriError } from '../../src/cri/image-service.js';
import type { UserErrorCode } from '../../src/util/error-codes.js';
import { UserError } from '../../src/util/errors.js';

test('the exit statuses users see stay as they were: 2 for usage and input, 130 interrupted, 1 for the work, 70 a bug', () => {
  const expected: Array<[UserErrorCode, number]> = [
    ['USAGE', 2],
    ['CONFIG_INVALID', 2],
    ['REFERENCE_INVALID', 2],
    ['IMAGE_SET_CONFIG_INVALID', 2],
    ['KEY_EXISTS', 2],
    ['INTERRUPTED', 130],
    ['GRAPH_UNREACHABLE', 1],
    ['GRAPH_INVALID', 1],
    ['REGISTRY_ERROR', 1],
    ['PREFETCH_FAILED', 1],
  ];
  for (const [code, exit] of expected) assert.equal(exitStatusOf(new UserError(code, 'm')), exit, code);
  assert.equal(exitStatusOf(new CriError({ grpcCode: 14, operation: 'pull', details: 'gone' })), 1);
  assert.equal(exitStatusOf(new Error('a bug')), INTERNAL_EXIT);
  assert.equal(exitStatusOf('thrown string'), INTERNAL_EXIT);
  assert.equal(USAGE_EXIT, 2);
});
