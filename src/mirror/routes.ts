// Parses the raw request target of a /v2/ request into a typed, validated route. The path is never
// percent-decoded (so "%2e%2e" can never become ".."): names must match the spec grammar as sent.

import { digestProblem, type Digest } from '../oci/digest.js';
import { isValidTag } from '../oci/reference.js';
import { RegistryError } from './errors.js';
import { namespaceProblem, requestNameProblem, type RequestedName } from './names.js';
import type { ManifestReference } from './store.js';

export type RouteKind = 'base' | 'catalog' | 'manifest' | 'blob' | 'tags' | 'referrers';

export type Route =
  | { readonly kind: 'base' }
  | { readonly kind: 'catalog' }
  | { readonly kind: 'manifest'; readonly name: RequestedName; readonly reference: ManifestReference }
  | { readonly kind: 'blob'; readonly name: RequestedName; readonly digest: Digest }
  | { readonly kind: 'tags'; readonly name: RequestedName }
  | { readonly kind: 'referrers'; readonly name: RequestedName; readonly digest: Digest };

/** A request target split into path and decoded query, before validation. */
export interface RequestTarget {
  readonly path: string;
  readonly query: URLSearchParams;
}

/** Origin-form targets only ("/v2/…"): an absolute URL would be normalised by URL(), undoing our checks. */
export function splitTarget(rawUrl: string): RequestTarget | undefined {
  if (!rawUrl.startsWith('/')) return undefined;
  const q = rawUrl.indexOf('?');
  return q === -1 ? { path: rawUrl, query: new URLSearchParams() } : { path: rawUrl.slice(0, q), query: new URLSearchParams(rawUrl.slice(q + 1)) };
}

export function isV2Path(path: string): boolean {
  return path === '/v2' || path.startsWith('/v2/');
}

const RESOURCE = /^(.+)\/(manifests|blobs|referrers)\/([^/]+)$/;
const TAGS = /^(.+)\/tags\/list$/;

/**
 * The shape of each route's path, anchored and without capture groups: Express routes on these (app.ts)
 * and routeKind() below decides with them, so the two cannot disagree. No groups, because Express would
 * percent-decode what a group captures; values are taken from the raw path by parseRoute alone.
 */
export const ROUTE_PATHS: Readonly<Record<RouteKind, RegExp>> = {
  base: /^\/v2\/?$/,
  catalog: /^\/v2\/_catalog$/,
  tags: /^\/v2\/.+\/tags\/list$/,
  manifest: /^\/v2\/.+\/manifests\/[^/]+$/,
  blob: /^\/v2\/.+\/blobs\/[^/]+$/,
  referrers: /^\/v2\/.+\/referrers\/[^/]+$/,
};

const KINDS = Object.keys(ROUTE_PATHS) as RouteKind[];

/** Which kind of route a /v2 path is, from its shape alone (for metrics labels, and before validation). */
export function routeKind(path: string): RouteKind | undefined {
  return KINDS.find((kind) => ROUTE_PATHS[kind].test(path));
}

function requestedName(text: string, query: URLSearchParams): RequestedName {
  // "%" is never part of a valid name, so rejecting it here also rejects every encoded "." or "/".
  const problem = requestNameProblem(text);
  if (problem) throw new RegistryError('NAME_INVALID', `invalid repository name "${text.slice(0, 300)}": ${problem}`);
  const ns = query.get('ns');
  if (ns === null || ns === '') return { name: text };
  const nsProblem = namespaceProblem(ns);
  if (nsProblem) throw new RegistryError('NAME_INVALID', nsProblem);
  return { name: text, ns };
}

/** Clients may escape the ":" of a digest; nothing else in a reference needs escaping. */
function referenceText(segment: string): string {
  return segment.replace(/%3a/gi, ':');
}

function digest(text: string): Digest {
  const problem = digestProblem(text);
  if (problem) throw new RegistryError('DIGEST_INVALID', `invalid digest "${text.slice(0, 200)}": ${problem}`);
  return text as Digest;
}

function manifestReference(text: string): ManifestReference {
  if (text.includes(':')) return { digest: digest(text) };
  // Not 400 TAG_INVALID: the distribution-spec conformance suite asks for ".INVALID_MANIFEST_NAME" and
  // requires 404 (a reference that cannot be a tag names no manifest). Still refused before any lookup.
  if (!isValidTag(text)) throw new RegistryError('MANIFEST_UNKNOWN', `manifest unknown: "${text.slice(0, 200)}" is not a valid tag (up to 128 of [A-Za-z0-9_.-], not starting with . or -)`);
  return { tag: text };
}

/**
 * The validated route of a /v2 path; RegistryError for a bad name/digest/tag, NOT_FOUND for no route.
 * `kind` is routeKind(target.path), passed in when the caller has already found it.
 */
export function parseRoute(target: RequestTarget, kind: RouteKind | undefined = routeKind(target.path)): Route {
  const rest = target.path.slice('/v2/'.length);
  switch (kind) {
    case 'base':
      return { kind };
    case 'catalog':
      return { kind };
    case 'tags':
      return { kind, name: requestedName(TAGS.exec(rest)![1]!, target.query) };
    case 'manifest':
    case 'blob':
    case 'referrers': {
      const [, nameText, , refText] = RESOURCE.exec(rest)! as unknown as [string, string, string, string];
      const name = requestedName(nameText, target.query);
      const ref = referenceText(refText);
      if (kind === 'manifest') return { kind, name, reference: manifestReference(ref) };
      return { kind, name, digest: digest(ref) };
    }
    default:
      throw new RegistryError('NOT_FOUND', `no such route: ${target.path.slice(0, 300)}`);
  }
}
