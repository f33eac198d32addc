// --json on every command that offers it: the documented result shapes (docs/json-output.md), and any failure
// as exactly one JSON error object on stdout with the code and exit status it has without --json.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { assertNoInternalError, runCli, type CliResult } from '../support/cli.js';
import { buildTinyBundle, testImage } from '../support/mirror-fixture.js';

async function tempDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-cli-json-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** The one JSON document on stdout (JSON.parse refuses a second one or trailing text). */
function onlyJson(result: CliResult, what: string): Record<string, unknown> {
  assert.ok(result.stdout.endsWith('\n'), `${what}: stdout ends with a newline: ${JSON.stringify(result.stdout)}`);
  return JSON.parse(result.stdout) as Record<string, unknown>;
}

test('under --json every failure is one JSON error object on stdout, with the exit status it has without --json', async (t) => {
  const dir = await tempDir(t);
  const missing = path.join(dir, 'missing');
  const cases: Array<{ args: string[]; code: string; exit: number; subject?: { kind: string; name: string } }> = [
    { args: ['status', '--state', path.join(missing, 'state.db')], code: 'STATE_MISSING', exit: 1, subject: { kind: 'path', name: path.join(missing, 'state.db') } },
    { args: ['import', '--config', path.join(missing, 'config.toml'), path.join(dir, 'x.tar')], code: 'CONFIG_UNREADABLE', exit: 2, subject: { kind: 'path', name: path.join(missing, 'config.toml') } },
    { args: ['preload', '--config', path.join(missing, 'config.toml')], code: 'CONFIG_UNREADABLE', exit: 2 },
    { args: ['bundle', 'inspect', path.join(missing, 'b.tar')], code: 'BUNDLE_NOT_FOUND', exit: 1, subject: { kind: 'path', name: path.join(missing, 'b.tar') } },
    { args: ['bundle', 'verify', path.join(missing, 'b.tar')], code: 'BUNDLE_NOT_FOUND', exit: 1 },
    { args: ['bundle', 'plan', '--registries-conf', path.join(missing, 'r.conf'), '--release', 'quay.io/a/b:1'], code: 'REGISTRIES_CONF_INVALID', exit: 2 },
    { args: ['inventory', '--config', path.join(missing, 'config.toml'), '--output', path.join(dir, 'inventory.json')], code: 'CONFIG_UNREADABLE', exit: 2 },
    { args: ['inventory', '--bundles', missing, '--runtime-endpoint', `unix://${path.join(missing, 'cri.sock')}`, '--output', path.join(dir, 'inventory.json')], code: 'CRI_UNREACHABLE', exit: 1 },
    { args: ['status', '--no-such-option'], code: 'USAGE', exit: 2 },
  ];
  for (const c of cases) {
    const what = c.args.join(' ');
    const plain = await runCli(c.args);
    const json = await runCli([...c.args, '--json']);
    assertNoInternalError(plain, what);
    assertNoInternalError(json, `${what} --json`);
    assert.equal(plain.code, c.exit, `${what}: ${plain.stderr}`);
    assert.equal(json.code, c.exit, `${what} --json exits as without it`);
    assert.equal(plain.stdout, '', `${what}: nothing on stdout without --json`);
    const doc = onlyJson(json, what);
    assert.deepEqual(Object.keys(doc), ['error'], what);
    const error = doc.error as { code: string; message: string; hint?: string; subject?: unknown };
    assert.equal(error.code, c.code, `${what}: ${json.stdout}`);
    assert.ok(typeof error.message === 'string' && error.message.length > 0 && !error.message.startsWith('error:'), what);
    assert.ok(typeof error.hint === 'string' && error.hint.length > 0, `${what}: every error has a hint (its own or its code's)`);
    if (c.subject) assert.deepEqual(error.subject, c.subject, `${what}: the object the error concerns`);
    if (c.code !== 'USAGE') assert.ok(plain.stderr.includes(error.message), `${what}: the JSON message is the one printed without --json`);
  }
});

test('import --json prints the bundle, its seal, bytes copied and alreadyImported, schemaVersion 1', async (t) => {
  const dir = await tempDir(t);
  const seal = await buildTinyBundle(path.join(dir, 'media', 'tiny.tar'), [testImage({ domain: 'registry.example.com', path: 'team/app' }, 'app', [randomBytes(2000)], { tag: 'v1' })]);
  // An empty config file, so that no /etc/pin-preload/config.toml on the machine running the test is read.
  await writeFile(path.join(dir, 'empty.toml'), '');
  const args = ['import', '--config', path.join(dir, 'empty.toml'), '--bundles', path.join(dir, 'bundles'), '--state', path.join(dir, 'state.db'), seal, '--json'];
  const first = await runCli(args);
  assert.equal(first.code, 0, first.stderr);
  const doc = onlyJson(first, 'import --json');
  assert.deepEqual(Object.keys(doc), ['schemaVersion', 'bundle', 'seal', 'alreadyImported', 'bytesCopied']);
  assert.equal(doc.schemaVersion, 1);
  assert.equal(doc.bundle, path.join(dir, 'bundles', 'tiny.tar'));
  assert.equal(doc.seal, path.join(dir, 'bundles', 'tiny.tar.seal.json'));
  assert.equal(doc.alreadyImported, false);
  assert.ok(typeof doc.bytesCopied === 'number' && doc.bytesCopied > 0);
  const again = onlyJson(await runCli(args), 'import --json again');
  assert.deepEqual([again.alreadyImported, again.bytesCopied], [true, 0]);
});
