// Which source repository a request name means. A source "quay.io/a/b" is served at /v2/a/b/… (what a
// registries.conf mirror location "127.0.0.1:5000/a/b" asks for) and at /v2/quay.io/a/b/…; containerd's
// hosts.toml mirrors add ?ns=quay.io. docs/mirror.md states these rules for users.

import { repositoryName, repositoryPathProblem, type Repository } from '../oci/reference.js';

export const REQUEST_NAME_MAX = 255;

// A registry host as containerd sends it in ?ns= (distribution's reference grammar, with a port).
const HOST_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const HOST = new RegExp(`^(?:${HOST_COMPONENT}(?:\\.${HOST_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?$`);

/** A request name (already checked against the spec grammar) and the ns containerd added, if any. */
export interface RequestedName {
  readonly name: string;
  readonly ns?: string;
}

/** What a store knows about its repositories, for name resolution. */
export interface RepositoryDirectory {
  /** Every known source repository whose path is `path`, on any host, in a stable order. */
  repositoriesAtPath(path: string): readonly Repository[];
}

/** A lookup that failed at the name: the spec code and a message for the client. */
export interface NameMiss {
  readonly miss: 'NAME_UNKNOWN';
  readonly message: string;
}

/** Why `name` (from the URL, not decoded) is not a servable repository name, or undefined. */
export function requestNameProblem(name: string): string | undefined {
  if (name.length > REQUEST_NAME_MAX) return `repository name is longer than ${REQUEST_NAME_MAX} characters`;
  return repositoryPathProblem(name);
}

/** Why `ns` is not a registry host, or undefined. */
export function namespaceProblem(ns: string): string | undefined {
  return HOST.test(ns) && ns.length <= REQUEST_NAME_MAX ? undefined : `ns "${ns}" is not a registry host`;
}

/** Docker Hub's two names are one registry, as in reference.ts. */
function canonicalHost(host: string): string {
  const lower = host.toLowerCase();
  return lower === 'index.docker.io' || lower === 'registry-1.docker.io' ? 'docker.io' : lower;
}

function sameRepository(a: Repository, b: Repository): boolean {
  return a.domain === b.domain && a.path === b.path;
}

/** A name whose first component looks like a host ("quay.io/a/b") may be a host-qualified request. */
function hostQualified(name: string): Repository | undefined {
  const slash = name.indexOf('/');
  if (slash <= 0) return undefined;
  const first = name.slice(0, slash);
  if (!first.includes('.') && first !== 'localhost') return undefined;
  return { domain: canonicalHost(first), path: name.slice(slash + 1) };
}

/**
 * Every known source repository the request may mean. With ns: that host only (the path as sent, or
 * with the host repeated in front). Without: the host-qualified reading first, then every host that has
 * the path, so the order is stable and the qualified form wins a digest tie.
 */
export function candidateRepositories(directory: RepositoryDirectory, requested: RequestedName): Repository[] {
  const out: Repository[] = [];
  const add = (repo: Repository) => {
    if (!out.some((r) => sameRepository(r, repo))) out.push(repo);
  };
  const qualified = hostQualified(requested.name);
  if (requested.ns !== undefined) {
    const host = canonicalHost(requested.ns);
    for (const repo of directory.repositoriesAtPath(requested.name)) if (repo.domain === host) add(repo);
    if (qualified && qualified.domain === host) {
      for (const repo of directory.repositoriesAtPath(qualified.path)) if (repo.domain === host) add(repo);
    }
    return out;
  }
  if (qualified) for (const repo of directory.repositoriesAtPath(qualified.path)) if (repo.domain === qualified.domain) add(repo);
  for (const repo of directory.repositoriesAtPath(requested.name)) add(repo);
  return out;
}

function unknownName(requested: RequestedName): NameMiss {
  const where = requested.ns !== undefined ? ` on host ${requested.ns}` : '';
  return { miss: 'NAME_UNKNOWN', message: `repository ${requested.name}${where} is not in any registered bundle` };
}

/**
 * The one repository a name-level request (a tag, the tag list, referrers) means. Two hosts with the
 * same path and no ns is ambiguous: a tag may differ between them, so we refuse rather than guess.
 */
export function resolveRepository(directory: RepositoryDirectory, requested: RequestedName): { repository: Repository } | NameMiss {
  const candidates = candidateRepositories(directory, requested);
  const only = candidates[0];
  if (!only) return unknownName(requested);
  if (candidates.length === 1) return { repository: only };
  const hosts = candidates.map(repositoryName).join(', ');
  return {
    miss: 'NAME_UNKNOWN',
    message: `repository name ${requested.name} is ambiguous: it is ${hosts}; request /v2/<host>/${requested.name}/… or add ?ns=<host>`,
  };
}

/**
 * The repository that holds a digest: content-addressed requests are unambiguous by content, so the
 * first candidate holding it wins. `undefined` repository = the name is known but none holds the digest.
 */
export function resolveByContent(
  directory: RepositoryDirectory,
  requested: RequestedName,
  holds: (repository: Repository) => boolean,
): { repository: Repository | undefined } | NameMiss {
  const candidates = candidateRepositories(directory, requested);
  if (candidates.length === 0) return unknownName(requested);
  return { repository: candidates.find(holds) };
}

/** The names under which a source repository is served, host-qualified first. */
export function servedNames(repository: Repository): string[] {
  return [repositoryName(repository), repository.path];
}
