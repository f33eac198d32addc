// `pin-preload status` reads the node's state; it must never invent an empty one.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const run = promisify(execFile);

test('status with a state path that does not exist fails naming it, and creates nothing', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-status-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const state = path.join(dir, 'typo', 'state.db');
  const result = await run(process.execPath, [CLI, 'status', '--state', state]).then(
    () => ({ code: 0, stderr: '' }),
    (err: { code: number; stderr: string }) => ({ code: err.code, stderr: err.stderr }),
  );
  assert.equal(result.code, 1);
  assert.match(result.stderr, new RegExp(`no state database at ${state.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  assert.doesNotMatch(result.stderr, /internal error/);
  assert.equal(existsSync(path.dirname(state)), false, 'no directory or database was created');
});
