// The distribution spec's error codes as one table (code → HTTP status, default message), and the one
// place that renders them as `{"errors":[{code,message,detail}]}`. Handlers raise; nobody else formats.

import type { ServerResponse } from 'node:http';

export const API_VERSION_HEADER = 'Docker-Distribution-API-Version';

export const REGISTRY_ERRORS = {
  BLOB_UNKNOWN: { status: 404, message: 'blob unknown to registry' },
  MANIFEST_UNKNOWN: { status: 404, message: 'manifest unknown' },
  NAME_UNKNOWN: { status: 404, message: 'repository name not known to registry' },
  NAME_INVALID: { status: 400, message: 'invalid repository name' },
  DIGEST_INVALID: { status: 400, message: 'provided digest did not match uploaded content' },
  // Never sent by this read-only mirror (an invalid tag in a GET is MANIFEST_UNKNOWN, see routes.ts); kept for the table.
  TAG_INVALID: { status: 400, message: 'manifest tag did not match URI' },
  PAGINATION_NUMBER_INVALID: { status: 400, message: 'invalid number of results requested' },
  UNSUPPORTED: { status: 405, message: 'the operation is unsupported' },
  UNAUTHORIZED: { status: 401, message: 'authentication required' },
  DENIED: { status: 403, message: 'requested access to the resource is denied' },
  TOOMANYREQUESTS: { status: 429, message: 'too many requests' },
  NOT_FOUND: { status: 404, message: 'not found' },
  UNKNOWN: { status: 500, message: 'unknown error' },
} as const satisfies Record<string, { status: number; message: string }>;

export type RegistryErrorCode = keyof typeof REGISTRY_ERRORS;

/** An error a handler raises to answer the client; carries a spec code, never an HTTP detail. */
export class RegistryError extends Error {
  constructor(
    readonly code: RegistryErrorCode,
    message: string = REGISTRY_ERRORS[code].message,
    readonly detail: unknown = null,
    /** Extra response headers the code calls for (Allow on 405, Retry-After on 429). */
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
    this.name = 'RegistryError';
  }

  get status(): number {
    return REGISTRY_ERRORS[this.code].status;
  }
}

export function isRegistryError(err: unknown): err is RegistryError {
  return err instanceof RegistryError;
}

/** Writes the spec's error body (no body for HEAD, as HTTP requires) and the code's status. */
export function sendRegistryError(res: ServerResponse, err: RegistryError, method: string): number {
  const body = Buffer.from(JSON.stringify({ errors: [{ code: err.code, message: err.message, detail: err.detail }] }));
  // A handler may have set headers for a success it then could not give (Content-Range, a blob's length).
  for (const name of res.getHeaderNames()) if (name !== API_VERSION_HEADER.toLowerCase()) res.removeHeader(name);
  res.statusCode = err.status;
  for (const [k, v] of Object.entries(err.headers)) res.setHeader(k, v);
  res.setHeader('Content-Type', 'application/json');
  res.setHeader('Content-Length', body.length);
  if (method === 'HEAD') {
    res.end();
    return 0;
  }
  res.end(body);
  return body.length;
}
