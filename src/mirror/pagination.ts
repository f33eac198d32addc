// The spec's list pagination (tags/list and _catalog): n and last read from the query, lexical order, `last`
// exclusive, at most `n` entries, and a Link rel="next" when entries remain.

import { RegistryError } from './errors.js';

export interface Page {
  readonly entries: readonly string[];
  /** The `last` to ask for the next page with, when the list was cut short. */
  readonly nextLast?: string;
}

/** Parses `n`: absent → no limit; a non-negative integer; anything else → undefined (invalid). */
export function parsePageSize(n: string | undefined): number | null | undefined {
  if (n === undefined) return null;
  if (!/^\d{1,9}$/.test(n)) return undefined;
  return Number(n);
}

/** n and last from the query; a bad n is the spec's PAGINATION_NUMBER_INVALID. */
export function pageQuery(query: URLSearchParams): { n: number | null; last: string | undefined } {
  const n = parsePageSize(query.get('n') ?? undefined);
  if (n === undefined) throw new RegistryError('PAGINATION_NUMBER_INVALID', `n must be a non-negative integer, not "${String(query.get('n')).slice(0, 50)}"`);
  return { n, last: query.get('last') ?? undefined };
}

export function paginate(sorted: readonly string[], n: number | null, last: string | undefined): Page {
  let from = 0;
  if (last !== undefined) {
    from = sorted.findIndex((v) => v > last);
    if (from === -1) from = sorted.length;
  }
  if (n === null) return { entries: sorted.slice(from) };
  const entries = sorted.slice(from, from + n);
  const more = from + n < sorted.length && n > 0;
  return more ? { entries, nextLast: entries[entries.length - 1]! } : { entries };
}

/** `<path?n=N&last=L[&ns=]>; rel="next"` with the values percent-encoded. */
export function nextLink(path: string, n: number, last: string, extra: Readonly<Record<string, string>> = {}): string {
  const query = new URLSearchParams({ n: String(n), last, ...extra });
  return `<${path}?${query.toString()}>; rel="next"`;
}
