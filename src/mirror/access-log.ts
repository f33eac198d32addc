// One JSON line per request (time, method, path, status, bytes, duration, remote), written when the
// response ends or the client goes away. The path is the raw target, cut short, never decoded.
// Lines finished in one turn of the event loop go out in one write (a synchronous stdout write per
// request was a measurable share of a manifest GET); flush() writes what is pending (on close).

import type { Writable } from 'node:stream';

export interface AccessLogEntry {
  readonly time: string;
  readonly method: string;
  readonly path: string;
  readonly status: number;
  readonly bytes: number;
  readonly durationMs: number;
  readonly remote: string;
  /** Set when the client disconnected before the response was complete. */
  readonly aborted?: boolean;
}

export interface AccessLog {
  (entry: AccessLogEntry): void;
  /** Writes the lines not yet written. */
  flush(): void;
}

const PATH_MAX = 512;
/** Past this many pending characters the batch is written at once, so a burst never holds much memory. */
const BATCH_MAX_CHARS = 64 * 1024;

export function accessLogTo(out: Writable): AccessLog {
  let pending = '';
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    if (pending === '') return;
    const text = pending;
    pending = '';
    out.write(text);
  };
  const log = (entry: AccessLogEntry) => {
    pending += `${JSON.stringify({ ...entry, path: entry.path.slice(0, PATH_MAX) })}\n`;
    if (pending.length >= BATCH_MAX_CHARS) flush();
    else if (!scheduled) {
      scheduled = true;
      // setImmediate runs after this turn's I/O callbacks: every response that ended in it shares the write.
      setImmediate(flush);
    }
  };
  return Object.assign(log, { flush });
}
