// Property: whatever raw request target arrives, the route parser either refuses it with a registry
// error or yields a name and digest that are safe by construction (grammar-checked, no "." or ".."
// component, no "%", no "/" in a digest) — so nothing a client sends can become a file path.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseRoute, splitTarget } from '../../src/mirror/routes.js';
import { RegistryError } from '../../src/mirror/errors.js';
import { digestProblem } from '../../src/oci/digest.js';
import { expectOnly, FUZZ_OPTIONS } from '../support/fuzz.js';

const pieces = ['..', '.', '%2e', '%2E%2e', '%2f', '/', '//', 'a', 'b.c', 'quay.io', 'A', '_', '-', ':', 'sha256:', 'f'.repeat(64), 'manifests', 'blobs', 'referrers', 'tags', 'list', '_catalog', '?ns=', '%3A', '\\', '~', ' '];
const target = fc.oneof(
  fc.array(fc.constantFrom(...pieces), { maxLength: 12 }).map((p) => `/v2/${p.join('')}`),
  fc.array(fc.constantFrom(...pieces), { maxLength: 8 }).map((p) => `/v2/${p.join('/')}`),
  fc.string({ maxLength: 80 }).map((s) => `/v2/${s}`),
);

test('no raw target yields an unsafe name or digest', () => {
  fc.assert(
    fc.property(target, (raw) => {
      const split = splitTarget(raw);
      if (!split) return;
      const route = expectOnly(() => parseRoute(split), [RegistryError], raw);
      if (!route || !('name' in route)) return;
      const components = route.name.name.split('/');
      assert.ok(components.every((c) => c !== '' && c !== '.' && c !== '..' && /^[a-z0-9._-]+$/.test(c)), `unsafe name from ${raw}`);
      assert.ok(route.name.name.length <= 255);
      const digest = route.kind === 'manifest' ? route.reference.digest : route.kind === 'tags' ? undefined : route.digest;
      if (digest !== undefined) {
        assert.equal(digestProblem(digest), undefined);
        assert.ok(!digest.includes('/') && !digest.includes('.'), `unsafe digest from ${raw}`);
      }
    }),
    FUZZ_OPTIONS,
  );
});
