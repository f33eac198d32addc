// The docker-credential-pin-test helper script (test/support/credential-helpers/) on PATH for one test,
// answering from a file of tab-separated "SERVER USERNAME SECRET" lines; PATH and the environment are restored after it.

import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const HELPER_DIR = path.join(ROOT, 'test', 'support', 'credential-helpers');
export const HELPER_NAME = 'pin-test';

export interface HelperOnPath {
  /** The servers the helper was asked about, in order. */
  calls(): Promise<string[]>;
}

export async function credentialHelperOnPath(
  t: { after(fn: () => void): void },
  dir: string,
  entries: ReadonlyArray<readonly [server: string, username: string, secret: string]>,
): Promise<HelperOnPath> {
  const db = path.join(dir, 'helper-db');
  await writeFile(db, entries.map((e) => `${e.join('\t')}\n`).join(''));
  await writeFile(`${db}.calls`, '');
  const saved = { PATH: process.env.PATH, PIN_TEST_HELPER_DB: process.env.PIN_TEST_HELPER_DB };
  process.env.PATH = `${HELPER_DIR}${path.delimiter}${process.env.PATH ?? ''}`;
  process.env.PIN_TEST_HELPER_DB = db;
  t.after(() => {
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  });
  return { calls: async () => (await readFile(`${db}.calls`, 'utf8')).split('\n').filter((l) => l !== '') };
}
