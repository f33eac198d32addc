// The progress meter of `bundle create` alone, on a clock the test moves: throttling, forced reports, and
// images counted done only when every blob they need is.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { CreateProgressMeter, type CreateProgress } from '../../src/bundle/create-progress.js';
import type { Digest } from '../../src/oci/digest.js';
import { testImage, testPlan } from '../support/bundle-plans.js';

const repo = { domain: 'quay.io', path: 'example/app' };
const shared = randomBytes(5000);
const images = [testImage(repo, 'one', [shared, randomBytes(3000)]), testImage(repo, 'two', [shared])];
const plan = testPlan(images);

function meterAt(clock: { now: number }): { meter: CreateProgressMeter; reports: CreateProgress[] } {
  const reports: CreateProgress[] = [];
  const meter = new CreateProgressMeter(plan, plan.blobs.length, (p) => reports.push(p), () => clock.now);
  return { meter, reports };
}

test('reports at most every 200 ms, but a forced report always goes out', () => {
  const clock = { now: 10_000 };
  const { meter, reports } = meterAt(clock);
  const written = { bytesDone: 0, done: new Map<Digest, unknown>() };
  meter.report('download', written);
  clock.now += 199;
  meter.report('download', written);
  assert.equal(reports.length, 1);
  meter.report('seal', written, true);
  assert.equal(reports.length, 2);
  clock.now += 199;
  meter.report('download', written);
  assert.equal(reports.length, 2, 'the forced report restarts the interval');
  clock.now += 1;
  meter.report('download', written);
  assert.deepEqual(reports.map((r) => r.phase), ['download', 'seal', 'download']);
});

test('counts bytes and blobs as the writer has them, totals from the plan, and an image done only when all its blobs are', () => {
  const clock = { now: 10_000 };
  const { meter, reports } = meterAt(clock);
  // Image two needs its manifest, its config and the shared layer; image one needs those of its own too.
  const two = [...images[1]!.image.manifests, ...images[1]!.image.blobs];
  const done = new Map<Digest, unknown>(two.slice(0, -1).map((d) => [d, true]));
  meter.report('download', { bytesDone: 1234, done });
  done.set(two.at(-1)!, true);
  clock.now += 200;
  meter.report('download', { bytesDone: 5678, done });
  assert.deepEqual(reports.map((r) => [r.bytesDone, r.blobsDone, r.imagesDone]), [[1234, two.length - 1, 0], [5678, two.length, 1]]);
  for (const r of reports) {
    assert.equal(r.bytesTotal, plan.blobs.reduce((s, b) => s + b.size, 0));
    assert.equal(r.blobsTotal, plan.blobs.length);
    assert.equal(r.imagesTotal, 2);
  }
});

test('without a listener a report, forced or not, is a no-op', () => {
  const meter = new CreateProgressMeter(plan, plan.blobs.length, undefined, () => 10_000);
  assert.doesNotThrow(() => meter.report('download', { bytesDone: 0, done: new Map() }, true));
});
