// The mirror's volume fds kept open across downloads: reused while the file is the one at its path, dropped
// when it was deleted or replaced, and closed only once retired and released by every download.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { OpenFiles } from '../../src/mirror/open-files.js';

async function workDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-open-files-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const isOpen = (fd: number): boolean => {
  try {
    fs.fstatSync(fd);
    return true;
  } catch {
    return false;
  }
};
/** fs.close is asynchronous (thread pool): wait until `fd` is closed or give up. */
async function closedSoon(fd: number): Promise<boolean> {
  for (let i = 0; i < 100; i++) {
    if (!isOpen(fd)) return true;
    await new Promise((r) => setTimeout(r, 5));
  }
  return false;
}
const readAll = (fd: number, n: number): string => {
  const b = Buffer.alloc(n);
  return b.subarray(0, fs.readSync(fd, b, 0, n, 0)).toString();
};

test('one fd serves every download of a file, and stays open between them', async (t) => {
  const dir = await workDir(t);
  const file = path.join(dir, 'v1');
  await writeFile(file, 'volume one');
  const files = new OpenFiles();
  const a = await files.acquire(file);
  const b = await files.acquire(file);
  assert.equal(a.fd, b.fd);
  a.release();
  b.release();
  await new Promise((r) => setTimeout(r, 20));
  assert.ok(isOpen(a.fd), 'kept open for the next download');
  const c = await files.acquire(file);
  assert.equal(c.fd, a.fd);
  assert.equal(readAll(c.fd, 100), 'volume one');
  c.release();
  files.retireAll();
  assert.ok(await closedSoon(a.fd), 'retired and released: closed');
  assert.equal(files.size, 0);
});

test('a retired fd stays open until the last download holding it releases it; a release counts once', async (t) => {
  const dir = await workDir(t);
  const file = path.join(dir, 'v1');
  await writeFile(file, 'x');
  const files = new OpenFiles();
  const a = await files.acquire(file);
  const b = await files.acquire(file);
  files.retireAll();
  a.release();
  a.release();
  await new Promise((r) => setTimeout(r, 20));
  assert.ok(isOpen(b.fd), 'b still reads through it');
  const fresh = await files.acquire(file);
  assert.notEqual(fresh.fd, b.fd, 'a new download opens the file again');
  b.release();
  assert.ok(await closedSoon(b.fd));
  fresh.release();
});

test('a file deleted or replaced at its path is not read through the old fd', async (t) => {
  const dir = await workDir(t);
  const file = path.join(dir, 'v1');
  await writeFile(file, 'old bytes');
  const files = new OpenFiles();
  const first = await files.acquire(file);
  first.release();
  await writeFile(path.join(dir, 'next'), 'new bytes');
  await rename(path.join(dir, 'next'), file);
  const second = await files.acquire(file);
  // (The new fd may reuse the old one's number once that was closed: the bytes tell them apart.)
  assert.equal(readAll(second.fd, 100), 'new bytes', 'the file now at the path, not the replaced one');
  second.release();
  await rm(file);
  await assert.rejects(files.acquire(file), { code: 'ENOENT' });
  assert.ok(await closedSoon(second.fd));
  assert.equal(files.size, 0);
});

test('past its limit the least recently used fd is retired', async (t) => {
  const dir = await workDir(t);
  const names = ['a', 'b', 'c'].map((n) => path.join(dir, n));
  for (const n of names) await writeFile(n, n);
  const files = new OpenFiles(2);
  const fds: number[] = [];
  for (const n of [names[0]!, names[1]!, names[0]!, names[2]!]) {
    const lease = await files.acquire(n);
    fds.push(lease.fd);
    lease.release();
  }
  assert.equal(files.size, 2);
  assert.ok(await closedSoon(fds[1]!), 'b, least recently used, was closed');
  assert.ok(isOpen(fds[0]!) && isOpen(fds[3]!));
  files.retireAll();
});
