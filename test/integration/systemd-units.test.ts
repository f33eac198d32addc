// The shipped systemd units pass `systemd-analyze verify` (which really loads them, ExecStart included),
// say what the node service needs, and the example config carries every key with its default.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync, rmSync, chmodSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import TOML from '@iarna/toml';
import { loadNodeConfig, resolveConfig } from '../../src/node/config.js';

const repo = new URL('../../../', import.meta.url).pathname;
const unitsDir = path.join(repo, 'systemd');
const installedBinary = '/usr/local/bin/pin-preload';
const hasSystemdAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0;
const needsSystemd = { skip: hasSystemdAnalyze ? false : 'systemd-analyze is not installed (.ci/run installs systemd)' };

interface Verdict { status: number | null; diagnostics: string }

/** Runs `systemd-analyze verify` on unit files in `dir`; any output at all is a diagnostic about our files. */
function verify(dir: string, units: string[]): Verdict {
  const run = spawnSync('systemd-analyze', ['verify', '--man=no', ...units.map((u) => `./${u}`)], {
    cwd: dir, encoding: 'utf8', timeout: 30_000, env: { ...process.env, SYSTEMD_LOG_COLOR: '0' },
  });
  return { status: run.status, diagnostics: `${run.stdout}${run.stderr}`.trim() };
}

function assertClean(verdict: Verdict): void {
  assert.equal(verdict.diagnostics, '', 'systemd-analyze printed diagnostics');
  assert.equal(verdict.status, 0);
}

/** A temp copy of the units whose ExecStart points at a stub executable, so verify can resolve it. */
function unitsWithStubBinary(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pin-preload-units-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const stub = path.join(dir, 'bin', 'pin-preload');
  mkdirSync(path.dirname(stub));
  writeFileSync(stub, '#!/bin/sh\nexit 0\n');
  chmodSync(stub, 0o755);
  for (const unit of ['pin-preload.service', 'pin-preload-import@.service']) {
    const text = readFileSync(path.join(unitsDir, unit), 'utf8');
    assert.ok(text.includes(`ExecStart=${installedBinary} `), `${unit} starts ${installedBinary}`);
    writeFileSync(path.join(dir, unit), text.replaceAll(installedBinary, stub));
  }
  // The containerd drop-in is verified together with the service it extends.
  mkdirSync(path.join(dir, 'pin-preload.service.d'));
  writeFileSync(path.join(dir, 'pin-preload.service.d', '10-containerd.conf'), readFileSync(path.join(unitsDir, '10-containerd.conf')));
  return dir;
}

/** Key → values of one section of a unit file (keys may repeat; comments and blank lines dropped). */
function section(unitText: string, name: string): Map<string, string[]> {
  const keys = new Map<string, string[]>();
  let current = '';
  for (const raw of unitText.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) { current = header[1]!; continue; }
    if (current !== name) continue;
    const eq = line.indexOf('=');
    const key = line.slice(0, eq);
    keys.set(key, [...(keys.get(key) ?? []), line.slice(eq + 1)]);
  }
  return keys;
}

test('systemd-analyze verify passes on the service, the import template and an import instance', needsSystemd, (t) => {
  const dir = unitsWithStubBinary(t);
  // An instance for a real media path, as `systemd-escape --path /run/media/usb/ocp.tar` names it.
  const escaped = spawnSync('systemd-escape', ['--path', '/run/media/usb/ocp.tar'], { encoding: 'utf8' }).stdout.trim();
  assert.equal(escaped, 'run-media-usb-ocp.tar');
  const instance = `pin-preload-import@${escaped}.service`;
  writeFileSync(path.join(dir, instance), readFileSync(path.join(dir, 'pin-preload-import@.service')));
  assertClean(verify(dir, ['pin-preload.service', 'pin-preload-import@.service', instance]));
});

test('systemd-analyze verify rejects broken copies of the service', needsSystemd, (t) => {
  const dir = unitsWithStubBinary(t);
  const good = readFileSync(path.join(dir, 'pin-preload.service'), 'utf8');
  const breakages: Array<[string, string]> = [
    ['missing binary', good.replace(/^ExecStart=\S+/m, 'ExecStart=/nonexistent/pin-preload')],
    ['misspelt directive', good.replace(/^ProtectSystem=/m, 'ProtectSytem=')],
    ['invalid value', good.replace(/^Restart=on-failure$/m, 'Restart=sometimes')],
  ];
  for (const [what, text] of breakages) {
    assert.notEqual(text, good, `${what}: the breakage changed the unit`);
    writeFileSync(path.join(dir, 'broken.service'), text);
    const verdict = verify(dir, ['broken.service']);
    assert.ok(verdict.status !== 0 || verdict.diagnostics.includes('broken.service'), `${what} went unnoticed`);
  }
  // A broken drop-in is caught too.
  const dropin = path.join(dir, 'pin-preload.service.d', '10-containerd.conf');
  writeFileSync(dropin, `${readFileSync(dropin, 'utf8')}ReadWritePathz=/x\n`);
  assert.match(verify(dir, ['pin-preload.service']).diagnostics, /10-containerd\.conf.*ReadWritePathz/);
});

test('the service runs `pin-preload run` after CRI-O, restarts on failure and is sandboxed', () => {
  const text = readFileSync(path.join(unitsDir, 'pin-preload.service'), 'utf8');
  const unit = section(text, 'Unit');
  const service = section(text, 'Service');
  assert.deepEqual(service.get('ExecStart'), [`${installedBinary} run --config /etc/pin-preload/config.toml`]);
  assert.match(unit.get('After')!.join(' '), /\bcrio\.service\b.*\bnetwork-online\.target\b/);
  assert.match(unit.get('Wants')!.join(' '), /\bcrio\.service\b/);
  assert.deepEqual(service.get('Restart'), ['on-failure']);
  assert.ok(service.has('RestartSec'));
  assert.deepEqual(service.get('StateDirectory'), ['pin-preload']);
  assert.deepEqual(service.get('ConfigurationDirectory'), ['pin-preload']);
  assert.deepEqual(service.get('ProtectSystem'), ['strict']);
  // Writable: the state dir (via StateDirectory) and the CRI-O drop-in dirs only.
  assert.deepEqual(service.get('ReadWritePaths')!.join(' ').split(/\s+/).sort(),
    ['-/etc/containers/registries.conf.d', '-/etc/crio/crio.conf.d']);
  for (const [key, value] of [['NoNewPrivileges', 'yes'], ['PrivateTmp', 'yes'], ['ProtectHome', 'yes'],
    ['CapabilityBoundingSet', ''], ['ProtectKernelTunables', 'yes'], ['ProtectControlGroups', 'yes'],
    ['RestrictAddressFamilies', 'AF_UNIX AF_INET AF_INET6'], ['LockPersonality', 'yes']] as const) {
    assert.deepEqual(service.get(key), [value], key);
  }
  // `systemctl reload crio` reaches systemd as uid 0 over a unix socket: user namespaces would break it.
  assert.equal(service.has('PrivateUsers'), false);
  assert.deepEqual(section(text, 'Install').get('WantedBy'), ['multi-user.target']);
});

test('the containerd drop-in orders after containerd and opens only certs.d', () => {
  const text = readFileSync(path.join(unitsDir, '10-containerd.conf'), 'utf8');
  assert.deepEqual(section(text, 'Unit').get('After'), ['containerd.service']);
  assert.deepEqual(section(text, 'Service').get('ReadWritePaths'), ['-/etc/containerd/certs.d']);
});

test('the import template imports the unescaped media path once and waits for its mount', () => {
  const text = readFileSync(path.join(unitsDir, 'pin-preload-import@.service'), 'utf8');
  const service = section(text, 'Service');
  assert.deepEqual(service.get('Type'), ['oneshot']);
  assert.deepEqual(service.get('ExecStart'), [`${installedBinary} import --config /etc/pin-preload/config.toml %f`]);
  assert.deepEqual(section(text, 'Unit').get('RequiresMountsFor'), ['%f']);
  assert.deepEqual(service.get('ProtectSystem'), ['strict']);
});

test('the example config has every key with the documented defaults', () => {
  const config = TOML.parse(readFileSync(path.join(unitsDir, 'config.toml.example'), 'utf8'));
  assert.deepEqual(config, {
    paths: { bundles: '/var/lib/pin-preload/bundles', state: '/var/lib/pin-preload/state.db' },
    mirror: { listen: '127.0.0.1:5000' },
    runtime: {
      kind: 'crio',
      endpoint: 'unix:///var/run/crio/crio.sock',
      reload: ['systemctl', 'reload', 'crio'],
      pinned_images_file: '/etc/crio/crio.conf.d/50-pinned-images',
      registries_dropin: '/etc/containers/registries.conf.d/50-pin-preload.conf',
      hosts_dir: '/etc/containerd/certs.d',
    },
    storage: { reserve: '10GiB' },
    pull: { concurrency: 5, retries: 5, timeout: '10m' },
    pins: { keep_releases: 2 },
  });
});

test('the example config loads with the node\'s config parser to the same values as no config at all', async () => {
  const fromExample = await loadNodeConfig({ configFile: path.join(unitsDir, 'config.toml.example') });
  const defaults = resolveConfig(new Map(), new Map(), undefined);
  assert.equal(fromExample.runtime.kind, 'crio');
  assert.equal(fromExample.storage.reserveBytes, 10 * 2 ** 30);
  assert.equal(fromExample.pull.timeoutMs, 10 * 60_000);
  assert.deepEqual({ ...fromExample, file: undefined }, { ...defaults, file: undefined });
});

test('the units\' command lines name commands and options the CLI has', () => {
  const cli = path.join(repo, 'dist/src/cli/main.js');
  for (const unit of ['pin-preload.service', 'pin-preload-import@.service']) {
    const execStart = section(readFileSync(path.join(unitsDir, unit), 'utf8'), 'Service').get('ExecStart')![0]!;
    const [binary, command, ...rest] = execStart.split(' ');
    assert.equal(binary, installedBinary);
    const usage = spawnSync(process.execPath, [cli, command!, '--help'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(usage.status, 0, `${unit}: pin-preload ${command} --help failed: ${usage.stderr}`);
    assert.match(usage.stdout, new RegExp(`^Usage: pin-preload ${command} \\[options\\]${rest.includes('%f') ? ' <path>' : ''}$`, 'm'));
    for (const option of rest.filter((word) => word.startsWith('--'))) {
      assert.match(usage.stdout, new RegExp(`^\\s+${option} <`, 'm'), `${unit}: pin-preload ${command} has no ${option}`);
    }
  }
});
