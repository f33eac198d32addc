// When the node service syncs: once at start, again when the bundle dir holds a different set (a change seen,
// then a quiet time, then a snapshot compared), and again some time after a failed sync. A new set cancels
// the sync running for the old one, as the MCO cancels the prefetch of an old desired set.

/** The timer functions the scheduler uses; tests pass a clock they advance themselves. */
export interface SchedulerTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(timer: unknown): void;
}

const systemTimers: SchedulerTimers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (timer) => clearTimeout(timer as NodeJS.Timeout),
};

export interface SchedulerOptions {
  /** Stops the scheduler: the running sync is cancelled and run() returns. */
  readonly signal: AbortSignal;
  /** Quiet time after the last change before the snapshot is compared (a copy is many writes). */
  readonly debounceMs: number;
  /** How often a change is assumed, for changes fs.watch misses (network filesystems). */
  readonly rescanMs: number;
  /** After a failed sync, the next comes this much later (unless the set changes first). */
  readonly retryMs: number;
  /** What the bundle dir holds, as a comparable string; taken as each sync starts, and after each change. */
  readonly snapshot: () => Promise<string>;
  /** The bundle dir, as log lines name it. */
  readonly dir: string;
  readonly log: (line: string) => void;
  readonly timers?: SchedulerTimers;
}

export class SyncScheduler {
  /** A sync is due: at start, after a change of the set, after a failure's retry time. */
  private due = true;
  /** The bundle dir as the last sync started with it. */
  private snapshot = '';
  private running: AbortController | undefined;
  /** Resolves the loop's wait for a due sync. */
  private wake: (() => void) | undefined;
  private debounce: unknown;
  /** The one pending retry after a failed sync; cleared when any sync starts, so failures never add a chain. */
  private retry: unknown;
  private readonly pending = new Set<unknown>();
  private readonly timers: SchedulerTimers;

  constructor(private readonly options: SchedulerOptions) {
    this.timers = options.timers ?? systemTimers;
  }

  /**
   * Something in the bundle dir may have changed. After the quiet time the snapshot is compared with the
   * running (or last) sync's: a different set makes a sync due and cancels the running one.
   */
  changed(): void {
    const { log, dir } = this.options;
    if (this.debounce !== undefined) this.timers.clearTimeout(this.debounce);
    this.debounce = this.timers.setTimeout(() => {
      this.debounce = undefined;
      void this.options.snapshot().then((now) => {
        if (now === this.snapshot) return;
        log('the bundle dir changed: starting a new sync');
        this.due = true;
        this.running?.abort();
        this.nudge();
      }, (err: unknown) => log(`rescanning ${dir} failed: ${(err as Error).message}`));
    }, this.options.debounceMs);
  }

  /**
   * Runs `sync` each time one is due until the signal aborts, one at a time; `sync` gets a signal that a new
   * set or the stop aborts. A sync that throws without having been cancelled is tried again retryMs later.
   */
  async run(sync: (signal: AbortSignal) => Promise<void>): Promise<void> {
    const { signal, rescanMs, retryMs } = this.options;
    const rescan = () => {
      if (signal.aborted) return;
      this.changed();
      this.later(rescanMs, rescan);
    };
    this.later(rescanMs, rescan);
    const onStop = () => {
      this.running?.abort();
      this.nudge();
    };
    signal.addEventListener('abort', onStop, { once: true });
    try {
      while (!signal.aborted) {
        if (!this.due) {
          await new Promise<void>((resolve) => {
            this.wake = resolve;
          });
          this.wake = undefined;
          continue;
        }
        this.due = false;
        this.cancelRetry();
        this.snapshot = await this.options.snapshot();
        // A stop while the snapshot was read has no running sync to cancel yet: start none.
        if (signal.aborted) break;
        const running = new AbortController();
        this.running = running;
        const onServiceStop = () => running.abort();
        signal.addEventListener('abort', onServiceStop, { once: true });
        try {
          await sync(running.signal);
        } catch {
          if (!running.signal.aborted) {
            this.cancelRetry();
            this.retry = this.later(retryMs, () => {
              this.retry = undefined;
              this.due = true;
              this.nudge();
            });
          }
        } finally {
          signal.removeEventListener('abort', onServiceStop);
          this.running = undefined;
        }
      }
    } finally {
      signal.removeEventListener('abort', onStop);
    }
  }

  /** Clears every timer (quiet time, rescan, retry): nothing fires after the service stopped. */
  dispose(): void {
    if (this.debounce !== undefined) this.timers.clearTimeout(this.debounce);
    this.debounce = undefined;
    for (const timer of this.pending) this.timers.clearTimeout(timer);
    this.pending.clear();
    this.retry = undefined;
  }

  private cancelRetry(): void {
    if (this.retry === undefined) return;
    this.timers.clearTimeout(this.retry);
    this.pending.delete(this.retry);
    this.retry = undefined;
  }

  private nudge(): void {
    this.wake?.();
  }

  private later(ms: number, fn: () => void): unknown {
    const timer = this.timers.setTimeout(() => {
      this.pending.delete(timer);
      fn();
    }, ms);
    this.pending.add(timer);
    return timer;
  }
}
