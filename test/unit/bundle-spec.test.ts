import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parseBundleSpec } from '../../src/plan/bundle-spec.js';
import { exitStatusOf } from '../../src/cli/exit-status.js';
import { specFills } from '../../src/cli/spec-options.js';
import { UserError } from '../../src/util/errors.js';

const isSpecError = (pattern: RegExp) => (err: unknown) => err instanceof UserError && err.code === 'BUNDLE_SPEC_INVALID' && exitStatusOf(err) === 2 && pattern.test(err.message);

test('a bundle spec with every key parses into release, images, files relative to the spec, platforms and sizes', () => {
  const spec = parseBundleSpec([
    'description = "lab"',
    'release = "quay.io/openshift-release-dev/ocp-release:4.16.3-x86_64"',
    'images = [',
    '  "registry.example.com/tools/debug:1.0",',
    '  "quay.io/acme/agent@sha256:' + 'a'.repeat(64) + '",',
    ']',
    'images-from = ["more.txt"]',
    'platforms = ["linux/amd64", "linux/arm64"]',
    'split-size = "4GiB"',
    'output = "out/ocp.tar"',
    'sign-key = "/etc/keys/sign.pem"',
    'signatures = true',
  ].join('\n'), '/specs/ocp.toml');
  assert.equal(spec.release?.requestedAs, 'quay.io/openshift-release-dev/ocp-release:4.16.3-x86_64');
  assert.equal(spec.release?.origin, '/specs/ocp.toml:2');
  assert.deepEqual(spec.images.map((i) => [i.requestedAs, i.origin]), [
    ['registry.example.com/tools/debug:1.0', '/specs/ocp.toml:4'],
    [`quay.io/acme/agent@sha256:${'a'.repeat(64)}`, '/specs/ocp.toml:5'],
  ]);
  assert.deepEqual(spec.imagesFrom, ['/specs/more.txt']);
  assert.deepEqual(spec.platforms, [{ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm64' }]);
  assert.equal(spec.splitSize, 4 * 2 ** 30);
  assert.equal(spec.output, '/specs/out/ocp.tar');
  assert.equal(spec.signKey, '/etc/keys/sign.pem');
  assert.equal(spec.signatures, true);
});

test('signatures must be a boolean', () => {
  assert.equal(parseBundleSpec('signatures = false\n', 'x.toml').signatures, false);
  assert.throws(() => parseBundleSpec('signatures = "yes"\n', 'x.toml'), isSpecError(/^x\.toml:1: key "signatures": must be true or false/));
});

test('platforms = "all" and a split size in bytes are accepted', () => {
  const spec = parseBundleSpec('platforms = "all"\nsplit-size = 1048576\n', 'x.toml');
  assert.equal(spec.platforms, 'all');
  assert.equal(spec.splitSize, 1048576);
});

test('an unknown key is refused naming file, line and key', () => {
  assert.throws(() => parseBundleSpec('release = "quay.io/a/b:1"\nimagez = ["x"]\n', 'spec.toml'), isSpecError(/^spec\.toml:2: key "imagez": unknown key/));
});

test('bad values are refused naming file and key', () => {
  assert.throws(() => parseBundleSpec('split-size = "four gigs"\n', 's.toml'), isSpecError(/s\.toml:1: key "split-size"/));
  assert.throws(() => parseBundleSpec('split-size = 0\n', 's.toml'), isSpecError(/key "split-size"/));
  assert.throws(() => parseBundleSpec('platforms = ["linux"]\n', 's.toml'), isSpecError(/key "platforms".*invalid platform "linux"/));
  assert.throws(() => parseBundleSpec('images = "quay.io/a/b:1"\nrelease = 4\n', 's.toml'), isSpecError(/s\.toml:2: key "release": must be a non-empty string/));
  assert.throws(() => parseBundleSpec('images = [1, 2]\n', 's.toml'), isSpecError(/key "images"/));
  assert.throws(() => parseBundleSpec('release = \n', 's.toml'), isSpecError(/s\.toml:1: not valid TOML/));
});

test('a bad reference in a spec names the file and the line it is on', () => {
  assert.throws(
    () => parseBundleSpec('images = [\n  "quay.io/ok/image:1",\n  "quay.io/Bad/Image:1",\n]\n', 'spec.toml'),
    (err: unknown) => err instanceof UserError && err.code === 'REFERENCE_INVALID' && /^spec\.toml:3: invalid image reference "quay.io\/Bad\/Image:1"/.test(err.message),
  );
});

test('the example bundle specs in bundles/ parse', async () => {
  for (const name of ['ocp-4.16.toml', 'sample.toml']) {
    // Compiled to dist/test/unit/, three levels below the repository root.
    const file = fileURLToPath(new URL(`../../../bundles/${name}`, import.meta.url));
    const spec = parseBundleSpec(await readFile(file, 'utf8'), file);
    assert.ok(spec.release, `${name} names a release`);
    assert.ok(spec.images.length > 0, `${name} names extra images`);
  }
  // The keys ocp-4.16.toml shows commented out parse too, once uncommented.
  const file = fileURLToPath(new URL('../../../bundles/ocp-4.16.toml', import.meta.url));
  const uncommented = (await readFile(file, 'utf8')).replace(/^# ([a-z-]+ = )/gm, '$1');
  const spec = parseBundleSpec(uncommented, file);
  assert.deepEqual([spec.channel?.version, spec.signatureStore !== undefined, spec.releaseKeyring, spec.since], ['4.16.3', true, '/etc/pki/rpm-gpg/RPM-GPG-KEY-redhat-release', '/media/usb/worker-0.inventory.json']);
});

test('the keys for a delta, a channel and release signatures parse; paths are relative to the spec', () => {
  const spec = parseBundleSpec([
    'channel = "stable-4.16"',
    'min-version = "4.16.3"',
    'max-version = "4.16.5"',
    'graph-url = "https://osus.example.com/api/upgrades_info/graph"',
    'signature-store = "https://mirror.example.com/signatures/"',
    'release-keyring = "keys/redhat.gpg"',
    'allow-unsigned-releases = true',
    'since = "../media/ocp-4.16.3.tar.seal.json"',
  ].join('\n'), '/specs/ocp.toml');
  assert.deepEqual(spec.channel, { name: 'stable-4.16', minVersion: '4.16.3', maxVersion: '4.16.5' });
  assert.equal(spec.graphUrl, 'https://osus.example.com/api/upgrades_info/graph');
  assert.equal(spec.signatureStore, 'https://mirror.example.com/signatures/');
  assert.equal(spec.releaseKeyring, '/specs/keys/redhat.gpg');
  assert.equal(spec.allowUnsignedReleases, true);
  assert.equal(spec.since, '/media/ocp-4.16.3.tar.seal.json');
  assert.deepEqual(parseBundleSpec('channel = "fast-4.17"\nversion = "4.17.0-rc.1"\n', 'x.toml').channel, { name: 'fast-4.17', version: '4.17.0-rc.1' });
  assert.deepEqual(parseBundleSpec('channel = "stable-4.16"\n', 'x.toml').channel, { name: 'stable-4.16' }, 'alone: the newest');
  assert.equal(parseBundleSpec('since = "/abs/prev.tar"\n', '/specs/x.toml').since, '/abs/prev.tar');
});

test('bad values of the delta, channel and signature keys are refused naming file, line and key', () => {
  const cases: Array<[string, RegExp]> = [
    ['channel = ""\n', /^s\.toml:1: key "channel": must be a non-empty string/],
    ['channel = 416\n', /^s\.toml:1: key "channel": must be a non-empty string/],
    ['channel = "stable-4.16"\nversion = "4.16"\n', /^s\.toml:2: key "version": "4\.16" is not a release version such as 4\.16\.3/],
    ['channel = "stable-4.16"\nmin-version = "latest"\nmax-version = "4.16.5"\n', /^s\.toml:2: key "min-version": "latest" is not a release version/],
    ['version = "4.16.3"\n', /^s\.toml:1: key "version": goes with channel/],
    ['max-version = "4.16.3"\n', /^s\.toml:1: key "max-version": goes with channel/],
    ['channel = "c"\nversion = "4.16.3"\nmin-version = "4.16.1"\nmax-version = "4.16.3"\n', /^s\.toml:2: key "version": cannot be combined with min-version or max-version/],
    ['channel = "c"\nmin-version = "4.16.1"\n', /^s\.toml:2: key "min-version": min-version and max-version go together/],
    ['channel = "c"\nmax-version = "4.16.1"\n', /^s\.toml:2: key "max-version": min-version and max-version go together/],
    ['channel = "c"\nmin-version = "4.16.10"\nmax-version = "4.16.9"\n', /^s\.toml:2: key "min-version": 4\.16\.10 is newer than max-version 4\.16\.9/],
    ['graph-url = "osus.example.com/graph"\n', /^s\.toml:1: key "graph-url": value "osus\.example\.com\/graph" is not a URL/],
    ['signature-store = "ftp://example.com/sigs"\n', /^s\.toml:1: key "signature-store": value "ftp:\/\/example\.com\/sigs" is not an http\(s\) URL/],
    ['signature-store = ["https://a"]\n', /^s\.toml:1: key "signature-store": must be a non-empty string/],
    ['release-keyring = "k.gpg"\n', /^s\.toml:1: key "release-keyring": goes with signature-store/],
    ['allow-unsigned-releases = true\n', /^s\.toml:1: key "allow-unsigned-releases": goes with signature-store/],
    ['signature-store = "https://a/"\nallow-unsigned-releases = "yes"\n', /^s\.toml:2: key "allow-unsigned-releases": must be true or false/],
    ['signature-store = "https://a/"\nrelease-keyring = 1\n', /^s\.toml:2: key "release-keyring": must be a non-empty string/],
    ['since = ""\n', /^s\.toml:1: key "since": must be a non-empty string/],
    ['since = true\n', /^s\.toml:1: key "since": must be a non-empty string/],
  ];
  for (const [text, why] of cases) assert.throws(() => parseBundleSpec(text, 's.toml'), isSpecError(why), text);
});

test('flags override the spec: a flag given wins, the spec fills the rest; --channel replaces the spec\'s channel with its versions', () => {
  const spec = parseBundleSpec([
    'channel = "stable-4.16"',
    'min-version = "4.16.3"',
    'max-version = "4.16.5"',
    'graph-url = "https://osus.example.com/graph"',
    'signature-store = "https://mirror.example.com/signatures/"',
    'release-keyring = "redhat.gpg"',
    'allow-unsigned-releases = true',
    'signatures = true',
    'since = "prev.tar"',
  ].join('\n'), '/specs/ocp.toml');
  assert.deepEqual(specFills({}, spec), {
    channel: 'stable-4.16',
    minVersion: '4.16.3',
    maxVersion: '4.16.5',
    graphUrl: 'https://osus.example.com/graph',
    signatures: true,
    signatureStore: 'https://mirror.example.com/signatures/',
    releaseKeyring: '/specs/redhat.gpg',
    allowUnsignedReleases: true,
    since: '/specs/prev.tar',
  });
  const flags = { graphUrl: 'http://127.0.0.1:1/graph', signatureStore: 'http://127.0.0.1:1/s/', releaseKeyring: 'mine.gpg', since: 'other.tar' };
  assert.deepEqual(specFills(flags, spec), { channel: 'stable-4.16', minVersion: '4.16.3', maxVersion: '4.16.5', signatures: true, allowUnsignedReleases: true });
  // --channel alone: that channel's newest release, none of the spec's versions.
  assert.deepEqual(specFills({ channel: 'fast-4.16' }, spec).channel ?? null, null);
  assert.equal(specFills({ channel: 'fast-4.16' }, spec).minVersion, undefined);
  // --version alone: the spec's channel at that version, without its range.
  const atVersion = specFills({ version: '4.16.4' }, spec);
  assert.deepEqual([atVersion.channel, atVersion.minVersion, atVersion.maxVersion], ['stable-4.16', undefined, undefined]);
  assert.deepEqual(specFills({}, parseBundleSpec('release = "quay.io/a/b:1"\n', 'x.toml')), {}, 'a spec without these keys fills nothing');
});
