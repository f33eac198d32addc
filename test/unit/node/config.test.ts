import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import TOML from '@iarna/toml';
import { CONFIG_KEYS, loadNodeConfig, parseDuration } from '../../../src/node/config.js';
import { exitStatusOf } from '../../../src/cli/exit-status.js';
import { isUserError } from '../../../src/util/errors.js';

async function withConfig(text: string, fn: (file: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-config-'));
  try {
    const file = path.join(dir, 'config.toml');
    await writeFile(file, text);
    await fn(file);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const FULL = `
[paths]
bundles = "/srv/bundles"
state = "/srv/state.db"
trusted_key = "/etc/pin-preload/bundle-key.pub"

[mirror]
listen = "127.0.0.1:5555"
tls_cert = "/etc/pki/mirror.crt"
tls_key = "/etc/pki/mirror.key"

[runtime]
kind = "containerd"
endpoint = "unix:///run/containerd/containerd.sock"
reload = ["/usr/local/bin/reload-it", "--now"]
pinned_images_file = "/tmp/pinned"
registries_dropin = "/tmp/50-pin-preload.conf"
registries_conf = "/tmp/registries.conf"
hosts_dir = "/tmp/certs.d"
image_fs = "/var/lib/containerd"

[storage]
reserve = "2GiB"

[pull]
concurrency = 3
retries = 7
timeout = "90s"

[pins]
keep_releases = 3
`;

test('reads every key of the config file into typed values', async () => {
  await withConfig(FULL, async (file) => {
    const config = await loadNodeConfig({ configFile: file });
    assert.equal(config.file, file);
    assert.deepEqual(config.paths, { bundles: '/srv/bundles', state: '/srv/state.db', trustedKey: '/etc/pin-preload/bundle-key.pub' });
    assert.deepEqual(config.mirror, { listen: '127.0.0.1:5555', tlsCert: '/etc/pki/mirror.crt', tlsKey: '/etc/pki/mirror.key' });
    assert.deepEqual(config.runtime, {
      kind: 'containerd',
      endpoint: 'unix:///run/containerd/containerd.sock',
      reload: ['/usr/local/bin/reload-it', '--now'],
      pinnedImagesFile: '/tmp/pinned',
      registriesDropin: '/tmp/50-pin-preload.conf',
      registriesConf: '/tmp/registries.conf',
      hostsDir: '/tmp/certs.d',
      imageFs: '/var/lib/containerd',
    });
    assert.equal(config.storage.reserveBytes, 2 * 2 ** 30);
    assert.deepEqual(config.pull, { concurrency: 3, retries: 7, timeoutMs: 90_000 });
    assert.deepEqual(config.pins, { keepReleases: 3 });
  });
});

test('the full example sets every documented key (no key left untested)', () => {
  const parsed = TOML.parse(FULL) as Record<string, Record<string, unknown>>;
  for (const { section, key } of CONFIG_KEYS) assert.ok(parsed[section]?.[key] !== undefined, `${section}.${key} appears in the test config`);
});

test('an empty file gives the CRI-O defaults', async () => {
  await withConfig('', async (file) => {
    const config = await loadNodeConfig({ configFile: file });
    assert.deepEqual(config.paths, { bundles: '/var/lib/pin-preload/bundles', state: '/var/lib/pin-preload/state.db' });
    assert.deepEqual(config.mirror, { listen: '127.0.0.1:5000' });
    assert.equal(config.runtime.kind, 'crio');
    assert.equal(config.runtime.endpoint, 'unix:///var/run/crio/crio.sock');
    assert.deepEqual(config.runtime.reload, ['systemctl', 'reload', 'crio']);
    assert.equal(config.runtime.pinnedImagesFile, '/etc/crio/crio.conf.d/50-pinned-images');
    assert.equal(config.runtime.registriesDropin, '/etc/containers/registries.conf.d/50-pin-preload.conf');
    assert.equal(config.runtime.hostsDir, '/etc/containerd/certs.d');
    assert.equal(config.runtime.imageFs, undefined);
    assert.equal(config.storage.reserveBytes, 10 * 2 ** 30);
    assert.deepEqual(config.pull, { concurrency: 5, retries: 5, timeoutMs: 600_000 });
    assert.deepEqual(config.pins, { keepReleases: 2 }, 'the current release and the previous one');
  });
});

test('containerd defaults: its socket, no reload, no CRI-O files', async () => {
  await withConfig('[runtime]\nkind = "containerd"\n', async (file) => {
    const config = await loadNodeConfig({ configFile: file });
    assert.equal(config.runtime.endpoint, 'unix:///run/containerd/containerd.sock');
    assert.deepEqual(config.runtime.reload, []);
    assert.equal(config.runtime.pinnedImagesFile, '');
    assert.equal(config.runtime.registriesDropin, '');
  });
});

test('every key can be overridden by its flag, flags winning over the file', async () => {
  await withConfig(FULL, async (file) => {
    const config = await loadNodeConfig({
      configFile: file,
      flags: {
        bundles: '/b', state: '/s.db', trustedKey: '/k.pub', listen: '127.0.0.1:7000', tlsCert: '/c.crt', tlsKey: '/c.key',
        runtime: 'crio', runtimeEndpoint: 'unix:///x.sock', reload: '["kill", "-HUP", "1"]',
        pinnedImagesFile: '', registriesDropin: '/d.conf', registriesConf: '/r.conf', hostsDir: '/h', imageFs: '/i',
        reserve: '1MiB', pullConcurrency: '2', pullRetries: '3', pullTimeout: '1h', keepReleases: '1',
      },
    });
    assert.deepEqual(config.paths, { bundles: '/b', state: '/s.db', trustedKey: '/k.pub' });
    assert.deepEqual(config.mirror, { listen: '127.0.0.1:7000', tlsCert: '/c.crt', tlsKey: '/c.key' });
    assert.deepEqual(config.runtime, {
      kind: 'crio', endpoint: 'unix:///x.sock', reload: ['kill', '-HUP', '1'], pinnedImagesFile: '',
      registriesDropin: '/d.conf', registriesConf: '/r.conf', hostsDir: '/h', imageFs: '/i',
    });
    assert.equal(config.storage.reserveBytes, 2 ** 20);
    assert.deepEqual(config.pull, { concurrency: 2, retries: 3, timeoutMs: 3_600_000 });
    assert.deepEqual(config.pins, { keepReleases: 1 });
  });
});

test('a reload flag of plain words is split into argv, and "" means no reload', async () => {
  await withConfig('', async (file) => {
    assert.deepEqual((await loadNodeConfig({ configFile: file, flags: { reload: 'systemctl reload crio' } })).runtime.reload, ['systemctl', 'reload', 'crio']);
    assert.deepEqual((await loadNodeConfig({ configFile: file, flags: { reload: '' } })).runtime.reload, []);
  });
});

async function rejectsNaming(text: string, ...needles: string[]): Promise<void> {
  await withConfig(text, async (file) => {
    await assert.rejects(loadNodeConfig({ configFile: file }), (err: unknown) => {
      assert.ok(isUserError(err), 'a user error');
      assert.equal(exitStatusOf(err), 2);
      assert.ok(err.message.includes(file), `names the file: ${err.message}`);
      for (const needle of needles) assert.ok(err.message.includes(needle), `mentions ${needle}: ${err.message}`);
      return true;
    });
  });
}

test('an unknown key is refused, naming the key and the file', async () => {
  await rejectsNaming('[pull]\nconcurency = 4\n', 'pull.concurency', 'unknown key');
  await rejectsNaming('[mirrors]\nlisten = "x"\n', 'mirrors', 'unknown section');
});

test('bad values are refused, naming the key and the file', async () => {
  await rejectsNaming('[runtime]\nkind = "docker"\n', 'runtime.kind', '"docker"');
  await rejectsNaming('[runtime]\nendpoint = "tcp://1.2.3.4:1"\n', 'runtime.endpoint');
  await rejectsNaming('[pins]\nkeep_releases = 0\n', 'pins.keep_releases', 'whole number from 1');
  await rejectsNaming('[runtime]\nreload = "systemctl reload crio"\n', 'runtime.reload', 'array');
  await rejectsNaming('[runtime]\nreload = [1, 2]\n', 'runtime.reload');
  await rejectsNaming('[paths]\nbundles = "relative/dir"\n', 'paths.bundles', 'absolute');
  await rejectsNaming('[mirror]\nlisten = "5000"\n', 'mirror.listen', 'host:port');
  await rejectsNaming('[mirror]\ntls_cert = "/a.crt"\n', 'mirror.tls_key', 'both');
  await rejectsNaming('[storage]\nreserve = "lots"\n', 'storage.reserve', '"lots"');
  await rejectsNaming('[pull]\nconcurrency = 0\n', 'pull.concurrency');
  await rejectsNaming('[pull]\nretries = 2.5\n', 'pull.retries');
  await rejectsNaming('[pull]\ntimeout = "10 minutes"\n', 'pull.timeout');
  await rejectsNaming('[pull\n', 'not valid TOML', 'line 1');
});

test('a bad flag value is refused naming the flag', async () => {
  await withConfig('', async (file) => {
    await assert.rejects(loadNodeConfig({ configFile: file, flags: { pullConcurrency: 'many' } }), /--pull-concurrency/);
  });
});

test('a lone TLS half given as a flag is blamed on the command line, not on the config file also read', async () => {
  await withConfig('[mirror]\nlisten = "127.0.0.1:5000"\n', async (file) => {
    await assert.rejects(loadNodeConfig({ configFile: file, flags: { tlsCert: '/c.crt' } }), /^UserError: command line: mirror\.tls_key: tls_cert and tls_key go together/);
  });
  await withConfig('[mirror]\ntls_key = "/c.key"\n', async (file) => {
    await assert.rejects(loadNodeConfig({ configFile: file, flags: {} }), (err: Error) => err.message.startsWith(`${file}: mirror.tls_cert:`));
  });
});

test('a missing default config file means defaults; a missing --config file is an error', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-config-'));
  try {
    const missing = path.join(dir, 'nope.toml');
    await assert.rejects(loadNodeConfig({ configFile: missing }), (err: unknown) => isUserError(err) && err.message.includes(missing));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('durations: ms, s, m, h and combinations', () => {
  assert.equal(parseDuration('500ms'), 500);
  assert.equal(parseDuration('90s'), 90_000);
  assert.equal(parseDuration('10m'), 600_000);
  assert.equal(parseDuration('1h30m'), 5_400_000);
  assert.equal(parseDuration('10'), undefined);
  assert.equal(parseDuration('0s'), undefined);
});
