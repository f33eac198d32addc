// The payload's optional `release-manifests/release-metadata` (kind cincinnati-metadata-v0): version,
// the versions it updates from, and free-form metadata such as the errata URL and architecture.

import { UserError } from '../util/errors.js';

export interface ReleaseMetadata {
  readonly version: string;
  readonly previous: readonly string[];
  readonly metadata: Readonly<Record<string, string>>;
}

export const RELEASE_METADATA_KIND = 'cincinnati-metadata-v0';

/** Parses release-metadata bytes from the payload `release` (named in errors). */
export function parseReleaseMetadata(bytes: Uint8Array | string, release: string): ReleaseMetadata {
  let doc: unknown;
  try {
    doc = JSON.parse(typeof bytes === 'string' ? bytes : Buffer.from(bytes).toString('utf8'));
  } catch (err) {
    throw invalid(release, `not JSON (${(err as Error).message})`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw invalid(release, 'not a JSON object');
  const m = doc as Record<string, unknown>;
  if (m.kind !== RELEASE_METADATA_KIND) throw invalid(release, `kind ${JSON.stringify(m.kind ?? '')} is not ${RELEASE_METADATA_KIND}`);
  if (typeof m.version !== 'string' || m.version === '') throw invalid(release, 'no version');
  const previous = Array.isArray(m.previous) ? m.previous.filter((p): p is string => typeof p === 'string') : [];
  const metadata: Record<string, string> = {};
  if (typeof m.metadata === 'object' && m.metadata !== null) {
    for (const [k, v] of Object.entries(m.metadata)) if (typeof v === 'string') metadata[k] = v;
  }
  return { version: m.version, previous, metadata };
}

function invalid(release: string, why: string): UserError {
  return new UserError('RELEASE_METADATA_INVALID', `invalid release-metadata in release payload ${release}: ${why}`, { subject: { kind: 'image', name: release } });
}
