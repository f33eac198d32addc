import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { buildSelection, detectImageListFormat, parseImageList, parsePlatformChoice } from '../../src/plan/selection.js';
import { parseBundleSpec } from '../../src/plan/bundle-spec.js';
import { exitStatusOf } from '../../src/cli/exit-status.js';
import { UserError } from '../../src/util/errors.js';

const D = `sha256:${'c'.repeat(64)}`;
const E = `sha256:${'e'.repeat(64)}`;

const badAt = (where: RegExp) => (err: unknown) => err instanceof UserError && exitStatusOf(err) === 2 && where.test(err.message);

test('a plain list takes one reference per line, ignoring comments and blank lines, and remembers each line', () => {
  const images = parseImageList(['# tools', '', 'quay.io/acme/tool:1.2  # pinned by tag', `registry.example.com/a/b@${D}`, '   ', 'busybox'].join('\n'), 'list.txt');
  assert.deepEqual(images.map((i) => [i.requestedAs, i.origin]), [
    ['quay.io/acme/tool:1.2', 'list.txt:3'],
    [`registry.example.com/a/b@${D}`, 'list.txt:4'],
    ['docker.io/library/busybox', 'list.txt:6'],
  ]);
});

test('a bad reference in a plain list names the file and line', () => {
  assert.throws(() => parseImageList('quay.io/ok/a:1\n\nquay.io/a/b:bad tag\n', 'list.txt'), badAt(/^list\.txt:3: invalid image reference/));
});

const pinnedImageSet = (name: string, images: string[], apiVersion = 'machineconfiguration.openshift.io/v1') => [
  `apiVersion: ${apiVersion}`,
  'kind: PinnedImageSet',
  'metadata:',
  `  name: ${name}`,
  '  labels:',
  '    machineconfiguration.openshift.io/role: worker',
  'spec:',
  '  pinnedImages:',
  ...images.map((i) => `  - name: ${i}`),
].join('\n');

test('a PinnedImageSet YAML gives its spec.pinnedImages names with their lines', () => {
  const text = pinnedImageSet('worker-pins', [`quay.io/openshift-release-dev/ocp-v4.0-art-dev@${D}`, `quay.io/acme/agent@${E}`]);
  const images = parseImageList(text, 'pins.yaml');
  assert.deepEqual(images.map((i) => [i.requestedAs, i.origin]), [
    [`quay.io/openshift-release-dev/ocp-v4.0-art-dev@${D}`, 'pins.yaml:9'],
    [`quay.io/acme/agent@${E}`, 'pins.yaml:10'],
  ]);
});

test('multi-document YAML and a List of PinnedImageSets (v1alpha1 too) are read whole', () => {
  const multi = `${pinnedImageSet('a', [`quay.io/a/a@${D}`])}\n---\n${pinnedImageSet('b', [`quay.io/b/b@${E}`], 'machineconfiguration.openshift.io/v1alpha1')}\n---\n`;
  assert.deepEqual(parseImageList(multi, 'sets.yaml').map((i) => i.requestedAs), [`quay.io/a/a@${D}`, `quay.io/b/b@${E}`]);
  const list = JSON.stringify({
    apiVersion: 'v1', kind: 'List', items: [
      { apiVersion: 'machineconfiguration.openshift.io/v1', kind: 'PinnedImageSet', metadata: { name: 'x' }, spec: { pinnedImages: [{ name: `quay.io/x/x@${D}` }] } },
    ],
  }, null, 2);
  assert.deepEqual(parseImageList(list, 'oc-get-output').map((i) => i.requestedAs), [`quay.io/x/x@${D}`]);
});

test('a bad reference in a PinnedImageSet names the file and the line of that name', () => {
  const text = pinnedImageSet('w', [`quay.io/ok/a@${D}`, 'quay.io/a/b@sha256:1234']);
  assert.throws(() => parseImageList(text, 'pins.yaml'), badAt(/^pins\.yaml:10: invalid image reference "quay\.io\/a\/b@sha256:1234"/));
});

test('YAML that is not a PinnedImageSet, or not YAML, is refused with file and line', () => {
  assert.throws(() => parseImageList('apiVersion: v1\nkind: ConfigMap\n', 'cm.yaml'), badAt(/^cm\.yaml:2: kind "ConfigMap" is not PinnedImageSet/));
  assert.throws(() => parseImageList('kind: PinnedImageSet\napiVersion: machineconfiguration.openshift.io/v2\n', 'p.yaml'), badAt(/^p\.yaml:2: apiVersion/));
  assert.throws(() => parseImageList('kind: PinnedImageSet\nspec: [unclosed\n', 'p.yaml'), badAt(/^p\.yaml:\d+: not valid YAML/));
});

test('image lists are recognised by extension, else by content', () => {
  assert.equal(detectImageListFormat('x.yml', ''), 'pinned-image-set');
  assert.equal(detectImageListFormat('x.toml', ''), 'bundle-spec');
  assert.equal(detectImageListFormat('images', '# c\nimages = ["a"]\n'), 'bundle-spec');
  assert.equal(detectImageListFormat('images', 'apiVersion: machineconfiguration.openshift.io/v1\n'), 'pinned-image-set');
  assert.equal(detectImageListFormat('images', '{"kind":"List"}'), 'pinned-image-set');
  assert.equal(detectImageListFormat('images', `quay.io/a/b:1\nlocalhost:5000/x@${D}\n`), 'plain');
});

test('a bundle spec given as an image list contributes its images only', () => {
  const images = parseImageList('release = "quay.io/r/r:1"\nimages = ["quay.io/a/a:1"]\n', 'extra.toml');
  assert.deepEqual(images.map((i) => i.requestedAs), ['quay.io/a/a:1']);
});

test('platforms default to linux/amd64; "all" means every platform; bad ones are usage errors', () => {
  assert.deepEqual(parsePlatformChoice([]), [{ os: 'linux', architecture: 'amd64' }]);
  assert.equal(parsePlatformChoice(['linux/amd64', 'all']), 'all');
  assert.deepEqual(parsePlatformChoice(['linux/arm64/v8', 'linux/arm64/v8']), [{ os: 'linux', architecture: 'arm64', variant: 'v8' }]);
  assert.throws(() => parsePlatformChoice(['amd64']), badAt(/invalid platform "amd64"/));
});

test('flags add images to a spec and override its release and platforms; duplicates are dropped', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-selection-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(path.join(dir, 'list.txt'), 'quay.io/from/list:1\nquay.io/from/spec:1\n');
  const spec = parseBundleSpec('release = "quay.io/r/spec:1"\nimages = ["quay.io/from/spec:1"]\nplatforms = ["linux/s390x"]\n', path.join(dir, 's.toml'));
  const fromSpec = await buildSelection({ spec });
  assert.equal(fromSpec.releases[0]?.requestedAs, 'quay.io/r/spec:1');
  assert.deepEqual(fromSpec.platforms, [{ os: 'linux', architecture: 's390x' }]);
  const merged = await buildSelection({ spec, release: 'quay.io/r/flag:2', images: ['quay.io/from/flag:1'], imagesFrom: [path.join(dir, 'list.txt')], platforms: ['linux/amd64'] });
  assert.equal(merged.releases[0]?.requestedAs, 'quay.io/r/flag:2');
  assert.equal(merged.releases[0]?.origin, '--release');
  assert.deepEqual(merged.images.map((i) => i.requestedAs), ['quay.io/from/spec:1', 'quay.io/from/flag:1', 'quay.io/from/list:1']);
  assert.deepEqual(merged.platforms, [{ os: 'linux', architecture: 'amd64' }]);
});

test('no selection at all is a usage error; a missing list file is named', async () => {
  await assert.rejects(buildSelection({}), (err: unknown) => err instanceof UserError && err.code === 'SELECTION_EMPTY' && exitStatusOf(err) === 2);
  await assert.rejects(buildSelection({ imagesFrom: ['/nonexistent/list.txt'] }), badAt(/\/nonexistent\/list\.txt: no such file/));
  await assert.rejects(buildSelection({ images: ['quay.io/Upper/case:1'] }), badAt(/^--image: invalid image reference/));
});
