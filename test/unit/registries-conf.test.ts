import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseReference } from '../../src/oci/reference.js';
import { endpointsFor, loadRegistriesConf, parseRegistriesConf, prefixMatchLength } from '../../src/registry/registries-conf.js';
import { UserError } from '../../src/util/errors.js';

const CONF = `
unqualified-search-registries = ["registry.access.redhat.com", "docker.io"]

[[registry]]
prefix = "quay.io/openshift-release-dev/ocp-v4.0-art-dev"
location = "quay.io/openshift-release-dev/ocp-v4.0-art-dev"
[[registry.mirror]]
location = "127.0.0.1:5000/openshift-release-dev/ocp-v4.0-art-dev"
insecure = true
pull-from-mirror = "digest-only"
[[registry.mirror]]
location = "mirror.example.com/ocp"
pull-from-mirror = "tag-only"
[[registry.mirror]]
location = "any.example.com/ocp/"

[[registry]]
location = "quay.io"
insecure = true

[[registry]]
prefix = "example.com/foo"
location = "internal-registry-for-example.net/bar"

[[registry]]
prefix = "*.corp.example"
blocked = true
[[registry.mirror]]
location = "cache.local:8443/corp"

[[registry]]
location = "blocked.example/team"
blocked = true
mirror-by-digest-only = true
[[registry.mirror]]
location = "10.0.0.1:5000/team"

[[registry]]
prefix = "docker.io/library"
location = "docker.io/library"
`;

const conf = parseRegistriesConf(CONF, 'registries.conf');

function route(reference: string, byDigest?: boolean): string[] {
  const ref = parseReference(reference);
  return endpointsFor(conf, ref, byDigest ?? ref.digest !== undefined).map(
    (e) => `${e.host}/${e.path}${e.insecure ? ' insecure' : ''}${e.mirror ? ' mirror' : ''}`,
  );
}

const DIGEST = `sha256:${'a'.repeat(64)}`;

const cases: Array<{ name: string; reference: string; expected: string[] }> = [
  {
    name: 'a pull by digest uses digest-only and "all" mirrors in order, then the primary',
    reference: `quay.io/openshift-release-dev/ocp-v4.0-art-dev@${DIGEST}`,
    expected: [
      '127.0.0.1:5000/openshift-release-dev/ocp-v4.0-art-dev insecure mirror',
      'any.example.com/ocp mirror',
      'quay.io/openshift-release-dev/ocp-v4.0-art-dev',
    ],
  },
  {
    name: 'a pull by tag skips digest-only mirrors and uses tag-only ones',
    reference: 'quay.io/openshift-release-dev/ocp-v4.0-art-dev:4.16',
    expected: ['mirror.example.com/ocp mirror', 'any.example.com/ocp mirror', 'quay.io/openshift-release-dev/ocp-v4.0-art-dev'],
  },
  {
    name: 'the longest matching prefix wins; a shorter host-only entry applies elsewhere',
    reference: 'quay.io/other/image:1',
    expected: ['quay.io/other/image insecure'],
  },
  {
    name: 'a prefix matches only at a path-component boundary',
    reference: 'quay.io/openshift-release-dev/ocp-v4.0-art-dev-extra:1',
    expected: ['quay.io/openshift-release-dev/ocp-v4.0-art-dev-extra insecure'],
  },
  {
    name: 'location rewrites the prefix-rooted namespace',
    reference: 'example.com/foo/myimage:latest',
    expected: ['internal-registry-for-example.net/bar/myimage'],
  },
  {
    name: 'a wildcard prefix applies to subdomains; blocked leaves only the mirror',
    reference: 'build.corp.example/team/app:1',
    expected: ['cache.local:8443/corp/team/app mirror'],
  },
  {
    name: 'an unlisted registry is fetched from its own host',
    reference: 'registry.example.org/a/b:1',
    expected: ['registry.example.org/a/b'],
  },
  {
    name: 'docker.io is fetched from registry-1.docker.io',
    reference: 'docker.io/library/busybox:latest',
    expected: ['registry-1.docker.io/library/busybox'],
  },
  {
    name: 'mirror-by-digest-only lets the mirror serve digests of a blocked registry',
    reference: `blocked.example/team/app@${DIGEST}`,
    expected: ['10.0.0.1:5000/team/app mirror'],
  },
];

for (const c of cases) {
  test(c.name, () => {
    assert.deepEqual(route(c.reference), c.expected);
  });
}

test('a blocked registry with no mirror for a pull by tag fails with REGISTRY_BLOCKED naming it', () => {
  assert.throws(
    () => route('blocked.example/team/app:1'),
    (err: unknown) => err instanceof UserError && err.code === 'REGISTRY_BLOCKED' && err.message.includes('blocked.example/team/app'),
  );
});

test('a wildcard matches any depth of subdomain but not the bare domain', () => {
  assert.ok(prefixMatchLength('a.b.corp.example/x', '*.corp.example') > 0);
  assert.equal(prefixMatchLength('corp.example/x', '*.corp.example'), -1);
  assert.equal(prefixMatchLength('evilcorp.example/x', '*.corp.example'), -1);
  assert.ok(prefixMatchLength('a.corp.example:5000/x', '*.corp.example') > 0);
});

test('without a configuration file every reference is fetched from its own host', async () => {
  const empty = await loadRegistriesConf();
  assert.deepEqual(endpointsFor(empty, parseReference('quay.io/a/b:1'), false), [{ host: 'quay.io', path: 'a/b', insecure: false, mirror: false }]);
});

const invalid: Array<{ name: string; text: string; mentions: string }> = [
  { name: 'bad TOML', text: '[[registry]\nlocation = 1', mentions: 'not valid TOML' },
  { name: 'a non-boolean insecure', text: '[[registry]]\nlocation = "a.io"\ninsecure = "yes"', mentions: 'registry[0].insecure' },
  { name: 'an unknown pull-from-mirror', text: '[[registry]]\nlocation = "a.io"\n[[registry.mirror]]\nlocation = "b.io"\npull-from-mirror = "sometimes"', mentions: 'registry[0].mirror[0].pull-from-mirror' },
  { name: 'pull-from-mirror with mirror-by-digest-only', text: '[[registry]]\nlocation = "a.io"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = "b.io"\npull-from-mirror = "tag-only"', mentions: 'mirror-by-digest-only' },
  { name: 'a URL scheme in location', text: '[[registry]]\nlocation = "https://a.io"', mentions: 'URI schemes' },
  { name: 'a mirror without location', text: '[[registry]]\nlocation = "a.io"\n[[registry.mirror]]\ninsecure = true', mentions: 'registry[0].mirror[0].location' },
  { name: 'a wildcard in the middle', text: '[[registry]]\nprefix = "a.*.io"\nlocation = "b.io"', mentions: 'registry[0].prefix' },
  { name: 'an empty location without a wildcard prefix', text: '[[registry]]\nprefix = "a.io"', mentions: 'registry[0].location' },
  { name: 'a prefix given twice', text: '[[registry]]\nlocation = "a.io"\n[[registry]]\nlocation = "a.io"', mentions: 'more than once' },
];

for (const c of invalid) {
  test(`rejects ${c.name} with a UserError naming the file and key`, () => {
    assert.throws(
      () => parseRegistriesConf(c.text, '/etc/test.conf'),
      (err: unknown) => err instanceof UserError && err.code === 'REGISTRIES_CONF_INVALID' && err.message.includes('/etc/test.conf') && err.message.includes(c.mentions),
    );
  });
}

test('loadRegistriesConf reads a file and names a missing one', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-regconf-'));
  try {
    const file = path.join(dir, 'r.conf');
    await writeFile(file, '[[registry]]\nlocation = "a.io"\ninsecure = true\n');
    const loaded = await loadRegistriesConf(file);
    assert.equal(loaded.registries.length, 1);
    assert.equal(loaded.registries[0]!.insecure, true);
    await assert.rejects(loadRegistriesConf(path.join(dir, 'missing.conf')), (err: unknown) => err instanceof UserError && err.message.includes('missing.conf'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
