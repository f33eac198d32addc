// A loopback HTTP proxy put in front of a registry in tests: it records every request (method, path,
// status, Range) and can inject faults (error statuses, resets and truncations mid-body, corrupt bytes).

import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';

/** A fault to inject into one response. */
export type Fault =
  /** Answer with this status (and headers, e.g. Retry-After) without asking upstream. */
  | { readonly kind: 'status'; readonly status: number; readonly headers?: Readonly<Record<string, string>>; readonly body?: string }
  /** Forward the headers and this many body bytes, then destroy the connection (a reset mid-body). */
  | { readonly kind: 'reset-after-bytes'; readonly bytes: number }
  /** Forward this many body bytes and end the response cleanly, without Content-Length (a silent short body). */
  | { readonly kind: 'truncate'; readonly bytes: number }
  /** Forward the whole body with the byte at this offset of the body flipped. */
  | { readonly kind: 'corrupt-byte'; readonly offset: number }
  /** Redirect (307 by default) to another URL, as registries do to their storage backends. */
  | { readonly kind: 'redirect'; readonly location: string; readonly status?: number }
  /** Forward this many body bytes, then send nothing more and keep the connection open (a hung download). */
  | { readonly kind: 'stall-after-bytes'; readonly bytes: number }
  /** Forward the request upstream with this path instead (e.g. a query a registry would ignore, left out). */
  | { readonly kind: 'forward-as'; readonly path: string };

export interface ProxiedRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingMessage['headers'];
  readonly range?: string;
}

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  /** The status the client got (0 when the connection was cut before headers). */
  status: number;
  readonly range?: string;
  readonly fault?: Fault['kind'];
  /** Response body bytes forwarded to the client so far. */
  bytesSent: number;
  /** Request body bytes the client sent so far, and the Content-Length it announced (pushes). */
  bytesReceived: number;
  readonly contentLength?: number;
}

export interface ProxyOptions {
  /** Called for every request before it is forwarded. */
  readonly onRequest?: (req: ProxiedRequest) => void;
  /** Decides a fault per request; undefined forwards it untouched. */
  readonly fault?: (req: ProxiedRequest) => Fault | undefined;
  /** Serve HTTPS with this key and certificate (PEM) instead of plain HTTP. */
  readonly tls?: { readonly key: string; readonly cert: string };
}

export interface RunningProxy {
  /** "http://127.0.0.1:PORT" (https with the tls option) */
  readonly url: string;
  /** "127.0.0.1:PORT" */
  readonly host: string;
  readonly requests: RecordedRequest[];
  /** GETs of /v2/…/blobs/<digest>, whatever their outcome. */
  countBlobGets(digest: string): number;
  /** TCP connections the proxy accepted so far (a client that keeps its connections opens few). */
  connectionsAccepted(): number;
  /** Replaces the fault hook (e.g. between tests sharing one proxy). */
  setFault(fault: ProxyOptions['fault']): void;
  stop(): Promise<void>;
}

/** A fault hook that fires `fault` for the first `times` requests matching `match`. */
export function faultTimes(match: (req: ProxiedRequest) => boolean, fault: Fault, times = 1): (req: ProxiedRequest) => Fault | undefined {
  let left = times;
  return (req) => {
    if (left > 0 && match(req)) {
      left--;
      return fault;
    }
    return undefined;
  };
}

export async function startRegistryProxy(upstreamUrl: string, options: ProxyOptions = {}): Promise<RunningProxy> {
  const upstream = new URL(upstreamUrl);
  const requests: RecordedRequest[] = [];
  let faultHook = options.fault;

  const forward = (req: IncomingMessage, res: ServerResponse, record: RecordedRequest, fault: Fault | undefined): void => {
    const headers = { ...req.headers, host: upstream.host };
    const outgoing = http.request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: fault?.kind === 'forward-as' ? fault.path : req.url, headers },
      (up) => {
        record.status = up.statusCode ?? 0;
        const responseHeaders = { ...up.headers };
        // Upload URLs come back absolute, built from the Host we sent upstream: point them at the proxy again.
        if (typeof responseHeaders.location === 'string' && req.headers.host !== undefined) {
          responseHeaders.location = responseHeaders.location.replace(`${upstream.protocol}//${upstream.host}`, `${options.tls ? 'https:' : 'http:'}//${req.headers.host}`);
        }
        if (fault?.kind === 'truncate') delete responseHeaders['content-length'];
        res.writeHead(up.statusCode ?? 502, responseHeaders);
        let sent = 0;
        up.on('data', (chunk: Buffer) => {
          let piece = chunk;
          if (fault?.kind === 'corrupt-byte' && fault.offset >= sent && fault.offset < sent + piece.length) {
            piece = Buffer.from(piece);
            piece[fault.offset - sent] = piece[fault.offset - sent]! ^ 0xff;
          }
          if (fault?.kind === 'stall-after-bytes' && sent + piece.length >= fault.bytes) {
            const keep = piece.subarray(0, fault.bytes - sent);
            sent += keep.length;
            record.bytesSent = sent;
            up.destroy();
            res.write(keep); // and nothing more: the response stays open until the client or stop() ends it
            return;
          }
          if ((fault?.kind === 'reset-after-bytes' || fault?.kind === 'truncate') && sent + piece.length >= fault.bytes) {
            const keep = piece.subarray(0, fault.bytes - sent);
            sent += keep.length;
            record.bytesSent = sent;
            up.destroy();
            if (fault.kind === 'truncate') {
              res.end(keep);
            } else {
              // Flush what we promised, then cut the connection under the client.
              res.write(keep, () => res.socket?.destroy());
            }
            return;
          }
          sent += piece.length;
          record.bytesSent = sent;
          if (!res.write(piece)) {
            up.pause();
            res.once('drain', () => up.resume());
          }
        });
        up.on('end', () => {
          if (fault?.kind !== 'stall-after-bytes' || sent < fault.bytes) res.end();
        });
        up.on('error', () => res.destroy());
      },
    );
    outgoing.on('error', () => {
      record.status = 502;
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end('upstream unreachable');
    });
    req.pipe(outgoing);
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const range = typeof req.headers.range === 'string' ? req.headers.range : undefined;
    const proxied: ProxiedRequest = { method: req.method ?? 'GET', path: req.url ?? '/', headers: req.headers, ...(range ? { range } : {}) };
    options.onRequest?.(proxied);
    const fault = faultHook?.(proxied);
    const length = req.headers['content-length'] !== undefined ? Number(req.headers['content-length']) : undefined;
    const record: RecordedRequest = { method: proxied.method, path: proxied.path, status: 0, bytesSent: 0, bytesReceived: 0, ...(length !== undefined ? { contentLength: length } : {}), ...(range ? { range } : {}), ...(fault ? { fault: fault.kind } : {}) };
    requests.push(record);
    req.on('data', (chunk: Buffer) => (record.bytesReceived += chunk.length));
    if (fault?.kind === 'status') {
      record.status = fault.status;
      req.resume();
      res.writeHead(fault.status, { 'content-type': 'application/json', ...fault.headers });
      res.end(fault.body ?? JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message: `injected ${fault.status}` }] }));
      return;
    }
    if (fault?.kind === 'redirect') {
      record.status = fault.status ?? 307;
      req.resume();
      res.writeHead(record.status, { location: fault.location, 'content-length': '0' });
      res.end();
      return;
    }
    forward(req, res, record, fault);
  };
  const server = options.tls ? https.createServer({ key: options.tls.key, cert: options.tls.cert }, handle) : http.createServer(handle);
  let connections = 0;
  server.on('connection', () => connections++);

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    requests,
    countBlobGets: (digest) => requests.filter((r) => r.method === 'GET' && r.path.split('?')[0]!.endsWith(`/blobs/${digest}`)).length,
    connectionsAccepted: () => connections,
    setFault(fault) {
      faultHook = fault;
    },
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
