// One `bundle create` per output at a time: a lock file with the writer's pid inside the work dir. A lock
// left by a process that no longer runs (kill -9, a crash) is taken over, so resume still just works.

import { promises as fs } from 'node:fs';
import path from 'node:path';
import { processExists } from '../util/child-process.js';
import { errnoCode, UserError } from '../util/errors.js';

export const LOCK_FILE = 'lock';

export interface WorkLock {
  /** Removes the lock, and the work dir too when nothing else is left in it. */
  release(): Promise<void>;
}

export async function lockWorkDir(workDir: string, output: string): Promise<WorkLock> {
  await fs.mkdir(workDir, { recursive: true });
  const lockPath = path.join(workDir, LOCK_FILE);
  for (let attempt = 0; ; attempt++) {
    try {
      await fs.writeFile(lockPath, `${process.pid}\n`, { flag: 'wx' });
      break;
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST' || attempt > 0) throw err;
      const pid = Number((await fs.readFile(lockPath, 'utf8').catch(() => '')).trim());
      if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && processExists(pid)) {
        throw new UserError('BUNDLE_BUSY', `another pin-preload (pid ${pid}) is writing ${output}`, {
          subject: { kind: 'bundle', name: output },
          hint: `wait for it to finish, or stop it; its work is in ${workDir}`,
        });
      }
      await fs.rm(lockPath, { force: true }); // stale: its writer is gone
    }
  }
  return {
    async release() {
      await fs.rm(lockPath, { force: true });
      // Only an empty dir is removed (a refused pre-flight, a finished publish); a dir with a journal stays for the re-run.
      await fs.rmdir(workDir).catch(() => undefined);
    },
  };
}

/** Empties the work dir but keeps the lock (starting over inside a run that holds it). */
export async function clearWorkDir(workDir: string): Promise<void> {
  for (const entry of await fs.readdir(workDir)) {
    if (entry !== LOCK_FILE) await fs.rm(path.join(workDir, entry), { recursive: true, force: true });
  }
}
