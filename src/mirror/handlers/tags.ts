// GET /v2/<name>/tags/list?n=&last=: the repository's tags in lexical order, paginated with Link.

import type { RequestedName } from '../names.js';
import { nextLink, pageQuery, paginate } from '../pagination.js';
import { found, sendJson, type Exchange, type HandlerContext } from './base.js';

export function getTags(ex: Exchange, ctx: HandlerContext, name: RequestedName): void {
  const { n, last } = pageQuery(ex.query);
  const { tags } = found(ctx.store.tags(name));
  const page = paginate(tags, n, last);
  const headers: Record<string, string> = {};
  if (page.nextLast !== undefined && n !== null) {
    headers.Link = nextLink(`/v2/${name.name}/tags/list`, n, page.nextLast, name.ns !== undefined ? { ns: name.ns } : {});
  }
  sendJson(ex, { name: name.name, tags: page.entries }, 'application/json', headers);
}
