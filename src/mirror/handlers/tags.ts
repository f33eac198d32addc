// GET /v2/<name>/tags/list?n=&last=: the repository's tags in lexical order, paginated with Link.

import { RegistryError } from '../errors.js';
import type { RequestedName } from '../names.js';
import { nextLink, paginate, parsePageSize } from '../pagination.js';
import { found, sendJson, type Exchange, type HandlerContext } from './base.js';

/** n and last from the query; a bad n is the spec's PAGINATION_NUMBER_INVALID. */
export function pageQuery(query: URLSearchParams): { n: number | null; last: string | undefined } {
  const n = parsePageSize(query.get('n') ?? undefined);
  if (n === undefined) throw new RegistryError('PAGINATION_NUMBER_INVALID', `n must be a non-negative integer, not "${String(query.get('n')).slice(0, 50)}"`);
  return { n, last: query.get('last') ?? undefined };
}

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
