import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SyncScheduler, type SchedulerTimers } from '../../../src/node/sync-scheduler.js';

/** A clock the test advances: timers fire in time order, and the promises they start settle in between. */
class ManualClock implements SchedulerTimers {
  now = 0;
  private next = 1;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();

  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.next++;
    this.timers.set(id, { at: this.now + ms, fn });
    return id;
  }

  clearTimeout(timer: unknown): void {
    this.timers.delete(timer as number);
  }

  get pending(): number {
    return this.timers.size;
  }

  async advance(ms: number): Promise<void> {
    const until = this.now + ms;
    for (;;) {
      await settle();
      const due = [...this.timers].filter(([, t]) => t.at <= until).sort((a, b) => a[1].at - b[1].at || a[0] - b[0])[0];
      if (!due) break;
      this.timers.delete(due[0]);
      this.now = due[1].at;
      due[1].fn();
    }
    this.now = until;
    await settle();
  }
}

/** Lets pending promise callbacks run (a bounded number of event-loop turns). */
async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

interface Harness {
  clock: ManualClock;
  scheduler: SyncScheduler;
  stop: AbortController;
  /** What the bundle dir "holds" (an Error: it cannot be read); the scheduler's snapshot reads it. */
  dir: { set: string | Error };
  snapshots: number;
  logs: string[];
  /** One entry per sync started; `finish` ends it (an Error fails it). */
  syncs: Array<{ signal: AbortSignal; finish: (outcome?: Error) => void }>;
  done: Promise<void>;
}

/** `gate`: the snapshot waits for it (a slow bundle dir). */
function start(gate?: Promise<void>): Harness {
  const clock = new ManualClock();
  const stop = new AbortController();
  const h: Harness = { clock, stop, dir: { set: 'a' }, snapshots: 0, logs: [], syncs: [], done: Promise.resolve(), scheduler: undefined as unknown as SyncScheduler };
  h.scheduler = new SyncScheduler({
    signal: stop.signal,
    debounceMs: 2_000,
    rescanMs: 60_000,
    retryMs: 30_000,
    dir: '/var/lib/pin-preload/bundles',
    log: (line) => h.logs.push(line),
    timers: clock,
    snapshot: async () => {
      h.snapshots++;
      await gate;
      if (h.dir.set instanceof Error) throw h.dir.set;
      return h.dir.set;
    },
  });
  h.done = h.scheduler.run(
    (signal) =>
      new Promise<void>((resolve, reject) => {
        // A sync ends when the test says, or when it is cancelled (as preloadOnce does).
        signal.addEventListener('abort', () => reject(new Error('cancelled')), { once: true });
        h.syncs.push({ signal, finish: (outcome) => (outcome ? reject(outcome) : resolve()) });
      }),
  );
  return h;
}

async function shutDown(h: Harness): Promise<void> {
  h.stop.abort();
  await h.done;
  h.scheduler.dispose();
  assert.equal(h.clock.pending, 0, 'no timer left behind');
}

test('syncs once at start, then not again while the bundle dir holds the same set', async () => {
  const h = start();
  await settle();
  assert.equal(h.syncs.length, 1);
  h.syncs[0]!.finish();
  h.scheduler.changed();
  await h.clock.advance(5 * 60_000); // a change seen, and five periodic rescans: the same set
  assert.equal(h.syncs.length, 1);
  await shutDown(h);
});

test('changes within the quiet time are compared once, after the last of them', async () => {
  const h = start();
  await settle();
  h.syncs[0]!.finish();
  const before = h.snapshots;
  for (let i = 0; i < 5; i++) {
    h.scheduler.changed();
    await h.clock.advance(1_000);
  }
  assert.equal(h.snapshots, before, 'still within the quiet time of the last change');
  await h.clock.advance(1_000);
  assert.equal(h.snapshots, before + 1);
  await shutDown(h);
});

test('a new set after the quiet time cancels the running sync and starts one for the new set', async () => {
  const h = start();
  await settle();
  const first = h.syncs[0]!;
  h.dir.set = 'a+b';
  h.scheduler.changed();
  await h.clock.advance(1_999);
  assert.equal(first.signal.aborted, false, 'not before the quiet time is over');
  await h.clock.advance(1);
  assert.equal(first.signal.aborted, true);
  assert.equal(h.syncs.length, 2);
  assert.deepEqual(h.logs, ['the bundle dir changed: starting a new sync']);
  await shutDown(h);
});

test('the periodic rescan finds a change that fs.watch did not report', async () => {
  const h = start();
  await settle();
  h.syncs[0]!.finish();
  h.dir.set = 'a+b';
  await h.clock.advance(60_000 + 1_999);
  assert.equal(h.syncs.length, 1);
  await h.clock.advance(1);
  assert.equal(h.syncs.length, 2);
  await shutDown(h);
});

test('a failed sync is tried again after the retry time; a cancelled one is not', async () => {
  const h = start();
  await settle();
  h.syncs[0]!.finish(new Error('pull failed'));
  await h.clock.advance(29_999);
  assert.equal(h.syncs.length, 1);
  await h.clock.advance(1);
  assert.equal(h.syncs.length, 2, 'retried after retryMs');

  h.dir.set = 'a+b';
  h.scheduler.changed();
  await h.clock.advance(2_000); // cancels the second sync, starts the third
  assert.equal(h.syncs.length, 3);
  h.syncs[2]!.finish();
  await h.clock.advance(30_000);
  assert.equal(h.syncs.length, 3, 'the cancelled sync was not retried');
  await shutDown(h);
});

test('while syncs keep failing there is one retry at a time: the sync of a new set replaces the pending retry instead of adding a chain', async () => {
  const h = start();
  const started: number[] = [];
  // Every sync fails at once, at the time it starts.
  const failNew = () => {
    for (const sync of h.syncs.slice(started.length)) {
      started.push(h.clock.now);
      sync.finish(new Error('base missing'));
    }
  };
  await settle();
  failNew();
  while (h.clock.now < 300_000) {
    if (h.clock.now === 10_000 || h.clock.now === 110_000) {
      h.dir.set = `set changed at ${h.clock.now} ms`;
      h.scheduler.changed();
    }
    await h.clock.advance(1_000);
    failNew();
  }
  // At start; 2 s after each change; 30 s after each failure, counted from the last one only.
  assert.deepEqual(started, [0, 12_000, 42_000, 72_000, 102_000, 112_000, 142_000, 172_000, 202_000, 232_000, 262_000, 292_000]);
  await shutDown(h);
});

test('stopping cancels the running sync, ends run(), and leaves no timer', async () => {
  const h = start();
  await settle();
  h.scheduler.changed();
  h.stop.abort();
  await h.done;
  assert.equal(h.syncs[0]!.signal.aborted, true);
  h.scheduler.dispose();
  assert.equal(h.clock.pending, 0);
  await h.clock.advance(120_000);
  assert.equal(h.syncs.length, 1, 'nothing runs after the stop');
});

test('a snapshot that cannot be taken after a change is logged, and the service goes on', async () => {
  const h = start();
  await settle();
  h.syncs[0]!.finish();
  h.dir.set = new Error('EIO: i/o error');
  h.scheduler.changed();
  await h.clock.advance(2_000);
  assert.deepEqual(h.logs, ['rescanning /var/lib/pin-preload/bundles failed: EIO: i/o error']);
  h.dir.set = 'a+b';
  await h.clock.advance(60_000 + 2_000);
  assert.equal(h.syncs.length, 2, 'the next rescan still sees the change');
  await shutDown(h);
});

test('stopping while the first snapshot is being read starts no sync', async () => {
  let open!: () => void;
  const h = start(new Promise<void>((resolve) => (open = resolve)));
  await settle();
  h.stop.abort();
  open();
  await h.done;
  h.scheduler.dispose();
  assert.equal(h.syncs.length, 0, 'no sync after the stop');
  assert.equal(h.clock.pending, 0, 'no timer left behind');
});
