// Image references ("[host[:port]/]path[:tag][@digest]") parsed and normalised the way
// containers/image (docker/reference ParseNormalizedNamed) does, into a typed value used everywhere.

import { digestProblem, type Digest } from './digest.js';
import { UserError } from '../util/errors.js';

export const DOCKER_HUB = 'docker.io';
const NAME_TOTAL_LENGTH_MAX = 255;

// Grammar of distribution's reference package (regexp.go).
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const IPV6 = '\\[(?:[a-fA-F0-9:]+)\\]';
const DOMAIN = new RegExp(`^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|${IPV6})(?::[0-9]+)?$`);
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const HEX64 = /^[a-f0-9]{64}$/;

/** A repository: where images live, e.g. { domain: "quay.io", path: "openshift-release-dev/ocp-release" }. */
export interface Repository {
  readonly domain: string;
  readonly path: string;
}

/** A parsed, normalised image reference. At least one of tag and digest is set after `withDefaultTag`. */
export interface Reference extends Repository {
  readonly tag?: string;
  readonly digest?: Digest;
}

/** A reference that names content exactly: everything downstream of planning uses these. */
export interface DigestReference extends Reference {
  readonly digest: Digest;
}

function invalid(input: string, why: string): UserError {
  return new UserError('REFERENCE_INVALID', `invalid image reference "${input}": ${why}`, { subject: { kind: 'image', name: input } });
}

/** Why `path` is not a valid repository path for the distribution spec, or undefined when it is. */
export function repositoryPathProblem(path: string): string | undefined {
  if (path.length === 0) return 'empty repository name';
  for (const component of path.split('/')) {
    if (!PATH_COMPONENT.test(component)) {
      return /[A-Z]/.test(component)
        ? 'repository name must be lowercase'
        : `invalid path component "${component}" (lowercase letters, digits and single separators . _ __ -)`;
    }
  }
  return undefined;
}

export function isValidTag(tag: string): boolean {
  return TAG.test(tag);
}

/** Splits a name into domain and path with Docker's defaulting rules (docker.io, library/). */
function splitDomain(name: string): Repository {
  const slash = name.indexOf('/');
  const first = slash === -1 ? '' : name.slice(0, slash);
  let domain: string;
  let path: string;
  if (slash === -1 || (!first.includes('.') && !first.includes(':') && first !== 'localhost' && first.toLowerCase() === first)) {
    domain = DOCKER_HUB;
    path = name;
  } else {
    domain = first;
    path = name.slice(slash + 1);
  }
  if (domain === 'index.docker.io') domain = DOCKER_HUB;
  if (domain === DOCKER_HUB && !path.includes('/')) path = `library/${path}`;
  return { domain, path };
}

/** Parses and normalises an image reference; throws a UserError naming the input and the problem. */
export function parseReference(input: string): Reference {
  const text = input.trim();
  if (text.length === 0) throw invalid(input, 'empty reference');
  if (HEX64.test(text)) throw invalid(input, 'a bare 64-hex identifier is not a reference; write NAME@sha256:HEX');

  let rest = text;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    const digestText = rest.slice(at + 1);
    const problem = digestProblem(digestText);
    if (problem) throw invalid(input, `bad digest "${digestText}": ${problem}`);
    digest = digestText as Digest;
    rest = rest.slice(0, at);
  }

  let tag: string | undefined;
  const lastColon = rest.lastIndexOf(':');
  if (lastColon > rest.lastIndexOf('/')) {
    tag = rest.slice(lastColon + 1);
    rest = rest.slice(0, lastColon);
    if (!TAG.test(tag)) throw invalid(input, `bad tag "${tag}" (up to 128 of [A-Za-z0-9_.-], not starting with . or -)`);
  }

  if (rest.length === 0) throw invalid(input, 'missing repository name');
  const { domain, path } = splitDomain(rest);
  if (!DOMAIN.test(domain)) throw invalid(input, `bad registry host "${domain}"`);
  const problem = repositoryPathProblem(path);
  if (problem) throw invalid(input, problem);
  if (`${domain}/${path}`.length > NAME_TOTAL_LENGTH_MAX) {
    throw invalid(input, `repository name is longer than ${NAME_TOTAL_LENGTH_MAX} characters`);
  }
  return { domain, path, ...(tag !== undefined ? { tag } : {}), ...(digest !== undefined ? { digest } : {}) };
}

/** Like containers/image: a reference with neither tag nor digest means ":latest". */
export function withDefaultTag(ref: Reference): Reference {
  return ref.tag === undefined && ref.digest === undefined ? { ...ref, tag: 'latest' } : ref;
}

export function repositoryName(repo: Repository): string {
  return `${repo.domain}/${repo.path}`;
}

/** The canonical text: always with the domain, tag before digest, as containers/image prints it. */
export function formatReference(ref: Reference): string {
  return `${repositoryName(ref)}${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest !== undefined ? `@${ref.digest}` : ''}`;
}

/** "repo@digest" with any tag dropped: how pinned images and bundle entries name an image. */
export function digestReference(repo: Repository, digest: Digest): DigestReference {
  return { domain: repo.domain, path: repo.path, digest };
}

export function isDigestReference(ref: Reference): ref is DigestReference {
  return ref.digest !== undefined;
}
