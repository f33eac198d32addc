import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseReference } from '../../src/oci/reference.js';
import { endpointsFor, loadRegistriesConf, parseRegistriesConf, prefixMatchLength, systemRegistriesConfFiles } from '../../src/registry/registries-conf.js';
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

test('without a configuration file every reference is fetched from its own host', async (t) => {
  const dirs = await containersDirs(t);
  const empty = await loadRegistriesConf(undefined, dirs);
  assert.deepEqual(empty.registries, []);
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

async function containersDirs(t: { after(fn: () => Promise<void>): void }): Promise<{ system: string; home: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-containers-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return { system: path.join(dir, 'etc', 'containers'), home: path.join(dir, 'home') };
}

async function put(file: string, text: string): Promise<string> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, text);
  return file;
}

test('without --registries-conf the system file, then its drop-ins in lexical order, then the user drop-ins are merged by prefix', async (t) => {
  const dirs = await containersDirs(t);
  await put(path.join(dirs.system, 'registries.conf'), 'unqualified-search-registries = ["docker.io"]\n[[registry]]\nlocation = "quay.io"\nblocked = true\n[[registry]]\nlocation = "a.io"\n');
  await put(path.join(dirs.system, 'registries.conf.d', '20-later.conf'), '[[registry]]\nprefix = "quay.io"\nlocation = "mirror-b.example"\n');
  await put(path.join(dirs.system, 'registries.conf.d', '10-early.conf'), '[[registry]]\nprefix = "quay.io"\nlocation = "mirror-a.example"\n');
  await put(path.join(dirs.system, 'registries.conf.d', 'notes.txt'), 'not TOML at all [');
  await mkdir(path.join(dirs.system, 'registries.conf.d', 'old.conf'));
  await put(path.join(dirs.home, '.config', 'containers', 'registries.conf.d', '50-mine.conf'), '[[registry]]\nlocation = "a.io"\ninsecure = true\n');
  assert.deepEqual(await systemRegistriesConfFiles(dirs), [
    path.join(dirs.system, 'registries.conf'),
    path.join(dirs.system, 'registries.conf.d', '10-early.conf'),
    path.join(dirs.system, 'registries.conf.d', '20-later.conf'),
    path.join(dirs.home, '.config', 'containers', 'registries.conf.d', '50-mine.conf'),
  ]);
  const conf = await loadRegistriesConf(undefined, dirs);
  assert.deepEqual(endpointsFor(conf, parseReference('quay.io/a/b:1'), false).map((e) => e.host), ['mirror-b.example'], 'the last drop-in replaced the whole quay.io entry, blocked included');
  assert.deepEqual(endpointsFor(conf, parseReference('a.io/x:1'), false), [{ host: 'a.io', path: 'x', insecure: true, mirror: false }], 'the user drop-in came last');
});

test('the user registries.conf replaces the system file and the system drop-ins; --registries-conf replaces everything', async (t) => {
  const dirs = await containersDirs(t);
  await put(path.join(dirs.system, 'registries.conf'), '[[registry]]\nlocation = "quay.io"\nblocked = true\n');
  await put(path.join(dirs.system, 'registries.conf.d', '10-system.conf'), '[[registry]]\nlocation = "b.io"\nblocked = true\n');
  const userMain = await put(path.join(dirs.home, '.config', 'containers', 'registries.conf'), '[[registry]]\nlocation = "c.io"\nblocked = true\n');
  const conf = await loadRegistriesConf(undefined, dirs);
  assert.deepEqual(conf.registries.map((r) => r.prefix), ['c.io']);
  assert.throws(() => endpointsFor(conf, parseReference('c.io/x:1'), false), (err: unknown) => err instanceof UserError && err.code === 'REGISTRY_BLOCKED' && err.message.includes(userMain), 'a block names the file it came from');
  const explicit = await put(path.join(dirs.home, 'explicit.conf'), '[[registry]]\nlocation = "d.io"\n');
  assert.deepEqual((await loadRegistriesConf(explicit, dirs)).registries.map((r) => r.prefix), ['d.io']);
});

test('a v1 registries.conf among the system files is refused with an error naming that file', async (t) => {
  const dirs = await containersDirs(t);
  await put(path.join(dirs.system, 'registries.conf'), '[[registry]]\nlocation = "quay.io"\n');
  const v1 = await put(path.join(dirs.system, 'registries.conf.d', '30-old.conf'), "[registries.search]\nregistries = ['registry1.com']\n[registries.insecure]\nregistries = []\n");
  await assert.rejects(loadRegistriesConf(undefined, dirs), (err: unknown) =>
    err instanceof UserError && err.code === 'REGISTRIES_CONF_INVALID' && err.message.startsWith(`${v1}: this is the v1 format`) && /--registries-conf/.test(err.hint ?? ''));
});
