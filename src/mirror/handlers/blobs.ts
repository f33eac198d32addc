// GET|HEAD /v2/<name>/blobs/<digest>: the blob's bytes straight from the store's file range, whole or one
// Range, with bounded memory in flight; the file read stops when the client goes away.

import type { Digest } from '../../oci/digest.js';
import { errnoCode } from '../../util/errors.js';
import { RegistryError } from '../errors.js';
import type { RequestedName } from '../names.js';
import { parseRangeHeader } from '../range.js';
import { found, type Exchange, type HandlerContext } from './base.js';

const CLIENT_GONE = new Error('the response closed');

export async function getBlob(ex: Exchange, ctx: HandlerContext, name: RequestedName, digest: Digest): Promise<void> {
  const blob = found(ctx.store.statBlob(name, digest));
  const { res } = ex;
  res.setHeader('Docker-Content-Digest', blob.digest);
  res.setHeader('ETag', `"${blob.digest}"`);
  res.setHeader('Accept-Ranges', 'bytes');
  res.setHeader('Cache-Control', 'max-age=31536000'); // content-addressed: it never changes
  const range = parseRangeHeader(ex.req.headers.range, blob.size);
  if (range.kind === 'unsatisfiable') {
    res.statusCode = 416;
    res.setHeader('Content-Range', `bytes */${blob.size}`);
    res.setHeader('Content-Length', 0);
    res.end();
    return;
  }
  res.setHeader('Content-Type', 'application/octet-stream');
  if (range.kind === 'range') {
    res.statusCode = 206;
    res.setHeader('Content-Range', `bytes ${range.range.start}-${range.range.end}/${blob.size}`);
    res.setHeader('Content-Length', range.range.end - range.range.start + 1);
  } else {
    res.statusCode = 200;
    res.setHeader('Content-Length', blob.size);
  }
  if (ex.req.method === 'HEAD' || blob.size === 0) {
    res.end();
    return;
  }
  const release = ctx.admitBlobStream();
  if (!release) throw new RegistryError('TOOMANYREQUESTS', 'too many blob downloads at once; retry shortly', null, { 'Retry-After': '1' });
  // The client went away (or the response ended): stop reading the file, and abandon any chunk still held.
  // Aborted on every 'close', finished or not: a write Node dropped (the socket destroyed just before the
  // last chunk, before 'close') never calls back, yet the response still finishes. The reason given spares
  // abort() building a DOMException, stack and all, per download.
  const gone = new AbortController();
  res.once('close', () => gone.abort(CLIENT_GONE));
  const counted = {
    write: (chunk: Uint8Array, done: (err?: Error | null) => void) => {
      ex.bodyBytes += chunk.length;
      return res.write(chunk, done);
    },
  };
  try {
    await ctx.store.openBlob(blob, range.kind === 'range' ? range.range : undefined).copyTo(counted, gone.signal);
  } catch (err) {
    // Before the first byte the client can still get a proper answer (the bundle file vanished, or I/O failed).
    if (!res.headersSent) {
      const code = errnoCode(err);
      throw new RegistryError(code === 'ENOENT' ? 'BLOB_UNKNOWN' : 'UNKNOWN', `blob ${blob.digest} could not be read from its bundle (${code ?? (err as Error).message})`);
    }
    res.destroy(err as Error);
    return;
  } finally {
    release();
  }
  if (!gone.signal.aborted) res.end();
}
