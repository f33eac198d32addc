import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parseBundleSpec } from '../../src/plan/bundle-spec.js';
import { exitStatusOf } from '../../src/cli/exit-status.js';
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
});
