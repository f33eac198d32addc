// `pin-preload … | head -1`: a reader that stops reading ends the CLI quietly with the status of a process
// killed by SIGPIPE, in a real child process writing into a real pipe that its reader closes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { STDOUT_CLOSED_EXIT } from '../../src/cli/run-command.js';

const RUN_COMMAND = pathToFileURL(path.join(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/run-command.js')).href;

/** A child that prints `bytes` of JSON (far more than a pipe buffer) with printJson; its reader closes after the first chunk. */
async function printIntoClosedPipe(body: string): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', `import { endQuietlyWhenStdoutCloses, printJson } from ${JSON.stringify(RUN_COMMAND)};\n${body}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  child.stdout.once('data', () => child.stdout.destroy());
  const killer = setTimeout(() => child.kill('SIGKILL'), 20_000); // bounded whatever happens
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  clearTimeout(killer);
  return { code, stderr };
}

const BIG_OUTPUT = "printJson({ items: Array.from({ length: 50000 }, (_, i) => ({ i, name: 'x'.repeat(40) })) });";

test('a reader that goes away ends the command quietly with status 141, no stack trace', async () => {
  const { code, stderr } = await printIntoClosedPipe(`endQuietlyWhenStdoutCloses();\n${BIG_OUTPUT}`);
  assert.equal(code, STDOUT_CLOSED_EXIT);
  assert.equal(stderr, '');
});

test('without the handler the same write is an unhandled EPIPE (what the handler is for)', async () => {
  const { code, stderr } = await printIntoClosedPipe(BIG_OUTPUT);
  assert.notEqual(code, STDOUT_CLOSED_EXIT);
  assert.match(stderr, /EPIPE/);
});
