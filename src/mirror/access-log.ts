// One JSON line per request (time, method, path, status, bytes, duration, remote), written when the
// response ends or the client goes away. The path is the raw target, cut short, never decoded.

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

export type AccessLog = (entry: AccessLogEntry) => void;

const PATH_MAX = 512;

export function accessLogTo(out: Writable): AccessLog {
  return (entry) => {
    out.write(`${JSON.stringify({ ...entry, path: entry.path.slice(0, PATH_MAX) })}\n`);
  };
}
