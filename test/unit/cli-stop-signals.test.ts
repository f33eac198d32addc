// The CLI's one SIGINT/SIGTERM helper, in a real child process receiving real signals: the first signal
// aborts the work (after the command's own line), a second of the same kind ends the process at once, and
// a command that finished leaves no listener behind.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { stopOnSignals } from '../../src/cli/stop-signals.js';

const HELPER = pathToFileURL(path.join(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/stop-signals.js')).href;

interface Child {
  readonly lines: string[];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  send(signal: NodeJS.Signals): void;
  /** Resolves once a line equal to `line` has been printed; fails after 10 s. */
  printed(line: string): Promise<void>;
}

/** Runs `body` as an ES module in a child node that has `stopOnSignals` imported. */
function runChild(body: string): Child {
  const child = spawn(process.execPath, ['--input-type=module', '-e', `import { stopOnSignals } from ${JSON.stringify(HELPER)};\n${body}`], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: string[] = [];
  const waiters: Array<() => void> = [];
  let rest = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    const parts = (rest + chunk).split('\n');
    rest = parts.pop()!;
    lines.push(...parts);
    for (const wake of waiters.splice(0)) wake();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const killer = setTimeout(() => child.kill('SIGKILL'), 20_000); // bounded whatever happens
  void exited.then(() => clearTimeout(killer));
  return {
    lines,
    exited,
    send: (signal) => child.kill(signal),
    printed: async (line) => {
      const deadline = Date.now() + 10_000;
      while (!lines.includes(line)) {
        if (Date.now() > deadline) throw new Error(`the child never printed ${line}; it printed ${JSON.stringify(lines)}`);
        await Promise.race([new Promise<void>((wake) => waiters.push(wake)), exited, new Promise((r) => setTimeout(r, 200))]);
      }
    },
  };
}

test('SIGTERM aborts the signal after the command’s own line, resolves stopped, and the process ends normally', async () => {
  const child = runChild(`
    const stop = stopOnSignals((name) => console.log('line: ' + name));
    stop.signal.addEventListener('abort', () => console.log('aborted'));
    console.log('ready');
    const keepAlive = setInterval(() => {}, 1000);
    console.log('stopped by ' + (await stop.stopped));
    clearInterval(keepAlive);
  `);
  await child.printed('ready');
  child.send('SIGTERM');
  assert.deepEqual(await child.exited, { code: 0, signal: null });
  assert.deepEqual(child.lines, ['ready', 'line: SIGTERM', 'aborted', 'stopped by SIGTERM']);
});

test('a second SIGINT while the work is still stopping ends the process by that signal', async () => {
  const child = runChild(`
    const stop = stopOnSignals();
    stop.signal.addEventListener('abort', () => console.log('aborted'));
    setInterval(() => {}, 1000); // a stop that hangs
    console.log('ready');
  `);
  await child.printed('ready');
  child.send('SIGINT');
  await child.printed('aborted');
  child.send('SIGINT');
  assert.deepEqual(await child.exited, { code: null, signal: 'SIGINT' });
});

test('dispose removes the listeners of a command that finished on its own', () => {
  const before = [process.listenerCount('SIGINT'), process.listenerCount('SIGTERM')];
  const stop = stopOnSignals();
  assert.deepEqual([process.listenerCount('SIGINT'), process.listenerCount('SIGTERM')], [before[0]! + 1, before[1]! + 1]);
  stop.dispose();
  assert.deepEqual([process.listenerCount('SIGINT'), process.listenerCount('SIGTERM')], before);
  assert.equal(stop.signal.aborted, false);
});
