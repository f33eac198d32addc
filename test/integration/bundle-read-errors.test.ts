// A bundle whose media cannot be read (EIO injected with strace) read by `bundle push` (to a layout and to a
// real docker-registry, with and without --verify-first) and `bundle inspect`: BUNDLE_READ_FAILED naming the
// volume, the byte and what lies there, with the volume as subject — never an internal error.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { BundleSeal } from '../../src/bundle/format.js';
import { assertNoInternalError } from '../support/cli.js';
import { startDockerRegistry } from '../support/docker-registry.js';
import { cliUnderEio, skippedWithoutStrace } from '../support/eio.js';
import { buildTinyBundle, testImage } from '../support/mirror-fixture.js';

const REPO = { domain: 'quay.io', path: 'openshift-release-dev/ocp-v4.0-art-dev' };

/** A bundle of three small images split into 64 KiB volumes (random layers do not compress), and its volumes. */
async function splitBundle(t: { after(fn: () => Promise<void>): void }): Promise<{ dir: string; seal: string; volumes: string[] }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-read-errors-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const images = [0, 1, 2].map((i) => testImage(REPO, `img${i}`, [randomBytes(40_000 + i), randomBytes(30_000)]));
  const seal = await buildTinyBundle(path.join(dir, 'media', 'ocp.tar'), images, { splitSize: 64 * 1024 });
  const { volumes } = JSON.parse(await readFile(seal, 'utf8')) as BundleSeal;
  assert.ok(volumes.length >= 3, 'several volumes');
  return { dir, seal, volumes: volumes.map((v) => path.join(dir, 'media', v.name)) };
}

/** The run failed with BUNDLE_READ_FAILED (exit 1) naming `volume` as subject; returns the message. */
function readFailure(result: ReturnType<typeof cliUnderEio>, volume: string, what: string): string {
  assertNoInternalError(result, what);
  assert.equal(result.code, 1, `${what}: ${result.stderr}`);
  const { error } = JSON.parse(result.stdout) as { error: { code: string; message: string; subject?: { kind: string; name: string } } };
  assert.equal(error.code, 'BUNDLE_READ_FAILED', `${what}: ${error.message}`);
  assert.deepEqual(error.subject, { kind: 'path', name: volume }, `${what}: the subject is the volume that cannot be read`);
  return error.message;
}

const escaped = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

test('bundle push to a layout and to a registry, with or without --verify-first, names a volume it cannot read (the end-of-archive blocks, or a blob) as BUNDLE_READ_FAILED before any request', async (t) => {
  if (skippedWithoutStrace(t)) return;
  const { dir, seal, volumes } = await splitBundle(t);
  const registry = await startDockerRegistry();
  t.after(() => registry.stop());
  // Every read of the last volume fails: it holds the end-of-archive blocks, read by the structure check
  // before anything is sent (with --verify-first, a blob's worker may come to it first).
  const last = volumes[volumes.length - 1]!;
  const layout = path.join(dir, 'layout');
  const cases = [
    { what: 'push to a layout', to: `oci:${layout}`, extra: [] },
    { what: 'push to a layout, --verify-first', to: `oci:${layout}`, extra: ['--verify-first'] },
    { what: 'push to a registry', to: registry.host, extra: [] },
    { what: 'push to a registry, --verify-first', to: registry.host, extra: ['--verify-first'] },
  ];
  for (const c of cases) {
    const message = readFailure(cliUnderEio(last, ['bundle', 'push', seal, '--to', c.to, '--json', ...c.extra]), last, c.what);
    assert.match(message, new RegExp(`^bundle ${escaped(path.join(dir, 'media', 'ocp.tar'))}: reading volume ${escaped(last)} at byte \\d+ \\((end-of-archive blocks|padding after [^)]+|tar header of [^)]+|blob sha256:[0-9a-f]{64})\\) failed: EIO`), c.what);
  }
  await assert.rejects(stat(layout), 'nothing was written to the layout');
  const catalog = (await (await fetch(`${registry.url}/v2/_catalog`)).json()) as { repositories: string[] };
  assert.deepEqual(catalog.repositories, [], 'nothing was pushed to the registry');
});

test('bundle push and bundle inspect name a failed read of the first tar header (pin-preload.json\'s) as BUNDLE_READ_FAILED', async (t) => {
  if (skippedWithoutStrace(t)) return;
  const { seal, volumes } = await splitBundle(t);
  const first = volumes[0]!;
  const named = `reading volume ${first} at byte 0 (the first tar header) failed: EIO`;
  for (const args of [['bundle', 'push', seal, '--to', `oci:${path.join(path.dirname(seal), 'layout')}`, '--json'], ['bundle', 'inspect', seal, '--json']]) {
    const message = readFailure(cliUnderEio(first, args, true), first, args.slice(0, 2).join(' '));
    assert.ok(message.includes(named), message);
  }
});
