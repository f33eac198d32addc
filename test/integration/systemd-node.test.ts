// The product as an operator runs it: a node booted with systemd as PID 1 (systemd-nspawn over the cached
// Debian rootfs), the offline package installed with install.sh, containerd 1.7 as a unit, a bundle imported
// through pin-preload-import@.service and the hardened pin-preload.service enabled; then a CRI-O-shaped node
// whose crio.service is a stand-in, to prove the sandboxed service can `systemctl reload crio`.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { openBundle } from '../../src/bundle/reader.js';
import { containerd17Binary } from '../../src/cri/private-containerd.js';
import { containerdPinning } from '../../src/node/pinning.js';
import type { StatusJson } from '../../src/node/status.js';
import { generateSampleRelease, pushLayout } from '../../src/sample/index.js';
import { bootNode, type BootedNode } from '../support/booted-node.js';
import { runCli } from '../support/cli.js';
import { startDockerRegistry } from '../support/docker-registry.js';

const run = promisify(execFile);
const repo = new URL('../../../', import.meta.url).pathname;

let work: string;
let node: BootedNode | undefined;
/** The bundle as the node sees it (bind-mounted read-only, like removable media) and its images. */
const BUNDLE_INSIDE = '/media/bundle/node.tar';
let images: string[];

/** containerd 1.7 as the node's runtime: the node's own config and unit, as a package would install them. */
const CONTAINERD_CONFIG = `version = 2
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.internal.v1.tracing"]
[plugins."io.containerd.grpc.v1.cri".containerd]
  # The node's root is an overlay: overlayfs cannot stack on it, native copies files and works anywhere.
  snapshotter = "native"
[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "/etc/containerd/certs.d"
`;
const CONTAINERD_UNIT = `[Unit]
Description=containerd container runtime (1.7)
After=local-fs.target

[Service]
ExecStart=/usr/local/bin/containerd --config /etc/containerd/config.toml
Type=notify
Delegate=yes
KillMode=process

[Install]
WantedBy=multi-user.target
`;

async function inside(argv: readonly string[], timeoutMs = 60_000): Promise<string> {
  const result = await node!.exec(argv, { timeoutMs });
  assert.equal(result.code, 0, `${argv.join(' ')} failed (${result.code}):\n${result.stdout}${result.stderr}`);
  return result.stdout;
}

async function status(): Promise<StatusJson> {
  return JSON.parse(await inside(['pin-preload', 'status', '--config', '/etc/pin-preload/config.toml', '--json'])) as StatusJson;
}

/** Polls `pin-preload status` until the current generation is the desired one with nothing pending (bounded). */
async function converged(what: string, timeoutMs = 90_000): Promise<StatusJson> {
  const deadline = Date.now() + timeoutMs;
  let last: StatusJson | undefined;
  let crashed = false;
  while (Date.now() < deadline && !crashed) {
    last = await status().catch(() => undefined);
    if (last && last.desiredGeneration > 0 && last.currentGeneration === last.desiredGeneration && last.summary.pending === 0) return last;
    // A service that exited (and is restarting) will not converge: report it now, not at the deadline.
    crashed = Number((await node!.exec(['systemctl', 'show', '-p', 'NRestarts', '--value', 'pin-preload'])).stdout.trim()) > 0;
    if (!crashed) await new Promise((r) => setTimeout(r, 500));
  }
  const journal = await node!.exec(['journalctl', '-u', 'pin-preload', '--no-pager', '-n', '40']);
  assert.fail(`${what}: pin-preload ${crashed ? 'exited and is restarting' : `did not converge in ${timeoutMs / 1000} s`}:\n${JSON.stringify(last, null, 1)}\n${journal.stdout}`);
}

/** The journal of one invocation of pin-preload.service, one parsed entry per line. */
async function journalOf(invocation: string): Promise<Array<Record<string, unknown>>> {
  const out = await inside(['journalctl', `_SYSTEMD_INVOCATION_ID=${invocation}`, '-o', 'json', '--no-pager']);
  return out.split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>);
}

const messageOf = (entry: Record<string, unknown>) => (typeof entry.MESSAGE === 'string' ? entry.MESSAGE : Buffer.from(entry.MESSAGE as number[]).toString());

/** (Re)starts pin-preload and waits (bounded) for the first sync of that invocation: its journal line. */
async function startAndSync(verb: 'start' | 'restart', what: string): Promise<string> {
  await inside(['systemctl', verb, 'pin-preload']);
  const invocation = (await inside(['systemctl', 'show', '-p', 'InvocationID', '--value', 'pin-preload'])).trim();
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    const line = (await journalOf(invocation)).map(messageOf).find((m) => /generation \d+: .* in place|sync failed/.test(m));
    if (line) return line;
    if (Number((await inside(['systemctl', 'show', '-p', 'NRestarts', '--value', 'pin-preload'])).trim()) > 0) break;
    await new Promise((r) => setTimeout(r, 300));
  }
  assert.fail(`${what}: no sync logged by pin-preload:\n${(await node!.exec(['journalctl', '-u', 'pin-preload', '--no-pager', '-n', '40'])).stdout}`);
}

before(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-systemd-node-'));
  // A small release, bundled on the "bastion" (this host) from a real registry; the node only gets the bundle.
  const registry = await startDockerRegistry();
  const media = path.join(work, 'media');
  try {
    const sample = await generateSampleRelease(path.join(work, 'sample'), { version: '4.16.2-node', extraImages: 0 });
    await pushLayout(sample.dir, registry.url, { concurrency: 8 });
    const conf = path.join(work, 'registries.conf');
    await writeFile(conf, `[[registry]]\nprefix = "quay.io"\nlocation = "${registry.host}"\ninsecure = true\n`);
    await writeFile(path.join(work, 'auth.json'), '{"auths":{}}');
    const made = await runCli(['bundle', 'create', '--registries-conf', conf, '--authfile', path.join(work, 'auth.json'), '--quiet', '--release', sample.releaseReference, '--output', path.join(media, 'node.tar')]);
    assert.equal(made.code, 0, made.stderr);
  } finally {
    await registry.stop();
  }
  const bundle = await openBundle(path.join(media, 'node.tar'));
  images = bundle.manifest.images.map((i) => i.name).sort();
  await bundle.close();

  // The offline package with its own node, exactly as shipped.
  const packaged = (await run('bash', [path.join(repo, 'scripts/package.sh'), '--include-node', '--output-dir', path.join(work, 'package')], { cwd: repo, maxBuffer: 16 * 1024 * 1024 })).stdout.trim();
  await run('tar', ['-xzf', packaged, '-C', path.join(work, 'package')]);
  const unpacked = packaged.replace(/\.tar\.gz$/, '');
  const containerd = await containerd17Binary();
  assert.ok(containerd, 'containerd 1.7 is fetched (bash scripts/fetch-containerd-1.7.sh; .ci/run does)');

  node = await bootNode({
    binds: [{ host: media, inside: path.dirname(BUNDLE_INSIDE), readOnly: true }],
    prepare: async (root) => {
      await run(path.join(unpacked, 'install.sh'), ['--root', root, '--runtime', 'containerd']);
      const bin = path.join(root, 'usr/local/bin');
      for (const tool of ['containerd', 'containerd-shim-runc-v2', 'ctr']) await copyFile(path.join(path.dirname(containerd!), tool), path.join(bin, tool));
      await run('chmod', ['0755', ...['containerd', 'containerd-shim-runc-v2', 'ctr'].map((t) => path.join(bin, t))]);
      await mkdir(path.join(root, 'etc/containerd/certs.d'), { recursive: true });
      await writeFile(path.join(root, 'etc/containerd/config.toml'), CONTAINERD_CONFIG);
      await writeFile(path.join(root, 'etc/systemd/system/containerd.service'), CONTAINERD_UNIT);
      await mkdir(path.join(root, 'etc/systemd/system/multi-user.target.wants'), { recursive: true });
      await symlink('/etc/systemd/system/containerd.service', path.join(root, 'etc/systemd/system/multi-user.target.wants/containerd.service'));
      // The operator's edit of the installed config: a containerd node; a small reserve for this test disk.
      await writeFile(path.join(root, 'etc/pin-preload/config.toml'), '[runtime]\nkind = "containerd"\n\n[storage]\nreserve = "64MiB"\n');
    },
  });
});

after(async () => {
  await node?.destroy();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('a systemd-booted node', { concurrency: false }, () => {
  test('containerd node: import through pin-preload-import@, enable --now, every image present, a restart pulls nothing, stop is clean, one journal line per event', async () => {
    assert.match(await inside(['systemctl', 'is-active', 'containerd']), /^active/);
    assert.match(await inside(['ctr', 'version']), /Version:\s+1\.7\./, 'the node runs containerd 1.7');

    const unit = `pin-preload-import@${(await inside(['systemd-escape', '--path', BUNDLE_INSIDE])).trim()}.service`;
    const imported = await node!.exec(['systemctl', 'start', unit], { timeoutMs: 120_000 });
    if (imported.code !== 0) assert.fail(`${unit} failed:\n${(await node!.exec(['journalctl', '-u', unit, '--no-pager', '-n', '30'])).stdout}`);
    assert.equal((await inside(['systemctl', 'show', '-p', 'Result', '--value', unit])).trim(), 'success');
    assert.deepEqual((await inside(['ls', '/var/lib/pin-preload/bundles'])).split('\n').filter(Boolean).sort(), ['node.tar', 'node.tar.seal.json']);

    await inside(['systemctl', 'enable', '--now', 'pin-preload']);
    const first = await converged('first sync');
    assert.deepEqual(first.images.map((i) => i.name), images);
    const inRuntime = new Set((await inside(['ctr', '-n', 'k8s.io', 'images', 'ls', '-q'])).split('\n').filter(Boolean));
    assert.deepEqual(images.filter((name) => !inRuntime.has(name)), [], 'every image of the bundle is in containerd');
    // containerd reports an image pinned when pin-preload labels it (io.cri-containerd.pinned), at once from
    // 1.7.10: every image is reported pinned exactly when this containerd does that.
    const reportedPinned = first.images.filter((i) => i.state === 'pinned').length;
    assert.ok(first.images.every((i) => i.state === 'pinned' || i.state === 'present'), JSON.stringify(first.summary));
    // "containerd github.com/containerd/containerd 1.7.24~ds1 …"
    const version = (await inside(['containerd', '--version'])).split(' ')[2] ?? '';
    const pinsLive = containerdPinning(version) === 'live';
    assert.equal(reportedPinned, pinsLive ? images.length : 0, `images reported pinned by containerd ${version}`);
    process.stderr.write(`# systemd node: ${images.length} images present, ${reportedPinned} reported pinned; runtime.pinning: ${first.runtime.pinning}\n`);

    // A restart finds every image in place: its sync pulls nothing.
    const synced = await startAndSync('restart', 'after restart');
    assert.match(synced, new RegExp(`generation \\d+: ${images.length} image\\(s\\) in place, 0 pulled`), 'the restarted service pulled nothing');

    // Stop: SIGTERM, clean exit well within TimeoutStopSec (no SIGKILL, Result=success).
    const timeoutStop = (await inside(['systemctl', 'show', '-p', 'TimeoutStopUSec', '--value', 'pin-preload'])).trim();
    const stopStarted = Date.now();
    await inside(['systemctl', 'stop', 'pin-preload'], 60_000);
    const stopMs = Date.now() - stopStarted;
    assert.equal((await inside(['systemctl', 'show', '-p', 'Result', '--value', 'pin-preload'])).trim(), 'success', 'stopped without a timeout or a kill');
    assert.ok(stopMs < 30_000, `stop took ${stopMs} ms (TimeoutStopSec ${timeoutStop})`);

    // The journal: every entry one event on one line, never a stack trace cut into lines.
    // journald reads the service's stream on its own time: the last line may land just after the stop.
    let messages: string[] = [];
    for (const until = Date.now() + 10_000; Date.now() < until && !messages.some((m) => /(^|: )stopped$/.test(m)); await new Promise((r) => setTimeout(r, 200))) {
      const entries = (await inside(['journalctl', '-u', 'pin-preload', '-o', 'json', '--no-pager'])).split('\n').filter(Boolean);
      messages = entries.map((line) => messageOf(JSON.parse(line) as Record<string, unknown>));
    }
    assert.ok(messages.some((m) => /(^|: )stopped$/.test(m)), 'the service logged its stop');
    assert.deepEqual(messages.filter((m) => m.includes('\n') || /^\s+at .+:\d+:\d+\)?$/.test(m) || /^\s*(Error|TypeError):/.test(m)), [], 'journal entries that are not one event each');
  });

  test('CRI-O-shaped node: the hardened pin-preload.service runs `systemctl reload crio` (stand-in crio.service records the reload)', async () => {
    // No CRI-O here: crio.service is a stand-in whose CRI server is containerd on CRI-O's socket, with its own
    // store and hosts.toml pointing at the mirror (CRI-O would read the registries.conf.d drop-in instead),
    // and whose ExecReload only records that it ran. What this proves: the service, inside its sandbox
    // (ProtectSystem=strict, no capabilities, @system-service), writes CRI-O's drop-ins and gets
    // `systemctl reload crio` through systemd to crio's ExecReload. Not proven: CRI-O's own reaction to it.
    const root = node!.root;
    await inside(['systemctl', 'disable', '--now', 'containerd']);
    const unpacked = (await run('sh', ['-c', `ls -d ${path.join(work, 'package')}/pin-preload-*/`])).stdout.trim();
    await run(path.join(unpacked, 'install.sh'), ['--root', root, '--runtime', 'crio']);
    await writeFile(path.join(root, 'etc/pin-preload/config.toml'), '[runtime]\nkind = "crio"\n\n[storage]\nreserve = "64MiB"\n');
    for (const dir of ['etc/crio/crio.conf.d', 'etc/containers/registries.conf.d', 'etc/crio-standin/certs.d/quay.io']) await mkdir(path.join(root, dir), { recursive: true });
    await writeFile(path.join(root, 'etc/crio-standin/certs.d/quay.io/hosts.toml'), 'server = "http://127.0.0.1:5000"\n\n[host."http://127.0.0.1:5000"]\n  capabilities = ["pull", "resolve"]\n');
    await writeFile(path.join(root, 'etc/crio-standin/config.toml'), CONTAINERD_CONFIG.replace('/etc/containerd/certs.d', '/etc/crio-standin/certs.d')
      .replace('version = 2\n', 'version = 2\nroot = "/var/lib/crio-standin"\nstate = "/run/crio-standin"\n[grpc]\n  address = "/var/run/crio/crio.sock"\n[ttrpc]\n  address = "/var/run/crio/crio.sock.ttrpc"\n'));
    await writeFile(path.join(root, 'etc/systemd/system/crio.service'), `[Unit]
Description=stand-in for CRI-O (containerd on CRI-O's socket; reloads are recorded)

[Service]
ExecStart=/usr/local/bin/containerd --config /etc/crio-standin/config.toml
ExecReload=/bin/sh -c 'echo reload >> /var/lib/crio-standin-reloads'
Type=notify
KillMode=process
`);
    await inside(['systemctl', 'daemon-reload']);
    await inside(['systemctl', 'start', 'crio']);
    const line = await startAndSync('start', 'CRI-O-shaped sync');
    assert.match(line, new RegExp(`generation \\d+: ${images.length} image\\(s\\) in place, ${images.length} pulled`), 'the stand-in runtime got every image through the mirror');
    const synced = await converged('CRI-O-shaped sync');
    const reloads = await readFile(path.join(root, 'var/lib/crio-standin-reloads'), 'utf8').catch(() => '');
    const journal = (await inside(['journalctl', '-u', 'pin-preload', '--no-pager', '-o', 'cat'])).split('\n');
    assert.ok(reloads.split('\n').filter(Boolean).length >= 1, `crio's ExecReload never ran:\n${journal.slice(-30).join('\n')}`);
    assert.ok(journal.some((l) => l.includes('running systemctl reload crio')), 'the service logged the reload it ran');
    assert.deepEqual(journal.filter((l) => /RUNTIME_RELOAD_FAILED|reload command .* failed/.test(l)), []);
    assert.equal(synced.lastFailedGeneration ?? 0, 0, `a sync failed: ${synced.lastFailedGenerationError ?? ''}`);
    // CRI-O's drop-ins were written inside the sandbox (the pinned images file names every image).
    const pinnedFile = await readFile(path.join(root, 'etc/crio/crio.conf.d/50-pinned-images'), 'utf8');
    assert.deepEqual(images.filter((name) => !pinnedFile.includes(JSON.stringify(name))), []);
    await inside(['systemctl', 'stop', 'pin-preload', 'crio']);
  });
});
