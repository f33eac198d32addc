// One `bundle create` (or layout push) per output at a time: a lock file with the writer's pid inside the work
// dir. A lock left by a process that no longer runs (kill -9, a crash) is taken over, so resume still just works.

import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { processExists } from '../util/child-process.js';
import { errnoCode, UserError } from '../util/errors.js';

export const LOCK_FILE = 'lock';

/** Tries at taking the lock: each either wins it, finds a live holder, or removes a stale lock and goes again. */
const LOCK_ATTEMPTS = 50;
const RETRY_DELAY_MS = 10;
/** A takeover whose own taker died is taken over in turn; each level needs another dead process. */
const MAX_TAKEOVER_DEPTH = 4;

export interface WorkLock {
  /** Removes the lock, and the work dir too when nothing else is left in it. */
  release(): Promise<void>;
}

export async function lockWorkDir(workDir: string, output: string): Promise<WorkLock> {
  await fs.mkdir(workDir, { recursive: true });
  const lockPath = path.join(workDir, LOCK_FILE);
  // The token makes this acquisition's content unique, so a takeover can tell a dead holder's lock from a new one.
  const content = `${process.pid} ${randomBytes(8).toString('hex')}\n`;
  for (let attempt = 0; ; attempt++) {
    if (attempt > 0) await fs.mkdir(workDir, { recursive: true }); // a holder that released may have removed it
    if (await createWhole(lockPath, content)) break;
    const seen = await readIfPresent(lockPath);
    const pid = seen !== undefined ? holderPid(seen) : undefined;
    if ((pid !== undefined && pid !== process.pid && processExists(pid)) || attempt >= LOCK_ATTEMPTS) {
      throw new UserError('BUNDLE_BUSY', `another pin-preload (pid ${pid ?? 'unknown'}) is writing ${output}`, {
        subject: { kind: 'bundle', name: output },
        hint: `wait for it to finish, or stop it; its work is in ${workDir}`,
      });
    }
    // Stale (its writer is gone), or gone already: remove it if still the same, then try again.
    if (seen !== undefined && !(await removeStaleLock(lockPath, seen, 0))) await new Promise((resolve) => setTimeout(resolve, RETRY_DELAY_MS));
  }
  return {
    async release() {
      await fs.rm(lockPath, { force: true });
      // Only an empty dir is removed (a refused pre-flight, a finished publish); a dir with a journal stays for the re-run.
      await fs.rmdir(workDir).catch(() => undefined);
    },
  };
}

/**
 * Removes the lock at `lockPath` only while it still holds `seen` (a dead writer's content). POSIX has no
 * compare-and-delete, so contenders that all saw the same stale lock first create a takeover file named after
 * that content (created whole, as the lock is): only its creator reads and removes the lock, and a lock created meanwhile by a winner
 * holds other content and stays. Returns false when another contender is doing the takeover (wait, then retry).
 */
async function removeStaleLock(lockPath: string, seen: string, depth: number): Promise<boolean> {
  const takeover = `${lockPath}.takeover-${createHash('sha256').update(seen).digest('hex').slice(0, 16)}`;
  if (!(await createWhole(takeover, `${process.pid} ${randomBytes(8).toString('hex')}\n`))) {
    const taker = await readIfPresent(takeover);
    const takerPid = taker !== undefined ? holderPid(taker) : undefined;
    // Its taker died between creating it and removing it: take over the takeover file the same way.
    if (taker !== undefined && !(takerPid !== undefined && processExists(takerPid)) && depth < MAX_TAKEOVER_DEPTH) await removeStaleLock(takeover, taker, depth + 1);
    return false;
  }
  try {
    if ((await readIfPresent(lockPath)) === seen) await fs.rm(lockPath, { force: true });
  } finally {
    await fs.rm(takeover, { force: true });
  }
  return true;
}

/**
 * Creates `file` holding `content` unless it exists, content and all at once (a temp file hard-linked into
 * place): with a plain `wx` write a contender could read the new file still empty and take it for stale.
 * False when it exists, or when the temp file or its dir went away under us (a new holder clearing the work
 * dir, an old one removing it at release): the caller looks at the lock again.
 */
async function createWhole(file: string, content: string): Promise<boolean> {
  const temp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await fs.writeFile(temp, content, { flag: 'wx' });
    await fs.link(temp, file);
    return true;
  } catch (err) {
    if (errnoCode(err) === 'EEXIST' || errnoCode(err) === 'ENOENT') return false;
    throw err;
  } finally {
    await fs.rm(temp, { force: true });
  }
}

async function readIfPresent(file: string): Promise<string | undefined> {
  return fs.readFile(file, 'utf8').catch((err: unknown) => {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  });
}

/** The pid a lock names (its first word; older locks hold only the pid). */
function holderPid(content: string): number | undefined {
  const pid = Number(content.trim().split(/\s+/)[0]);
  return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
}

/** Empties the work dir but keeps the lock (starting over inside a run that holds it). */
export async function clearWorkDir(workDir: string): Promise<void> {
  for (const entry of await fs.readdir(workDir)) {
    if (entry !== LOCK_FILE) await fs.rm(path.join(workDir, entry), { recursive: true, force: true });
  }
}
