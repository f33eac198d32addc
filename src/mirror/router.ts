// Dispatches /v2/… requests: read-only methods only, route parsed and validated from the raw target,
// then the one handler for the route. Errors are rendered by errors.ts, in this one place.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { RegistryError, isRegistryError, sendRegistryError } from './errors.js';
import { getBase, type Exchange, type HandlerContext } from './handlers/base.js';
import { getBlob } from './handlers/blobs.js';
import { getCatalog } from './handlers/catalog.js';
import { getManifest } from './handlers/manifests.js';
import { getReferrers } from './handlers/referrers.js';
import { getTags } from './handlers/tags.js';
import { parseRoute, type RequestTarget } from './routes.js';

const READ_METHODS = new Set(['GET', 'HEAD']);

async function dispatch(ex: Exchange, ctx: HandlerContext, target: RequestTarget): Promise<void> {
  const method = ex.req.method ?? 'GET';
  if (!READ_METHODS.has(method)) {
    throw new RegistryError('UNSUPPORTED', `${method} is not supported: this mirror is read-only`, null, { Allow: 'GET, HEAD' });
  }
  const route = parseRoute(target);
  switch (route.kind) {
    case 'base':
      return getBase(ex);
    case 'catalog':
      return getCatalog(ex, ctx);
    case 'manifest':
      return getManifest(ex, ctx, route.name, route.reference);
    case 'blob':
      return getBlob(ex, ctx, route.name, route.digest);
    case 'tags':
      return getTags(ex, ctx, route.name);
    case 'referrers':
      return getReferrers(ex, ctx, route.name, route.digest);
  }
}

/** Answers a /v2 request; an unexpected error is a 500 with the spec's UNKNOWN code (and reported). */
export async function handleV2(ex: Exchange, ctx: HandlerContext, target: RequestTarget, onBug: (err: unknown) => void): Promise<void> {
  try {
    await dispatch(ex, ctx, target);
  } catch (err) {
    const registryError = isRegistryError(err) ? err : new RegistryError('UNKNOWN', 'internal error in the mirror');
    if (!isRegistryError(err)) onBug(err);
    if (ex.res.headersSent) {
      ex.res.destroy();
      return;
    }
    ex.bodyBytes += sendRegistryError(ex.res as ServerResponse<IncomingMessage>, registryError, ex.req.method ?? 'GET');
  }
}
