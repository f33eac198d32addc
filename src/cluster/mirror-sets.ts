// ImageDigestMirrorSet and ImageTagMirrorSet (config.openshift.io/v1) sending pulls of a bundle's
// repositories to a mirror serving the bundle (`pin-preload serve` on HOST[:PORT]).

import type { Repository } from '../oci/reference.js';
import { repositoryName } from '../oci/reference.js';
import { UserError } from '../util/errors.js';

export const CONFIG_API_VERSION = 'config.openshift.io/v1';

// The CRDs' pattern for a mirror (ImageMirror) and for a source without wildcard, in openshift/api
// config/v1/types_image_digest_mirror_set.go (types_image_tag_mirror_set.go has the same):
//   ^((?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:(?:\.(?:…))+)?(?::[0-9]+)?)(?:(?:/[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?)+)?$
const LABEL = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const LOCATION_RULE = new RegExp(`^(${LABEL}(?:(?:\\.${LABEL})+)?(?::[0-9]+)?)(?:(?:/[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?)+)?$`);

/** Whether the API server accepts `location` as an IDMS/ITMS source or mirror. */
export function isMirrorLocation(location: string): boolean {
  return LOCATION_RULE.test(location);
}

/** `--mirror-host HOST[:PORT]`, checked so that every mirror location built on it is valid. */
export function parseMirrorHost(text: string): string {
  const host = text.trim();
  if (!/^[^/]+$/.test(host) || !isMirrorLocation(host)) {
    throw new UserError('USAGE', `--mirror-host "${text}" is not HOST or HOST:PORT (e.g. mirror.example.com:5000)`, { subject: { kind: 'option', name: '--mirror-host' } });
  }
  return host;
}

export interface MirrorRule {
  readonly source: string;
  readonly mirrors: readonly string[];
}

/**
 * Each repository's path at a mirror or a pushed-to registry: its own path, or `domain/path` when two
 * bundled repositories share a path under different registries (the mirror needs the registry in the
 * path to tell them apart, see docs/mirror.md). Keyed by the source repository name ("domain/path").
 */
export function mirrorPaths(repositories: readonly Repository[]): Map<string, string> {
  const byPath = new Map<string, Set<string>>();
  for (const r of repositories) byPath.set(r.path, (byPath.get(r.path) ?? new Set()).add(r.domain));
  const paths = new Map<string, string>();
  for (const r of [...repositories].sort((a, b) => repositoryName(a).localeCompare(repositoryName(b)))) {
    const source = repositoryName(r);
    if (paths.has(source)) continue;
    const shared = (byPath.get(r.path)?.size ?? 0) > 1;
    paths.set(source, `${shared ? `${r.domain}/` : ''}${r.path}`);
  }
  return paths;
}

/** One rule per repository: source `domain/path` → `HOST[:PORT]/path`, as the mirror serves it (mirrorPaths). */
export function mirrorRules(repositories: readonly Repository[], mirrorHost: string): MirrorRule[] {
  return [...mirrorPaths(repositories)].map(([source, at]) => ({ source, mirrors: [`${mirrorHost}/${at}`] }));
}

export interface MirrorSetObject {
  readonly apiVersion: typeof CONFIG_API_VERSION;
  readonly kind: 'ImageDigestMirrorSet' | 'ImageTagMirrorSet';
  readonly metadata: { readonly name: string };
  readonly spec: Record<string, ReadonlyArray<{ readonly source: string; readonly mirrors: readonly string[] }>>;
}

/** An ImageDigestMirrorSet: pulls by digest of the sources may come from the mirror (source stays allowed). */
export function imageDigestMirrorSet(name: string, rules: readonly MirrorRule[]): MirrorSetObject {
  return { apiVersion: CONFIG_API_VERSION, kind: 'ImageDigestMirrorSet', metadata: { name }, spec: { imageDigestMirrors: rules.map((r) => ({ source: r.source, mirrors: [...r.mirrors] })) } };
}

/** An ImageTagMirrorSet, for images the bundle resolved from a tag (the mirror serves those tags). */
export function imageTagMirrorSet(name: string, rules: readonly MirrorRule[]): MirrorSetObject {
  return { apiVersion: CONFIG_API_VERSION, kind: 'ImageTagMirrorSet', metadata: { name }, spec: { imageTagMirrors: rules.map((r) => ({ source: r.source, mirrors: [...r.mirrors] })) } };
}
