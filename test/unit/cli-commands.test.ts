// The command line loads a command's modules only when it runs that command: a run of one command does not
// load every other command's (their start-up is most of a short command's time), while help and a mistyped
// command still see them all.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { startCli } from '../support/cli.js';

/** Registers a resolve hook in the child that writes every file URL it loads to stderr ("loaded URL"). */
const TRACE_LOADS = `--import=data:text/javascript,${encodeURIComponent(
  `import { register } from 'node:module';
register('data:text/javascript,' + encodeURIComponent("import { writeSync } from 'node:fs'; export async function resolve(s, c, next) { const r = await next(s, c); if (r.url.startsWith('file:')) writeSync(2, 'loaded ' + r.url + '\\\\n'); return r; }"));`,
)}`;

/** Every command module: the files of cli/ that export a `register…` function (main's table loads each of them). */
const CLI_DIR = new URL('../../src/cli/', import.meta.url);
const COMMAND_MODULES = readdirSync(CLI_DIR)
  .filter((f) => f.endsWith('.js') && /^export function register[A-Z]/m.test(readFileSync(new URL(f, CLI_DIR), 'utf8')))
  .map((f) => f.slice(0, -'.js'.length));

/** The command modules among the files a child loaded. */
const commandModulesLoaded = (stderr: string): string[] =>
  stderr
    .split('\n')
    .filter((l) => l.startsWith('loaded '))
    .map((l) => l.slice('loaded '.length))
    .filter((u) => u.startsWith(CLI_DIR.href) && u.endsWith('.js'))
    .map((u) => u.slice(CLI_DIR.href.length, -'.js'.length))
    .filter((name) => COMMAND_MODULES.includes(name));

test('a command run loads its own command module and none of the others\'', async () => {
  const { code, stdout, stderr } = await startCli(['bundle', 'verify', '--help'], { env: { NODE_OPTIONS: TRACE_LOADS } }).done;
  assert.equal(code, 0, stderr);
  assert.match(stdout, /Usage: pin-preload bundle verify \[options\] <path>/);
  const loaded = stderr.split('\n').filter((l) => l.startsWith('loaded ')).map((l) => l.slice('loaded '.length));
  assert.ok(COMMAND_MODULES.length >= 14 && COMMAND_MODULES.includes('bundle-verify'), `command modules found: ${COMMAND_MODULES.join(', ')}`);
  assert.deepEqual(commandModulesLoaded(stderr), ['bundle-verify'], 'its own command module and no other');
  assert.ok(!loaded.some((u) => u.includes('/node_modules/undici/')), 'the registry client is not loaded');
});

test('--version loads no command module', async () => {
  const { code, stdout, stderr } = await startCli(['--version'], { env: { NODE_OPTIONS: TRACE_LOADS } }).done;
  assert.equal(code, 0, stderr);
  assert.match(stdout, /^\d+\.\d+\.\d+/);
  assert.deepEqual(commandModulesLoaded(stderr), []);
});

test('help lists every command, and a mistyped one is still told the nearest', async () => {
  const help = await startCli(['--help']).done;
  assert.equal(help.code, 0);
  for (const name of ['bundle', 'demo', 'import', 'inventory', 'keygen', 'preload', 'run', 'serve', 'status']) assert.match(help.stdout, new RegExp(`^  ${name} `, 'm'));
  const bundleHelp = await startCli(['bundle', '--help']).done;
  for (const name of ['create', 'inspect', 'manifests', 'plan', 'push', 'verify']) assert.match(bundleHelp.stdout, new RegExp(`^  ${name} `, 'm'));
  const typo = await startCli(['bundle', 'verfy', 'b.tar']).done;
  assert.equal(typo.code, 2);
  assert.match(typo.stderr, /unknown command 'verfy'\n\(Did you mean verify\?\)/);
});
