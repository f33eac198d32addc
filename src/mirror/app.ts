// The mirror's HTTP layer: an Express 5 application (the design card's choice). Express routes — one router
// per resource, mounted on the shape of its path — and one error handler renders every failure as the
// spec's error body. What made the mirror fast stays outside Express: the raw request target is parsed and
// validated once, into typed values, before any router runs (routes.ts, never percent-decoded, so "%2e%2e"
// cannot become ".."); handlers write their answer with setHeader/end, the blob handler hands the raw
// response to the pooled blob copy; no ETag, body-parsing, query-parsing or x-powered-by work is added.
//
// Requests enter through the app's router (mirrorListener), not through the app itself: app.handle swaps
// the prototypes of req and res for Express's request/response objects on every request, which the mirror
// never uses, and that alone measured 3.5× the server CPU of a request and +55 MB peak RSS under load
// (docs/mirror.md "The HTTP layer").

import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import express, { type Application, type ErrorRequestHandler, type Request, type RequestHandler, type Response, type Router } from 'express';
import type { AccessLog } from './access-log.js';
import { API_VERSION_HEADER, RegistryError, isRegistryError, sendRegistryError } from './errors.js';
import { getBase, type Exchange, type HandlerContext } from './handlers/base.js';
import { getBlob } from './handlers/blobs.js';
import { getCatalog } from './handlers/catalog.js';
import { getManifest } from './handlers/manifests.js';
import { getReferrers } from './handlers/referrers.js';
import { getTags } from './handlers/tags.js';
import type { MirrorMetrics } from './metrics.js';
import { isV2Path, parseRoute, ROUTE_PATHS, routeKind, splitTarget, type RequestTarget, type Route, type RouteKind } from './routes.js';
import type { MirrorStore } from './store.js';

export interface MirrorAppOptions {
  readonly store: MirrorStore;
  readonly metrics: MirrorMetrics;
  /** Blob downloads at once; more get 429 TOOMANYREQUESTS with Retry-After. */
  readonly maxBlobStreams: number;
  readonly accessLog: AccessLog | undefined;
  /** Where unexpected errors (bugs) are reported. */
  readonly onBug: (err: unknown) => void;
}

/** What the mirror knows about a request, kept in res.locals from the first middleware on. */
interface MirrorRequest {
  readonly ex: Exchange;
  /** Undefined for an absolute-form target, which is refused. */
  readonly target: RequestTarget | undefined;
  /** The route kind of a /v2 path (undefined: no route, or not /v2), found once for the metrics label and parseRoute. */
  readonly kind: RouteKind | undefined;
  /** Set by the /v2 entry once the route is validated; absent for /healthz and /metrics. */
  route?: Route;
}

const READ_METHODS = new Set(['GET', 'HEAD']);
const ROUTER_OPTIONS = { caseSensitive: true, strict: true };

function stateOf(res: Response): MirrorRequest | undefined {
  return res.locals.mirror as MirrorRequest | undefined;
}

function routeLabel(path: string, kind: RouteKind | undefined): string {
  if (isV2Path(path)) return kind ?? 'unknown';
  if (path === '/healthz' || path === '/metrics') return path.slice(1);
  return 'other';
}

function blobAdmission(limit: number, metrics: MirrorMetrics): HandlerContext['admitBlobStream'] {
  let active = 0;
  return () => {
    if (active >= limit) return undefined;
    active++;
    metrics.blobStreams.inc();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      active--;
      metrics.blobStreams.dec();
    };
  };
}

/**
 * First middleware: splits the raw target (before any router rewrites req.url), sets the API version
 * header, and records metrics and the access-log line when the response ends or the client goes away.
 */
function observe(metrics: MirrorMetrics, log: AccessLog | undefined): RequestHandler {
  return (req, res, next) => {
    const started = process.hrtime.bigint();
    const rawUrl = req.url ?? '';
    const method = req.method ?? 'GET';
    const target = splitTarget(rawUrl);
    const kind = target && isV2Path(target.path) ? routeKind(target.path) : undefined;
    const label = target ? routeLabel(target.path, kind) : 'other';
    const ex: Exchange = { req, res, query: target?.query ?? new URLSearchParams(), bodyBytes: 0 };
    res.setHeader(API_VERSION_HEADER, 'registry/2.0');
    res.once('close', () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      metrics.observe(label, method, res.statusCode, ex.bodyBytes, seconds);
      log?.({
        time: new Date().toISOString(),
        method,
        path: rawUrl,
        status: res.statusCode,
        bytes: ex.bodyBytes,
        durationMs: Math.round(seconds * 1e6) / 1e3,
        remote: req.socket.remoteAddress ?? '',
        ...(res.writableFinished ? {} : { aborted: true }),
      });
    });
    const state: MirrorRequest = { ex, target, kind };
    res.locals.mirror = state;
    // Absolute-form targets are refused: Express would route on the path inside them, but the URL parser
    // normalises that path, undoing our checks.
    if (!target) return next(new RegistryError('NOT_FOUND', 'not found: request targets are paths ("/v2/…")'));
    next();
  };
}

/** Every /v2 request: read-only methods only, then the route parsed and validated once, before any lookup. */
const v2Entry: RequestHandler = (req, res, next) => {
  const state = stateOf(res)!;
  if (!state.target || !isV2Path(state.target.path)) return next();
  const method = req.method ?? 'GET';
  if (!READ_METHODS.has(method)) {
    throw new RegistryError('UNSUPPORTED', `${method} is not supported: this mirror is read-only`, null, { Allow: 'GET, HEAD' });
  }
  state.route = parseRoute(state.target, state.kind);
  next();
};

type RouteOf<K extends RouteKind> = Extract<Route, { kind: K }>;

/** The router of one resource, mounted on its path shape; its handler gets the route already validated. */
function resourceRouter<K extends RouteKind>(kind: K, ctx: HandlerContext, handle: (ex: Exchange, ctx: HandlerContext, route: RouteOf<K>) => void | Promise<void>): Router {
  const router = express.Router(ROUTER_OPTIONS);
  router.get('/', (_req: Request, res: Response) => {
    const state = stateOf(res)!;
    // ROUTE_PATHS decides both Express's match and parseRoute's kind, so this holds unless there is a bug.
    if (state.route?.kind !== kind) throw new Error(`${state.target?.path.slice(0, 200)} reached the ${kind} router as ${state.route?.kind ?? 'no route'}`);
    return handle(state.ex, ctx, state.route as RouteOf<K>);
  });
  return router;
}

/** The one place errors become responses: the spec's body for a RegistryError, 500 UNKNOWN (reported) for anything else. */
function renderError(onBug: (err: unknown) => void): ErrorRequestHandler {
  return (err, req, res, _next) => {
    const registryError = isRegistryError(err) ? err : new RegistryError('UNKNOWN', 'internal error in the mirror');
    if (!isRegistryError(err)) onBug(err);
    if (res.headersSent) {
      // Mid-body (a blob whose file failed after the first byte): only cutting the connection tells the client.
      res.destroy();
      return;
    }
    const sent = sendRegistryError(res, registryError, req.method ?? 'GET');
    const state = stateOf(res);
    if (state) state.ex.bodyBytes += sent;
  };
}

export function mirrorApp(options: MirrorAppOptions): Application {
  const { metrics } = options;
  const ctx: HandlerContext = { store: options.store, admitBlobStream: blobAdmission(options.maxBlobStreams, metrics) };
  const app = express();
  // These four act only when the app itself handles a request (app.handle, res.send, req.query), which
  // mirrorListener avoids; they are off so the app stays right if it is ever served or mounted whole:
  // no x-powered-by; no ETag hashed from bodies (manifests and blobs carry their digest as ETag); the
  // query is split from the raw target by observe(); Express's final handler never prints a stack trace.
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', false);
  app.set('env', 'production');
  // Paths are matched exactly as the spec writes them: /V2/ and /healthz/ are not ours.
  app.enable('case sensitive routing');
  app.enable('strict routing');

  app.use(observe(metrics, options.accessLog));
  app.get('/healthz', (req, res) => {
    res.setHeader('Content-Type', 'text/plain');
    res.end(req.method === 'HEAD' ? undefined : 'ok\n');
  });
  app.get('/metrics', async (req, res) => {
    const { contentType, body } = await metrics.text();
    res.setHeader('Content-Type', contentType);
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  app.use(v2Entry);
  app.use(ROUTE_PATHS.manifest, resourceRouter('manifest', ctx, (ex, c, r) => getManifest(ex, c, r.name, r.reference)));
  app.use(ROUTE_PATHS.blob, resourceRouter('blob', ctx, (ex, c, r) => getBlob(ex, c, r.name, r.digest)));
  app.use(ROUTE_PATHS.tags, resourceRouter('tags', ctx, (ex, c, r) => getTags(ex, c, r.name)));
  app.use(ROUTE_PATHS.catalog, resourceRouter('catalog', ctx, (ex, c) => getCatalog(ex, c)));
  app.use(ROUTE_PATHS.referrers, resourceRouter('referrers', ctx, (ex, c, r) => getReferrers(ex, c, r.name, r.digest)));
  app.use(ROUTE_PATHS.base, resourceRouter('base', ctx, (ex) => getBase(ex)));
  app.use((_req: Request, _res: Response, next) => next(new RegistryError('NOT_FOUND', 'not found: this server answers /v2/, /healthz and /metrics')));
  app.use(renderError(options.onBug));
  return app;
}

/**
 * The request listener: res.locals as Express would make it, then the app's router. Its final callback is
 * reached only if the error handler itself failed (every request ends in a route, the 404 or the error handler).
 */
export function mirrorListener(options: MirrorAppOptions): RequestListener {
  const app = mirrorApp(options);
  const router = app.router;
  return (req: IncomingMessage, res: ServerResponse) => {
    (res as Response).locals = Object.create(null) as Record<string, unknown>;
    router(req as Request, res as Response, (err?: unknown) => {
      options.onBug(err ?? new Error(`no route answered ${req.method ?? ''} ${(req.url ?? '').slice(0, 200)}`));
      res.destroy();
    });
  };
}
