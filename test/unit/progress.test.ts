// Progress lines: one updating line on a terminal, plain lines at most every ~5 s otherwise, none when quiet.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createProgress, formatDuration } from '../../src/util/progress.js';

function fakeStream(): { stream: NodeJS.WriteStream; written: string[] } {
  const written: string[] = [];
  return { stream: { write: (s: string) => written.push(s), isTTY: false } as unknown as NodeJS.WriteStream, written };
}

test('without a terminal, prints a plain line with bytes, rate, ETA and detail at most every 5 s', () => {
  const { stream, written } = fakeStream();
  let now = 0;
  const p = createProgress({ title: 'downloading', stream, tty: false, now: () => now });
  p.update({ bytesDone: 0, bytesTotal: 100 * 2 ** 20, detail: 'images 0/3' });
  now = 1000;
  p.update({ bytesDone: 10 * 2 ** 20, bytesTotal: 100 * 2 ** 20 });
  now = 5000;
  p.update({ bytesDone: 50 * 2 ** 20, bytesTotal: 100 * 2 ** 20, detail: 'images 1/3' });
  assert.equal(written.length, 2);
  assert.match(written[1]!, /^downloading 50\.0 MiB \/ 100 MiB \(50%\) {2}10\.0 MiB\/s {2}ETA 5s {2}images 1\/3\n$/);
});

test('on a terminal, redraws one line in place and clears it at the end', () => {
  const { stream, written } = fakeStream();
  let now = 0;
  const p = createProgress({ title: 'verifying', stream, tty: true, now: () => now });
  p.update({ bytesDone: 1, bytesTotal: 10 });
  now = 300;
  p.update({ bytesDone: 5, bytesTotal: 10 });
  p.finish();
  assert.ok(written.slice(0, 2).every((w) => w.startsWith('\r\x1b[2K') && !w.includes('\n')));
  assert.equal(written.at(-1), '\r\x1b[2K');
});

test('quiet prints nothing; durations read as s, m, h', () => {
  const { stream, written } = fakeStream();
  createProgress({ title: 'x', stream, quiet: true }).update({ bytesDone: 1, bytesTotal: 2 });
  assert.equal(written.length, 0);
  assert.deepEqual([formatDuration(59), formatDuration(61), formatDuration(3700)], ['59s', '1m01s', '1h01m']);
});
