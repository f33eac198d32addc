// The README's main job: `pin-preload demo` runs the whole flow on the built-in sample and cleans up.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const run = promisify(execFile);

test('the demo runs every step (plan, create, verify, import, serve + pull, status) and exits 0', async (t) => {
  const work = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-demo-test-'));
  t.after(() => rm(work, { recursive: true, force: true }));
  const { stdout } = await run(process.execPath, [CLI, 'demo', '--work-dir', work, '--no-private-runtime'], { timeout: 120_000 });
  for (const step of ['bundle plan', 'bundle create', 'bundle verify', 'import', 'serve', 'status']) {
    assert.match(stdout, new RegExp(`\\$ pin-preload ${step}`), `the demo shows "pin-preload ${step}"`);
  }
  assert.match(stdout, /signature valid/);
  assert.match(stdout, /pulled 15 images .* every digest verified/);
  assert.match(stdout, /Desired generation:\s+1/, 'the imported bundle is the desired generation');
  assert.match(stdout, /demo finished in/);
  assert.ok((await readdir(path.join(work, 'media'))).some((f) => f.endsWith('.seal.json')), 'the sealed bundle is kept with --work-dir');
});
