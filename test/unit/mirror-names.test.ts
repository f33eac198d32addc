// Which source repository a request name means: path form, host-qualified form, containerd's ?ns=,
// ambiguity between hosts, and the raw-path validation that keeps "..", "%2e" and the like out.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Repository } from '../../src/oci/reference.js';
import { candidateRepositories, requestNameProblem, resolveByContent, resolveRepository, type RepositoryDirectory } from '../../src/mirror/names.js';
import { parseRoute, splitTarget } from '../../src/mirror/routes.js';
import { isRegistryError } from '../../src/mirror/errors.js';

function directory(repos: Repository[]): RepositoryDirectory {
  return { repositoriesAtPath: (p) => repos.filter((r) => r.path === p) };
}

const quay = { domain: 'quay.io', path: 'openshift-release-dev/ocp-v4.0-art-dev' };
const other = { domain: 'registry.example.com', path: 'openshift-release-dev/ocp-v4.0-art-dev' };
const dotted = { domain: 'registry.example.com', path: 'my.org/app' };
const myOrg = { domain: 'my.org', path: 'app' };

test('a path-form name means the one repository with that path on any host', () => {
  assert.deepEqual(resolveRepository(directory([quay]), { name: quay.path }), { repository: quay });
});

test('a host-qualified name means that host\'s repository', () => {
  assert.deepEqual(resolveRepository(directory([quay, other]), { name: `quay.io/${quay.path}` }), { repository: quay });
  assert.deepEqual(resolveRepository(directory([quay, other]), { name: `registry.example.com/${quay.path}` }), { repository: other });
});

test('containerd\'s ns picks the host when two hosts share a path', () => {
  assert.deepEqual(resolveRepository(directory([quay, other]), { name: quay.path, ns: 'quay.io' }), { repository: quay });
  assert.deepEqual(resolveRepository(directory([quay, other]), { name: quay.path, ns: 'registry.example.com' }), { repository: other });
});

test('ns naming a host that does not have the path is an unknown name, not a fallback to another host', () => {
  const r = resolveRepository(directory([quay]), { name: quay.path, ns: 'registry.example.com' });
  assert.equal('miss' in r && r.miss, 'NAME_UNKNOWN');
});

test('an ambiguous path without ns is NAME_UNKNOWN telling to use /v2/<host>/<path> or ns', () => {
  const r = resolveRepository(directory([quay, other]), { name: quay.path });
  assert.ok('miss' in r);
  assert.equal(r.miss, 'NAME_UNKNOWN');
  assert.match(r.message, /ambiguous/);
  assert.match(r.message, /\/v2\/<host>\//);
  assert.match(r.message, /ns=/);
});

test('a digest request on an ambiguous path goes to the host whose content has the digest', () => {
  const holding = resolveByContent(directory([quay, other]), { name: quay.path }, (repo) => repo.domain === 'registry.example.com');
  assert.deepEqual(holding, { repository: other });
  const none = resolveByContent(directory([quay, other]), { name: quay.path }, () => false);
  assert.deepEqual(none, { repository: undefined });
});

test('a first component with a dot is read both as a host and as part of the path', () => {
  assert.deepEqual(candidateRepositories(directory([dotted, myOrg]), { name: 'my.org/app' }), [myOrg, dotted]);
  assert.deepEqual(resolveRepository(directory([dotted]), { name: 'my.org/app' }), { repository: dotted });
});

test('an unknown name is NAME_UNKNOWN', () => {
  const r = resolveRepository(directory([quay]), { name: 'nope/nothing' });
  assert.equal('miss' in r && r.miss, 'NAME_UNKNOWN');
});

test('request names follow the spec grammar: lowercase, no empty or dot-dot components, at most 255 characters', () => {
  assert.equal(requestNameProblem('openshift-release-dev/ocp-v4.0-art-dev'), undefined);
  assert.equal(requestNameProblem('quay.io/openshift-release-dev/ocp-release'), undefined);
  for (const bad of ['a/../b', '..', 'a//b', 'A/b', 'a/%2e%2e/b', 'a%2fb', '/a', 'a/', 'a/./b', 'a-/b', `${'a'.repeat(250)}/bbbbbb`]) {
    assert.notEqual(requestNameProblem(bad), undefined, bad);
  }
});

function routeError(target: string): string {
  try {
    parseRoute(splitTarget(target)!);
  } catch (err) {
    if (isRegistryError(err)) return err.code;
    throw err;
  }
  return 'none';
}

test('routes are parsed from the raw path without decoding it', () => {
  assert.deepEqual(parseRoute(splitTarget('/v2/a/b/manifests/v1?ns=quay.io')!), { kind: 'manifest', name: { name: 'a/b', ns: 'quay.io' }, reference: { tag: 'v1' } });
  assert.deepEqual(parseRoute(splitTarget(`/v2/a/manifests/b/blobs/sha256:${'a'.repeat(64)}`)!), { kind: 'blob', name: { name: 'a/manifests/b' }, digest: `sha256:${'a'.repeat(64)}` });
  assert.deepEqual(parseRoute(splitTarget(`/v2/a/manifests/sha256%3A${'b'.repeat(64)}`)!), { kind: 'manifest', name: { name: 'a' }, reference: { digest: `sha256:${'b'.repeat(64)}` } });
  assert.deepEqual(parseRoute(splitTarget('/v2/a/b/tags/list?n=2')!), { kind: 'tags', name: { name: 'a/b' } });
  assert.deepEqual(parseRoute(splitTarget('/v2/_catalog')!), { kind: 'catalog' });
  assert.deepEqual(parseRoute(splitTarget('/v2/')!), { kind: 'base' });
});

test('malformed names, digests and tags are refused with the spec codes before any lookup', () => {
  assert.equal(routeError('/v2/a/%2e%2e/b/manifests/v1'), 'NAME_INVALID');
  assert.equal(routeError('/v2/a/../b/manifests/v1'), 'NAME_INVALID');
  assert.equal(routeError('/v2/a//b/manifests/v1'), 'NAME_INVALID');
  assert.equal(routeError('/v2/Upper/case/manifests/v1'), 'NAME_INVALID');
  assert.equal(routeError(`/v2/${'a'.repeat(256)}/manifests/v1`), 'NAME_INVALID');
  assert.equal(routeError('/v2/a/b/manifests/v1?ns=bad%20host'), 'NAME_INVALID');
  assert.equal(routeError('/v2/a/b/blobs/sha256:abc'), 'DIGEST_INVALID');
  assert.equal(routeError('/v2/a/b/blobs/sha256:../../etc/passwd'), 'NOT_FOUND');
  assert.equal(routeError(`/v2/a/b/blobs/sha256:${'A'.repeat(64)}`), 'DIGEST_INVALID');
  // Not a tag, so no manifest: 404 MANIFEST_UNKNOWN (what the conformance suite requires), still before any lookup.
  assert.equal(routeError('/v2/a/b/manifests/.hidden'), 'MANIFEST_UNKNOWN');
  assert.equal(routeError('/v2/a/b/manifests/%2e%2e'), 'MANIFEST_UNKNOWN');
  assert.equal(routeError('/v2/a/b/nothing/x'), 'NOT_FOUND');
});
