// GET /v2/<name>/referrers/<digest>[?artifactType=]: an OCI index of the manifests whose subject is the
// digest (empty when none, never 404 for a known repository), filtered by artifact type on request.

import type { Digest } from '../../oci/digest.js';
import { MediaType } from '../../oci/media-types.js';
import type { RequestedName } from '../names.js';
import { found, sendJson, type Exchange, type HandlerContext } from './base.js';

export function getReferrers(ex: Exchange, ctx: HandlerContext, name: RequestedName, digest: Digest): void {
  const artifactType = ex.query.get('artifactType') || undefined;
  const { manifests } = found(ctx.store.referrers(name, digest, artifactType));
  const index = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests };
  sendJson(ex, index, MediaType.ociIndex, artifactType !== undefined ? { 'OCI-Filters-Applied': 'artifactType' } : {});
}
