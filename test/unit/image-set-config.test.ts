// oc-mirror ImageSetConfiguration as selection input: both apiVersions, channels, architectures,
// additionalImages, blockedImages; unsupported sections and bad fields named with FILE:LINE.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { blockedBy, parseImageSetConfig } from '../../src/plan/image-set-config.js';
import { buildSelection } from '../../src/plan/selection.js';
import { exitStatusOf } from '../../src/cli/exit-status.js';
import { UserError } from '../../src/util/errors.js';

const ISC = `kind: ImageSetConfiguration
apiVersion: mirror.openshift.io/v2alpha1
mirror:
  platform:
    architectures:
      - amd64
    channels:
      - name: stable-4.16
        minVersion: 4.16.1
        maxVersion: 4.16.4
        shortestPath: true
        type: ocp
      - name: eus-4.18
  additionalImages:
    - name: registry.redhat.io/ubi9/ubi:latest
    - name: quay.io/acme/tool@sha256:${'a'.repeat(64)}
  blockedImages:
    - name: ".*/alertmanager.*"
`;

const failsAt = (code: string, where: RegExp) => (err: unknown) => err instanceof UserError && err.code === code && exitStatusOf(err) === 2 && where.test(err.message);

test('reads channels, architectures, additionalImages and blockedImages with the line of each', () => {
  const isc = parseImageSetConfig(ISC, 'isc.yaml');
  assert.deepEqual(isc.channels, [
    { name: 'stable-4.16', minVersion: '4.16.1', maxVersion: '4.16.4', shortestPath: true, full: false, origin: 'isc.yaml:8' },
    { name: 'eus-4.18', shortestPath: false, full: false, origin: 'isc.yaml:13' },
  ]);
  assert.deepEqual(isc.architectures, ['amd64']);
  assert.deepEqual(isc.images.map((i) => [i.requestedAs, i.origin]), [
    ['registry.redhat.io/ubi9/ubi:latest', 'isc.yaml:15'],
    [`quay.io/acme/tool@sha256:${'a'.repeat(64)}`, 'isc.yaml:16'],
  ]);
  assert.equal(isc.blocked.length, 1);
  // Unanchored, as oc-mirror's regexp.MatchString: the pattern may match anywhere in the name.
  assert.equal(blockedBy(isc.blocked, ['quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:1', 'quay.io/prometheus/alertmanager:v0.27'])?.text, '.*/alertmanager.*');
  assert.equal(blockedBy(isc.blocked, ['quay.io/acme/tool:1']), undefined);
});

test('the v1alpha2 apiVersion reads the same; any other is refused at its line', () => {
  const v1 = parseImageSetConfig(ISC.replace('v2alpha1', 'v1alpha2'), 'v1.yaml');
  assert.equal(v1.channels.length, 2);
  assert.throws(() => parseImageSetConfig(ISC.replace('v2alpha1', 'v3'), 'bad.yaml'), failsAt('IMAGE_SET_CONFIG_INVALID', /^bad\.yaml:2: apiVersion "mirror\.openshift\.io\/v3"/));
});

test('an operators or helm section is refused by name with exit 2', () => {
  const operators = `${ISC}  operators:\n    - catalog: registry.redhat.io/redhat/redhat-operator-index:v4.16\n`;
  assert.throws(() => parseImageSetConfig(operators, 'ops.yaml'), failsAt('IMAGE_SET_SECTION_UNSUPPORTED', /^ops\.yaml:19: mirror\.operators is not supported yet/));
  const helm = `${ISC}  helm:\n    repositories:\n      - name: podinfo\n`;
  assert.throws(() => parseImageSetConfig(helm, 'helm.yaml'), failsAt('IMAGE_SET_SECTION_UNSUPPORTED', /^helm\.yaml:19: mirror\.helm is not supported yet/));
  // An empty section asks for nothing and is accepted.
  assert.equal(parseImageSetConfig(`${ISC}  operators: []\n`, 'empty.yaml').channels.length, 2);
});

test('bad fields are named with file, line and path', () => {
  assert.throws(() => parseImageSetConfig(ISC.replace('minVersion: 4.16.1', 'minVersion: four'), 'v.yaml'), failsAt('IMAGE_SET_CONFIG_INVALID', /^v\.yaml:9: mirror\.platform\.channels\[0\]\.minVersion "four" is not a version/));
  assert.throws(() => parseImageSetConfig(ISC.replace('type: ocp', 'type: okd'), 't.yaml'), failsAt('IMAGE_SET_CONFIG_INVALID', /^t\.yaml:12: .*type "okd" is not supported \(only ocp\)/));
  assert.throws(() => parseImageSetConfig(ISC.replace('".*/alertmanager.*"', '"(unclosed"'), 'r.yaml'), failsAt('IMAGE_SET_CONFIG_INVALID', /^r\.yaml:18: mirror\.blockedImages: "\(unclosed" is not a valid regular expression/));
  assert.throws(() => parseImageSetConfig(ISC.replace('ubi9/ubi:latest', 'ubi9/UBI:latest'), 'i.yaml'), (err: unknown) => err instanceof UserError && /^i\.yaml:15: /.test(err.message));
  assert.throws(() => parseImageSetConfig(ISC.replace('shortestPath: true', 'shortestPath: yes please'), 'b.yaml'), failsAt('IMAGE_SET_CONFIG_INVALID', /^b\.yaml:11: .*shortestPath must be true or false/));
});

test('given with --images-from, it adds channels, images and blocked patterns, and its architectures become platforms', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-isc-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'imageset-config.yaml');
  await writeFile(file, ISC.replace('      - amd64\n', '      - amd64\n      - arm64\n'));
  const selection = await buildSelection({ imagesFrom: [file], images: ['quay.io/extra/one:1'] });
  assert.equal(selection.channels.length, 2);
  assert.deepEqual(selection.images.map((i) => i.requestedAs), ['quay.io/extra/one:1', 'registry.redhat.io/ubi9/ubi:latest', `quay.io/acme/tool@sha256:${'a'.repeat(64)}`]);
  assert.equal(selection.blocked.length, 1);
  assert.deepEqual(selection.platforms, [{ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm64' }]);
  // --platform wins over the file's architectures.
  const flagged = await buildSelection({ imagesFrom: [file], platforms: ['linux/s390x'] });
  assert.deepEqual(flagged.platforms, [{ os: 'linux', architecture: 's390x' }]);
  const multiFile = path.join(dir, 'multi.yaml');
  await writeFile(multiFile, ISC.replace('      - amd64\n', '      - multi\n'));
  assert.equal((await buildSelection({ imagesFrom: [multiFile] })).platforms, 'all');
});

test('--channel flags: --version with a range is refused, a range is a shortest path', async () => {
  const range = await buildSelection({ channel: { name: 'stable-4.16', minVersion: '4.16.1', maxVersion: '4.16.4' } });
  assert.deepEqual(range.channels, [{ name: 'stable-4.16', minVersion: '4.16.1', maxVersion: '4.16.4', shortestPath: true, full: false, origin: '--channel' }]);
  const one = await buildSelection({ channel: { name: 'stable-4.16', version: '4.16.3' } });
  assert.deepEqual([one.channels[0]?.minVersion, one.channels[0]?.maxVersion], ['4.16.3', '4.16.3']);
  await assert.rejects(buildSelection({ channel: { name: 'c', version: '4.16.3', minVersion: '4.16.1' } }), failsAt('USAGE', /--version cannot be combined/));
  await assert.rejects(buildSelection({ channel: { name: 'c', minVersion: '4.16.1' } }), failsAt('USAGE', /--min-version and --max-version go together/));
  await assert.rejects(buildSelection({ channel: { name: 'c', version: 'latest' } }), failsAt('USAGE', /--version "latest" is not a release version/));
});
