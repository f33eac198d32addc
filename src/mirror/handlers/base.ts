// What every handler gets (the request, the response, the store) and the few ways a handler answers:
// JSON bodies, empty HEAD answers, and store misses turned into spec errors. Also GET /v2/ itself.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { RegistryError } from '../errors.js';
import { isMiss, type Lookup, type MirrorStore } from '../store.js';

export interface Exchange {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly query: URLSearchParams;
  /** Body bytes sent (for the access log and metrics); handlers add to it. */
  bodyBytes: number;
}

export interface HandlerContext {
  readonly store: MirrorStore;
  /** Admission for a blob stream: a release function, or undefined when too many are open (then 429). */
  readonly admitBlobStream: () => (() => void) | undefined;
}

/** The found value, or the spec error for the miss (NAME_UNKNOWN, MANIFEST_UNKNOWN, BLOB_UNKNOWN). */
export function found<T extends object>(result: Lookup<T>): T {
  if (isMiss(result)) throw new RegistryError(result.miss, result.message);
  return result;
}

/** Sends `body` as JSON (headers only for HEAD) with the given content type and extra headers. */
export function sendJson(ex: Exchange, body: unknown, contentType = 'application/json', headers: Readonly<Record<string, string>> = {}): void {
  const bytes = Buffer.from(JSON.stringify(body));
  ex.res.statusCode = 200;
  ex.res.setHeader('Content-Type', contentType);
  ex.res.setHeader('Content-Length', bytes.length);
  for (const [k, v] of Object.entries(headers)) ex.res.setHeader(k, v);
  if (ex.req.method === 'HEAD') {
    ex.res.end();
    return;
  }
  ex.bodyBytes += bytes.length;
  ex.res.end(bytes);
}

/** GET /v2/: the API version check every client makes first. */
export function getBase(ex: Exchange): void {
  sendJson(ex, {});
}
