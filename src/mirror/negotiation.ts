// Manifest content negotiation as the reference registry does it (registry/handlers/manifests.go): an
// OCI manifest or index the client does not accept is "unknown"; a Docker manifest list asked for by
// tag by a client that does not accept lists is answered with its linux/amd64 child.

import { MediaType } from '../oci/media-types.js';

/** The media types a request's Accept header(s) allow; `all` when absent or a wildcard covers them. */
export interface AcceptedTypes {
  readonly all: boolean;
  readonly types: ReadonlySet<string>;
}

/** Clients send the same few Accept headers on every request: parse each once (bounded, so odd ones cannot grow it). */
const parsedAccept = new Map<string, AcceptedTypes>();
const PARSED_ACCEPT_MAX = 64;

export function parseAccept(header: string | readonly string[] | undefined): AcceptedTypes {
  if (typeof header !== 'string') return parseAcceptValues(header);
  let accepted = parsedAccept.get(header);
  if (accepted === undefined) {
    if (parsedAccept.size >= PARSED_ACCEPT_MAX) parsedAccept.clear();
    accepted = parseAcceptValues(header);
    parsedAccept.set(header, accepted);
  }
  return accepted;
}

function parseAcceptValues(header: string | readonly string[] | undefined): AcceptedTypes {
  if (header === undefined) return { all: true, types: new Set() };
  const values = (typeof header === 'string' ? [header] : header).flatMap((h) => h.split(','));
  const types = new Set<string>();
  let all = false;
  for (const value of values) {
    const [type = '', ...params] = value.split(';').map((p) => p.trim().toLowerCase());
    if (type === '') continue;
    if (params.some((p) => /^q=0(\.0*)?$/.test(p))) continue; // q=0 means "not acceptable"
    if (type === '*/*' || type === 'application/*') all = true;
    else types.add(type);
  }
  // A header with only blanks or q=0 entries says nothing useful; treat it as absent.
  return { all: all || (types.size === 0 && !values.some((v) => v.trim() !== '')), types };
}

function accepts(accepted: AcceptedTypes, type: string): boolean {
  return accepted.all || accepted.types.has(type);
}

export type Negotiation =
  | { readonly kind: 'serve' }
  | { readonly kind: 'not-acceptable'; readonly message: string }
  /** Serve the linux/amd64 child of this Docker manifest list instead (look it up, then negotiate again). */
  | { readonly kind: 'platform-child' };

export function negotiate(storedType: string, accepted: AcceptedTypes, byTag: boolean): Negotiation {
  if (storedType === MediaType.ociManifest && !accepts(accepted, storedType)) {
    return { kind: 'not-acceptable', message: 'OCI manifest found, but accept header does not support OCI manifests' };
  }
  if (storedType === MediaType.ociIndex && !accepts(accepted, storedType)) {
    return { kind: 'not-acceptable', message: 'OCI index found, but accept header does not support OCI indexes' };
  }
  if (storedType === MediaType.dockerManifestList && byTag && !accepts(accepted, storedType)) return { kind: 'platform-child' };
  return { kind: 'serve' };
}
