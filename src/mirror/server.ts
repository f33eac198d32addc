// Starts the read-only registry mirror over a MirrorStore: HTTP or HTTPS on a loopback address unless
// configured otherwise, serving the Express app of app.ts (/v2/ routes, /healthz, /metrics, a JSON access
// log), with bounded connections and timeouts, and a graceful close.

import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Writable } from 'node:stream';
import { UserError } from '../util/errors.js';
import { accessLogTo } from './access-log.js';
import { mirrorListener } from './app.js';
import { MirrorMetrics } from './metrics.js';
import type { MirrorStore } from './store.js';

export const DEFAULT_LISTEN = '127.0.0.1:5000';

export interface MirrorOptions {
  readonly store: MirrorStore;
  /** "HOST:PORT", "[IPv6]:PORT" or "PORT" (loopback). Another address only when written here explicitly. */
  readonly listen?: string;
  /** PEM contents (not file names) of the certificate chain and key; serves HTTPS when given. */
  readonly tls?: { readonly cert: string | Buffer; readonly key: string | Buffer };
  readonly maxConnections?: number;
  /** Blob downloads at once; more get 429 TOOMANYREQUESTS with Retry-After (bounds open files). */
  readonly maxBlobStreams?: number;
  readonly requestTimeoutMs?: number;
  readonly headersTimeoutMs?: number;
  readonly keepAliveTimeoutMs?: number;
  /** A connection with no progress for this long is closed (a stalled client must not hold a file forever). */
  readonly idleTimeoutMs?: number;
  /** How long close() waits for downloads in progress before cutting them. */
  readonly closeGraceMs?: number;
  /** true → stdout; a stream → there; false → none. */
  readonly accessLog?: boolean | Writable;
  /** Where unexpected errors (bugs) are reported; stderr by default. */
  readonly onError?: (err: unknown) => void;
}

export interface RunningMirror {
  /** "http://127.0.0.1:5000" */
  readonly url: string;
  readonly address: string;
  readonly port: number;
  readonly metrics: MirrorMetrics;
  close(): Promise<void>;
}

/** Parses a listen address; throws a UserError naming it when it is not HOST:PORT. */
export function parseListen(listen: string): { host: string; port: number } {
  const text = listen.trim();
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text) ?? (/^(\d{1,5})$/.exec(text) ? [text, undefined, '127.0.0.1', text] : null);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 0 && port <= 65535)) {
    throw new UserError('LISTEN_INVALID', `invalid listen address "${listen}"`);
  }
  const host = m[1] ?? (m[2] === '' || m[2] === undefined ? '0.0.0.0' : m[2]);
  return { host, port };
}

/** Starts serving; resolves once listening. close() stops accepting, lets downloads finish (bounded), then cuts. */
export async function startMirror(options: MirrorOptions): Promise<RunningMirror> {
  const { host, port } = parseListen(options.listen ?? DEFAULT_LISTEN);
  const metrics = new MirrorMetrics();
  const log = options.accessLog === false || options.accessLog === undefined ? undefined : accessLogTo(options.accessLog === true ? process.stdout : options.accessLog);
  const onBug = options.onError ?? ((err: unknown) => process.stderr.write(`pin-preload mirror: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`));
  const listener = mirrorListener({ store: options.store, metrics, maxBlobStreams: options.maxBlobStreams ?? 256, accessLog: log, onBug });
  const server: http.Server = options.tls ? https.createServer({ cert: options.tls.cert, key: options.tls.key }, listener) : http.createServer(listener);
  server.maxConnections = options.maxConnections ?? 512;
  server.requestTimeout = options.requestTimeoutMs ?? 60_000;
  server.headersTimeout = Math.min(options.headersTimeoutMs ?? 30_000, server.requestTimeout || Infinity);
  server.keepAliveTimeout = options.keepAliveTimeoutMs ?? 5_000;
  server.timeout = options.idleTimeoutMs ?? 120_000;
  server.on('timeout', (socket: Socket) => socket.destroy());

  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(
        new UserError('LISTEN_FAILED', `cannot listen on ${host}:${port}: ${err.code ?? err.message}`, {
          hint: err.code === 'EADDRINUSE' ? 'another process uses the port: stop it or choose --listen HOST:PORT' : 'check the address and your permissions',
          cause: err,
        }),
      );
    });
    server.listen(port, host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  let closing: Promise<void> | undefined;
  return {
    url: `${options.tls ? 'https' : 'http'}://${urlHost}:${address.port}`,
    address: address.address,
    port: address.port,
    metrics,
    close() {
      closing ??= new Promise<void>((resolve) => {
        const cut = setTimeout(() => server.closeAllConnections(), options.closeGraceMs ?? 10_000);
        server.close(() => {
          clearTimeout(cut);
          log?.flush();
          resolve();
        });
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}
