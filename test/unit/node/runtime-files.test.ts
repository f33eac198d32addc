import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import TOML from '@iarna/toml';
import {
  applyHostsTomls,
  applyMirrorConfig,
  applyPinnedImages,
  loadEffectiveRegistries,
  reloadRuntime,
  renderHostsToml,
  renderPinnedImages,
  renderRegistriesDropin,
} from '../../../src/node/runtime-files.js';
import { parseRegistriesConf, endpointsFor, EMPTY_REGISTRIES_CONF } from '../../../src/registry/registries-conf.js';
import { resolveConfig } from '../../../src/node/config.js';
import { parseReference } from '../../../src/oci/reference.js';
import { isUserError } from '../../../src/util/errors.js';

const A = `quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:${'a'.repeat(64)}`;
const B = `quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:${'b'.repeat(64)}`;
const C = `registry.redhat.io/ubi9/ubi@sha256:${'c'.repeat(64)}`;
const ART = { domain: 'quay.io', path: 'openshift-release-dev/ocp-v4.0-art-dev' };
const UBI = { domain: 'registry.redhat.io', path: 'ubi9/ubi' };
const LOOPBACK = { listen: '127.0.0.1:5000', tls: false };

async function tempDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-runtime-files-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('pinned images file has exactly the bytes the MCO writes: [crio] / 2-space [crio.image] / sorted, deduplicated', () => {
  assert.equal(
    renderPinnedImages([C, B, A, B]),
    `[crio]\n  [crio.image]\n    pinned_images = ["${A}", "${B}", "${C}"]\n`,
  );
});

test('pinned images file parses as TOML with only crio.image.pinned_images', () => {
  const parsed = TOML.parse(renderPinnedImages([A, C])) as Record<string, unknown>;
  assert.deepEqual(JSON.parse(JSON.stringify(parsed)), { crio: { image: { pinned_images: [A, C] } } });
});

test('pinned images file is written 0644 and atomically, only when its bytes change, and removed for an empty set', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'crio.conf.d', '50-pinned-images');
  assert.equal(await applyPinnedImages(file, [A, B]), true, 'first write changes the file');
  assert.equal((await stat(file)).mode & 0o777, 0o644);
  const before = (await stat(file)).mtimeMs;
  assert.equal(await applyPinnedImages(file, [B, A, A]), false, 'same set in another order: no change');
  assert.equal((await stat(file)).mtimeMs, before, 'file untouched');
  assert.deepEqual(await readdir(path.dirname(file)), ['50-pinned-images'], 'no temp files left');
  assert.equal(await applyPinnedImages(file, [A]), true);
  assert.equal(await readFile(file, 'utf8'), renderPinnedImages([A]));
  assert.equal(await applyPinnedImages(file, []), true, 'empty set removes the file');
  await assert.rejects(stat(file), { code: 'ENOENT' });
  assert.equal(await applyPinnedImages(file, []), false, 'removing again changes nothing');
});

test('registries drop-in: one [[registry]] per source repository with the loopback mirror, insecure, digest-only', () => {
  const text = renderRegistriesDropin([UBI, ART, ART], LOOPBACK, EMPTY_REGISTRIES_CONF);
  assert.equal(
    text,
    [
      '# Written by pin-preload. Do not edit: it is rewritten on every preload.',
      '# Sends pulls by digest of the bundled repositories to the local pin-preload mirror first, and pulls by tag',
      '# too for extra images bundled by tag; mirrors and settings from registries.conf for the same',
      '# repositories are carried over after it.',
      '',
      '[[registry]]',
      'prefix = "quay.io/openshift-release-dev/ocp-v4.0-art-dev"',
      'location = "quay.io/openshift-release-dev/ocp-v4.0-art-dev"',
      '',
      '[[registry.mirror]]',
      'location = "127.0.0.1:5000/openshift-release-dev/ocp-v4.0-art-dev"',
      'insecure = true',
      'pull-from-mirror = "digest-only"',
      '',
      '[[registry]]',
      'prefix = "registry.redhat.io/ubi9/ubi"',
      'location = "registry.redhat.io/ubi9/ubi"',
      '',
      '[[registry.mirror]]',
      'location = "127.0.0.1:5000/ubi9/ubi"',
      'insecure = true',
      'pull-from-mirror = "digest-only"',
      '',
    ].join('\n'),
  );
});

test('registries drop-in uses exactly containers-registries.conf keys and parses back', () => {
  const text = renderRegistriesDropin([ART], LOOPBACK, EMPTY_REGISTRIES_CONF);
  const doc = JSON.parse(JSON.stringify(TOML.parse(text))) as { registry: Array<Record<string, unknown>> };
  assert.deepEqual(Object.keys(doc), ['registry']);
  assert.deepEqual(doc.registry[0], {
    prefix: 'quay.io/openshift-release-dev/ocp-v4.0-art-dev',
    location: 'quay.io/openshift-release-dev/ocp-v4.0-art-dev',
    mirror: [{ location: '127.0.0.1:5000/openshift-release-dev/ocp-v4.0-art-dev', insecure: true, 'pull-from-mirror': 'digest-only' }],
  });
  // Our own registries.conf parser (containers/image rules) accepts it and sends a digest pull to the mirror first.
  const conf = parseRegistriesConf(text, 'dropin');
  const endpoints = endpointsFor(conf, parseReference(A), true);
  assert.deepEqual(endpoints.map((e) => `${e.host}/${e.path}`), ['127.0.0.1:5000/openshift-release-dev/ocp-v4.0-art-dev', 'quay.io/openshift-release-dev/ocp-v4.0-art-dev']);
  assert.deepEqual(endpointsFor(conf, parseReference('quay.io/openshift-release-dev/ocp-v4.0-art-dev:tag'), false).map((e) => e.host), ['quay.io']);
});

// What the MCO renders from an ImageDigestMirrorSet with NeverContactSource for the release repositories.
const MCO_REGISTRIES_CONF = `
unqualified-search-registries = ["registry.access.redhat.com", "docker.io"]
short-name-mode = ""

[[registry]]
  prefix = ""
  location = "quay.io/openshift-release-dev"
  blocked = true

  [[registry.mirror]]
    location = "mirror.corp.example:8443/ocp"
    pull-from-mirror = "digest-only"

[[registry]]
  prefix = ""
  location = "registry.redhat.io/ubi9/ubi"
  mirror-by-digest-only = true

  [[registry.mirror]]
    location = "mirror.corp.example:8443/ubi"
`;

test('coexists with the MCO registries.conf: carries its mirrors (after ours) and blocked/mirror-by-digest-only over', async (t) => {
  const dir = await tempDir(t);
  const main = path.join(dir, 'registries.conf');
  await writeFile(main, MCO_REGISTRIES_CONF);
  const dropin = path.join(dir, 'registries.conf.d', '50-pin-preload.conf');
  const existing = await loadEffectiveRegistries(main, dropin);
  const text = renderRegistriesDropin([ART, UBI], LOOPBACK, existing);

  // CRI-O reads main + drop-in; a drop-in [[registry]] replaces an entry of the same prefix, and the longest
  // prefix wins: model that and check what a digest pull of each repository tries, in order.
  const ours = parseRegistriesConf(text, 'dropin');
  const merged = new Map(existing.registries.map((r) => [r.prefix, r]));
  for (const r of ours.registries) merged.set(r.prefix, r);
  const effective = { registries: [...merged.values()] };

  const art = endpointsFor(effective, parseReference(A), true);
  assert.deepEqual(art.map((e) => `${e.host}/${e.path}`), [
    '127.0.0.1:5000/openshift-release-dev/ocp-v4.0-art-dev',
    'mirror.corp.example:8443/ocp/ocp-v4.0-art-dev',
  ], 'our mirror, then the IDMS mirror, and the source stays blocked');
  const ubi = endpointsFor(effective, parseReference(C), true);
  assert.deepEqual(ubi.map((e) => `${e.host}/${e.path}`), ['127.0.0.1:5000/ubi9/ubi', 'mirror.corp.example:8443/ubi', 'registry.redhat.io/ubi9/ubi']);
  assert.match(text, /prefix = "registry.redhat.io\/ubi9\/ubi"\nlocation = "registry.redhat.io\/ubi9\/ubi"\nmirror-by-digest-only = true\n/);
  assert.doesNotMatch(text.split('registry.redhat.io/ubi9/ubi')[1]!, /pull-from-mirror/, 'no per-mirror pull-from-mirror under mirror-by-digest-only');
  // A repository of the bundle the MCO does not mention is not blocked.
  assert.equal(ours.registries.find((r) => r.prefix === 'quay.io/openshift-release-dev/ocp-v4.0-art-dev')?.blocked, true);
});

test('an extra image bundled by tag gets our mirror for tag pulls too (pull-from-mirror "all"); release repositories stay digest-only', async (t) => {
  const dir = await tempDir(t);
  const main = path.join(dir, 'registries.conf');
  await writeFile(main, MCO_REGISTRIES_CONF);
  const existing = await loadEffectiveRegistries(main, path.join(dir, 'registries.conf.d', '50-pin-preload.conf'));
  const text = renderRegistriesDropin([ART, UBI], LOOPBACK, existing, [UBI]);
  const ours = parseRegistriesConf(text, 'dropin');
  const merged = new Map(existing.registries.map((r) => [r.prefix, r]));
  for (const r of ours.registries) merged.set(r.prefix, r);
  const effective = { registries: [...merged.values()] };

  const ubiBlock = text.slice(text.indexOf('prefix = "registry.redhat.io/ubi9/ubi"'));
  assert.doesNotMatch(ubiBlock, /mirror-by-digest-only/, 'the registry-wide digest-only switch would forbid tag pulls from our mirror');
  assert.match(ubiBlock, /location = "127.0.0.1:5000\/registry.redhat.io\/ubi9\/ubi"\ninsecure = true\npull-from-mirror = "all"/);
  assert.match(ubiBlock, /location = "mirror.corp.example:8443\/ubi"\npull-from-mirror = "digest-only"/, 'the IDMS mirror keeps serving digests only');
  const byTag = endpointsFor(effective, parseReference('registry.redhat.io/ubi9/ubi:9.4'), false);
  assert.deepEqual(byTag.map((e) => `${e.host}/${e.path}`), ['127.0.0.1:5000/registry.redhat.io/ubi9/ubi', 'registry.redhat.io/ubi9/ubi']);
  const byDigest = endpointsFor(effective, parseReference(C), true);
  assert.deepEqual(byDigest.map((e) => `${e.host}/${e.path}`), ['127.0.0.1:5000/registry.redhat.io/ubi9/ubi', 'mirror.corp.example:8443/ubi', 'registry.redhat.io/ubi9/ubi']);
  assert.throws(
    () => endpointsFor(effective, parseReference('quay.io/openshift-release-dev/ocp-v4.0-art-dev:4.16'), false),
    (err: unknown) => isUserError(err) && err.code === 'REGISTRY_BLOCKED',
    'a release repository is never pulled by tag from our mirror',
  );
});

test('earlier drop-ins count as existing configuration, later ones and our own file do not', async (t) => {
  const dir = await tempDir(t);
  const dropins = path.join(dir, 'registries.conf.d');
  await mkdir(dropins);
  await writeFile(path.join(dropins, '10-corp.conf'), '[[registry]]\nlocation = "quay.io"\nblocked = true\n');
  await writeFile(path.join(dropins, '99-late.conf'), '[[registry]]\nlocation = "registry.redhat.io"\nblocked = true\n');
  await writeFile(path.join(dropins, '50-pin-preload.conf'), '[[registry]]\nlocation = "example.com"\n');
  const existing = await loadEffectiveRegistries(path.join(dir, 'missing-registries.conf'), path.join(dropins, '50-pin-preload.conf'));
  assert.deepEqual(existing.registries.map((r) => r.prefix), ['quay.io']);
});

test('containerd hosts.toml: server plus our mirror with pull and resolve, valid TOML', () => {
  const text = renderHostsToml('quay.io', LOOPBACK);
  assert.equal(
    text,
    '# Written by pin-preload. Do not edit: it is rewritten on every preload.\n' +
      'server = "https://quay.io"\n\n[host."http://127.0.0.1:5000"]\n  capabilities = ["pull", "resolve"]\n',
  );
  assert.deepEqual(JSON.parse(JSON.stringify(TOML.parse(text))), {
    server: 'https://quay.io',
    host: { 'http://127.0.0.1:5000': { capabilities: ['pull', 'resolve'] } },
  });
});

test('hosts.toml files: one per host, only when changed, ours removed when unused, a foreign one refused', async (t) => {
  const dir = await tempDir(t);
  assert.deepEqual(await applyHostsTomls(dir, ['quay.io', 'registry.redhat.io', 'quay.io'], LOOPBACK), [
    path.join(dir, 'quay.io', 'hosts.toml'),
    path.join(dir, 'registry.redhat.io', 'hosts.toml'),
  ]);
  assert.deepEqual(await applyHostsTomls(dir, ['registry.redhat.io', 'quay.io'], LOOPBACK), [], 'nothing changed');
  assert.deepEqual(await applyHostsTomls(dir, ['quay.io'], LOOPBACK), [path.join(dir, 'registry.redhat.io', 'hosts.toml')]);
  assert.deepEqual((await readdir(dir)).sort(), ['quay.io']);
  await mkdir(path.join(dir, 'docker.io'));
  await writeFile(path.join(dir, 'docker.io', 'hosts.toml'), 'server = "https://registry-1.docker.io"\n');
  await assert.rejects(applyHostsTomls(dir, ['docker.io'], LOOPBACK), (err: unknown) => isUserError(err) && err.code === 'HOSTS_TOML_FOREIGN');
  assert.deepEqual(await applyHostsTomls(dir, [], LOOPBACK), [path.join(dir, 'quay.io', 'hosts.toml')], 'ours removed, the foreign one kept');
  assert.equal(await readFile(path.join(dir, 'docker.io', 'hosts.toml'), 'utf8'), 'server = "https://registry-1.docker.io"\n');
});

test('applyMirrorConfig writes the CRI-O drop-in only when it changes and removes it for an empty set', async (t) => {
  const dir = await tempDir(t);
  const dropin = path.join(dir, 'registries.conf.d', '50-pin-preload.conf');
  const config = resolveConfig(
    new Map<string, unknown>([
      ['runtime.registries_dropin', dropin],
      ['runtime.registries_conf', path.join(dir, 'registries.conf')],
    ]),
    new Map(),
    undefined,
  );
  assert.deepEqual(await applyMirrorConfig(config, [ART]), [dropin]);
  assert.equal((await stat(dropin)).mode & 0o777, 0o644);
  assert.deepEqual(await applyMirrorConfig(config, [ART]), []);
  assert.deepEqual(await applyMirrorConfig(config, [ART, UBI]), [dropin]);
  assert.deepEqual(await applyMirrorConfig(config, []), [dropin]);
  await assert.rejects(stat(dropin), { code: 'ENOENT' });
});

test('reload runs the argv without a shell; a failure names the command and its stderr', async (t) => {
  const dir = await tempDir(t);
  const log = path.join(dir, 'log');
  assert.equal(await reloadRuntime([]), false, 'nothing configured, nothing run');
  assert.equal(await reloadRuntime(['sh', '-c', `echo reloaded >> ${log}`]), true);
  assert.equal(await readFile(log, 'utf8'), 'reloaded\n');
  await assert.rejects(reloadRuntime(['sh', '-c', 'echo crio is not running >&2; exit 3']), (err: unknown) => {
    assert.ok(isUserError(err));
    assert.equal(err.code, 'RUNTIME_RELOAD_FAILED');
    assert.match(err.message, /"sh","-c"/);
    assert.match(err.message, /exit code 3/);
    assert.match(err.message, /crio is not running/);
    return true;
  });
  await assert.rejects(reloadRuntime(['/nonexistent/reload']), /command not found/);
});

test('a runtime file that cannot be written is a user error naming the file and its configuration key', async (t) => {
  const dir = await tempDir(t);
  const blocker = path.join(dir, 'not-a-dir');
  await writeFile(blocker, 'a file where a directory should be');
  await assert.rejects(applyPinnedImages(path.join(blocker, '50-pinned-images'), [A]), (err: unknown) => {
    assert.ok(isUserError(err));
    assert.equal(err.code, 'RUNTIME_FILE_FAILED');
    assert.match(err.message, /not-a-dir\/50-pinned-images \(\[runtime\] pinned_images_file\)/);
    return true;
  });
});
