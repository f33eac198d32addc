// The work dir lock: a live writer's lock refuses a second one; a dead writer's lock is taken over by exactly
// one of the processes racing for it, never by several at once.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LOCK_FILE } from '../../src/bundle/work-lock.js';
import { withTempDir } from '../support/temp-dir.js';

const WORK_LOCK_MODULE = fileURLToPath(new URL('../../src/bundle/work-lock.js', import.meta.url));
const CONTENDERS = 6;
const ROUNDS = 8;

/** A pid that no process has now: one of a child that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await new Promise((resolve) => child.on('exit', resolve));
  return child.pid!;
}

/**
 * A process that tries to take the lock and prints "held" or the error code, then (holding it or not) waits
 * for its stdin to close, so that every contender has decided while a winner is still alive.
 */
function contender(workDir: string): { decided: Promise<string>; finish: () => Promise<void> } {
  const script = `
    import { lockWorkDir } from ${JSON.stringify(WORK_LOCK_MODULE)};
    let line;
    try { await lockWorkDir(${JSON.stringify(workDir)}, 'race'); line = 'held'; } catch (err) { line = err.code ?? String(err); }
    process.stdout.write(line + '\\n');
    process.stdin.resume();
    process.stdin.on('end', () => process.exit(0));
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  let output = '';
  const decided = new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8');
      if (output.includes('\n')) resolve(output.trim());
    });
    child.on('exit', (code) => reject(new Error(`contender exited (${code}) before deciding: ${output}`)));
  });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  return {
    decided,
    finish: async () => {
      child.stdin.end();
      await exited;
    },
  };
}

test('processes racing for a dead writer\'s lock: exactly one takes it over, the others are refused (BUNDLE_BUSY)', { timeout: 120_000 }, async () => {
  await withTempDir('pin-preload-work-lock-', async (dir) => {
    for (let round = 0; round < ROUNDS; round++) {
      const workDir = path.join(dir, `round-${round}`);
      await mkdir(workDir, { recursive: true });
      await writeFile(path.join(workDir, LOCK_FILE), `${await deadPid()}\n`);
      const contenders = Array.from({ length: CONTENDERS }, () => contender(workDir));
      try {
        const outcomes = await Promise.all(contenders.map((c) => c.decided));
        assert.equal(outcomes.filter((o) => o === 'held').length, 1, `round ${round}: ${outcomes.join(', ')}`);
        assert.equal(outcomes.filter((o) => o === 'BUNDLE_BUSY').length, CONTENDERS - 1, `round ${round}: ${outcomes.join(', ')}`);
      } finally {
        await Promise.all(contenders.map((c) => c.finish()));
      }
      assert.deepEqual(await readdir(workDir), [LOCK_FILE], `round ${round}: no takeover or temp file is left`);
    }
  });
});
