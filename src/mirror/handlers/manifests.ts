// GET|HEAD /v2/<name>/manifests/<tag|digest>: resolve, negotiate against Accept, answer with the stored
// bytes and their media type, length and digest (never re-serialised).

import { RegistryError } from '../errors.js';
import { negotiate, parseAccept } from '../negotiation.js';
import type { RequestedName } from '../names.js';
import type { ManifestReference, StoredManifest } from '../store.js';
import { found, type Exchange, type HandlerContext } from './base.js';

/** The manifest to serve after negotiation: the stored one, or a Docker list's linux/amd64 child. */
function negotiated(ctx: HandlerContext, ex: Exchange, name: RequestedName, reference: ManifestReference): StoredManifest {
  const accepted = parseAccept(ex.req.headers.accept);
  let manifest = found(ctx.store.resolveManifest(name, reference));
  let outcome = negotiate(manifest.mediaType, accepted, reference.tag !== undefined);
  if (outcome.kind === 'platform-child') {
    if (!manifest.defaultChild) {
      throw new RegistryError('MANIFEST_UNKNOWN', 'manifest list has no linux/amd64 image, and the accept header does not support manifest lists');
    }
    // The child lives in the same source repository: name it by host and path so it cannot be ambiguous.
    const repository = { name: manifest.repository.path, ns: manifest.repository.domain };
    manifest = found(ctx.store.resolveManifest(repository, { digest: manifest.defaultChild }));
    outcome = negotiate(manifest.mediaType, accepted, false);
  }
  if (outcome.kind === 'not-acceptable') throw new RegistryError('MANIFEST_UNKNOWN', outcome.message);
  return manifest;
}

export async function getManifest(ex: Exchange, ctx: HandlerContext, name: RequestedName, reference: ManifestReference): Promise<void> {
  const manifest = negotiated(ctx, ex, name, reference);
  const etag = `"${manifest.digest}"`;
  ex.res.setHeader('Docker-Content-Digest', manifest.digest);
  ex.res.setHeader('ETag', etag);
  if (ex.req.headers['if-none-match'] === etag) {
    ex.res.statusCode = 304;
    ex.res.end();
    return;
  }
  ex.res.statusCode = 200;
  ex.res.setHeader('Content-Type', manifest.mediaType);
  ex.res.setHeader('Content-Length', manifest.size);
  if (ex.req.method === 'HEAD') {
    ex.res.end();
    return;
  }
  const bytes = await ctx.store.manifestBytes(manifest);
  ex.bodyBytes += bytes.length;
  ex.res.end(bytes);
}
