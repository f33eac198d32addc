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

test('the demo runs every step (plan, create, verify, import, serve + pull, status), then day 2 with a delta bundle, and exits 0', async (t) => {
  const work = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-demo-test-'));
  t.after(() => rm(work, { recursive: true, force: true }));
  const { stdout } = await run(process.execPath, [CLI, 'demo', '--work-dir', work, '--no-private-runtime'], { timeout: 120_000 });
  for (const step of ['bundle plan', 'bundle create', 'bundle verify', 'import', 'serve', 'status']) {
    assert.match(stdout, new RegExp(`\\$ pin-preload ${step}`), `the demo shows "pin-preload ${step}"`);
  }
  assert.match(stdout, /signature valid/);
  assert.match(stdout, /pulled 15 images .* every digest verified/);
  assert.match(stdout, /Desired generation:\s+1/, 'the imported bundle is the desired generation');
  assert.match(stdout, /no CRI runtime here \(the private containerd is off \(--no-private-runtime\)\)/, 'says why nothing is pinned');
  assert.match(stdout, /Images \(15: 0 pinned, 0 present, 15 pending/);
  // Day 2: the next z-stream as a delta against the first bundle, imported beside it and served across both.
  assert.match(stdout, /\$ pin-preload bundle create .*--since \S+sample-4\.16\.0-sample\.tar --output \S+sample-4\.16\.1-sample-delta\.tar/);
  assert.match(stdout, /New: +\d+ blobs, .* the base lacks/);
  assert.match(stdout, /delta bundle: \d+ blob\(s\) of its images are left to its base sample-4\.16\.0-sample\.tar/);
  assert.match(stdout, /pulled 15 images of 4\.16\.1-sample .* layers from both bundles: every digest verified/);
  assert.match(stdout, /Desired generation:\s+2/, 'the delta is the next desired generation');
  assert.match(stdout, /demo finished in/);
  const steps = [...stdout.matchAll(/^\[(\d+)\/(\d+)\] /gm)].map((m) => [Number(m[1]), Number(m[2])]);
  assert.deepEqual(steps, steps.map((_, i) => [i + 1, steps.length]), 'the steps are numbered 1 to N of N');
  assert.ok((await readdir(path.join(work, 'media'))).some((f) => f.endsWith('.seal.json')), 'the sealed bundle is kept with --work-dir');
});

/** The demo's pre-load into its private containerd, with the environment given; its stdout. */
async function demoWithPrivateContainerd(t: { after(fn: () => Promise<void>): void }, env: NodeJS.ProcessEnv): Promise<string> {
  const work = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-demo-test-'));
  t.after(() => rm(work, { recursive: true, force: true }));
  const { stdout } = await run(process.execPath, [CLI, 'demo', '--work-dir', work], { timeout: 120_000, env: { ...process.env, ...env } });
  return stdout;
}

const asRoot = process.getuid?.() === 0 ? {} : { skip: 'the demo starts a private containerd only as root' };

test('with the cached containerd 1.7 the demo pre-loads into it and every image ends pinned', asRoot, async (t) => {
  const stdout = await demoWithPrivateContainerd(t, {});
  assert.match(stdout, /containerd 1\.7 from \S+: it pins/, 'says which containerd and that it pins');
  assert.match(stdout, /generation 1: 15 image\(s\) present, 15 pulled, 15 pinned in /);
  assert.match(stdout, /GC protection:\s+pinned by containerd 1\.7\./);
  assert.match(stdout, /Images \(15: 15 pinned, 0 present, 0 pending, 0 failed\)/);
  // Day 2 with keep_releases = 1: the delta's release all pinned, the first release's own images unpinned,
  // its bundle kept because the delta needs it.
  assert.match(stdout, /retired 1 release\(s\) beyond the newest 1 \(by version\): 4\.16\.0-sample/);
  assert.match(stdout, /kept bundle \S+sample-4\.16\.0-sample\.tar: its releases are retired but a kept bundle depends on it/);
  assert.match(stdout, /Retired releases \(1: beyond keep_releases = 1;/);
});

test('without containerd 1.7 the demo uses the installed 1.6 and says why nothing is pinned', asRoot, async (t) => {
  const stdout = await demoWithPrivateContainerd(t, { PIN_PRELOAD_CONTAINERD_1_7: '/nonexistent/containerd' });
  assert.match(stdout, /\/nonexistent\/containerd is missing \(run scripts\/fetch-containerd-1\.7\.sh\), and containerd 1\.6 cannot pin/);
  assert.match(stdout, /15 pulled, 0 pinned, 15 not pinned in /);
  assert.match(stdout, /GC protection: not protected: containerd 1\.6\.\S+ never reports an image pinned/);
  assert.match(stdout, /Images \(15: 0 pinned, 15 present, 0 pending, 0 failed\)/);
});
