// GET /v2/_catalog?n=&last=: every served repository, host-qualified (one name per source repository),
// in lexical order, paginated with Link.

import { nextLink, pageQuery, paginate } from '../pagination.js';
import { sendJson, type Exchange, type HandlerContext } from './base.js';

export function getCatalog(ex: Exchange, ctx: HandlerContext): void {
  const { n, last } = pageQuery(ex.query);
  const page = paginate(ctx.store.repositories(), n, last);
  const headers: Record<string, string> = {};
  if (page.nextLast !== undefined && n !== null) headers.Link = nextLink('/v2/_catalog', n, page.nextLast);
  sendJson(ex, { repositories: page.entries }, 'application/json', headers);
}
