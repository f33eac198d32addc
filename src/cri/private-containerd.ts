// A private containerd (own root, state, sockets, temp dirs; native snapshotter) whose CRI plugin serves the
// runtime.v1 ImageService: for the demo, the benchmarks and the tests. It never touches the system containerd.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:fs';
import { access, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { CriImageService } from './image-service.js';
import { stopChild } from '../util/child-process.js';
import { waitFor } from '../util/net.js';

export interface RunningContainerd {
  /** "unix:///tmp/…/containerd.sock" */
  readonly endpoint: string;
  readonly socketPath: string;
  readonly root: string;
  readonly state: string;
  /** containerd's log so far (stderr), for assertions and failure messages. */
  log(): string;
  stop(): Promise<void>;
}

export interface ContainerdOptions {
  /** A certs.d-style directory (<host>/hosts.toml) for the CRI plugin's registry.config_path. */
  readonly registryHostsDir?: string;
  /** Puts `root` on a tmpfs of this size, so a test can fill the image store (ENOSPC). */
  readonly rootSizeBytes?: number;
  /** The containerd binary to run: "containerd" (PATH, Debian 12's 1.6) unless given, e.g. containerd17Binary(). */
  readonly binary?: string;
}

/**
 * Where scripts/fetch-containerd-1.7.sh unpacks Debian 13's containerd 1.7 (the first version whose CRI plugin
 * reports images pinned); PIN_PRELOAD_CONTAINERD_1_7 overrides it. The one place code and tests learn the path.
 */
const CONTAINERD_1_7_DEFAULT = '/var/cache/pin-preload/containerd-1.7/usr/bin/containerd';

/** Where the containerd 1.7 binary is expected (whether or not it is there). */
export function containerd17Path(): string {
  return process.env['PIN_PRELOAD_CONTAINERD_1_7'] || CONTAINERD_1_7_DEFAULT;
}

/** The cached containerd 1.7 binary, or undefined when it has not been fetched (run scripts/fetch-containerd-1.7.sh). */
export async function containerd17Binary(): Promise<string | undefined> {
  const binary = containerd17Path();
  try {
    await access(binary, constants.X_OK);
    return binary;
  } catch {
    return undefined;
  }
}

/** Snapshotters and services the test machine lacks; disabling them keeps the log quiet and start-up quick. */
const DISABLED_PLUGINS = [
  'io.containerd.snapshotter.v1.aufs',
  'io.containerd.snapshotter.v1.btrfs',
  'io.containerd.snapshotter.v1.zfs',
  'io.containerd.snapshotter.v1.devmapper',
  'io.containerd.internal.v1.tracing',
];

const STOP_GRACE_MS = 5_000;
const run = promisify(execFile);

function tomlString(value: string): string {
  return JSON.stringify(value);
}

function containerdConfig(dirs: {
  root: string;
  state: string;
  socket: string;
  opt: string;
  cniConf: string;
  cniBin: string;
  hosts: string;
}): string {
  return [
    'version = 2',
    `root = ${tomlString(dirs.root)}`,
    `state = ${tomlString(dirs.state)}`,
    `disabled_plugins = [${DISABLED_PLUGINS.map(tomlString).join(', ')}]`,
    '',
    '[grpc]',
    `  address = ${tomlString(dirs.socket)}`,
    '',
    '[ttrpc]',
    `  address = ${tomlString(`${dirs.socket}.ttrpc`)}`,
    '',
    '[debug]',
    '  level = "debug"',
    '',
    // The opt plugin otherwise creates /opt/containerd on the host.
    '[plugins."io.containerd.internal.v1.opt"]',
    `  path = ${tomlString(dirs.opt)}`,
    '',
    '[plugins."io.containerd.grpc.v1.cri"]',
    '  [plugins."io.containerd.grpc.v1.cri".containerd]',
    // overlayfs needs a kernel mount per layer; native copies files and works anywhere (tmpfs, overlay roots).
    '    snapshotter = "native"',
    '  [plugins."io.containerd.grpc.v1.cri".cni]',
    `    bin_dir = ${tomlString(dirs.cniBin)}`,
    `    conf_dir = ${tomlString(dirs.cniConf)}`,
    '  [plugins."io.containerd.grpc.v1.cri".registry]',
    `    config_path = ${tomlString(dirs.hosts)}`,
    '',
  ].join('\n');
}

export async function startContainerd(options: ContainerdOptions = {}): Promise<RunningContainerd> {
  const work = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-containerd-'));
  const dirs = {
    root: path.join(work, 'root'),
    state: path.join(work, 'state'),
    // unix socket paths are limited to 108 bytes; os.tmpdir() keeps this short.
    socket: path.join(work, 'containerd.sock'),
    opt: path.join(work, 'opt'),
    cniConf: path.join(work, 'cni', 'net.d'),
    cniBin: path.join(work, 'cni', 'bin'),
    hosts: options.registryHostsDir ?? path.join(work, 'certs.d'),
  };
  for (const dir of [dirs.root, dirs.state, dirs.opt, dirs.cniConf, dirs.cniBin, dirs.hosts]) {
    await mkdir(dir, { recursive: true });
  }
  if (options.rootSizeBytes !== undefined) {
    try {
      await run('mount', ['-t', 'tmpfs', '-o', `size=${options.rootSizeBytes}`, 'tmpfs', dirs.root]);
    } catch (err) {
      await rm(work, { recursive: true, force: true });
      throw err;
    }
  }
  const configFile = path.join(work, 'config.toml');
  await writeFile(configFile, containerdConfig(dirs));

  const child: ChildProcess = spawn(options.binary ?? 'containerd', ['--config', configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-200_000);
  });
  let spawnError: Error | undefined;
  // A failed spawn (no containerd binary) emits 'error' and no 'exit'.
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', (err) => {
      spawnError = err;
      resolve();
    });
  });

  const stop = async () => {
    if (spawnError === undefined) await stopChild(child, STOP_GRACE_MS);
    await unmountUnder(work);
    await rm(work, { recursive: true, force: true });
  };

  const endpoint = `unix://${dirs.socket}`;
  // waitFor keeps polling through failed checks, so a containerd that dies must end the wait itself.
  const died = exited.then(() => {
    throw new Error(spawnError ? `cannot run containerd: ${spawnError.message}` : `containerd exited (${child.exitCode ?? child.signalCode})`);
  });
  died.catch(() => undefined);
  try {
    const serving = waitFor(
      `containerd CRI on ${endpoint}`,
      async () => {
        const cri = await CriImageService.connect(endpoint, { timeoutMs: 1_000 });
        try {
          const version = await cri.version();
          return version.runtimeName === 'containerd';
        } finally {
          cri.close();
        }
      },
      20_000,
    );
    serving.catch(() => undefined);
    await Promise.race([serving, died]);
  } catch (err) {
    await stop();
    throw new Error(`containerd did not serve CRI on ${endpoint}: ${(err as Error).message}\n${log.slice(-4000)}`);
  }
  return { endpoint, socketPath: dirs.socket, root: dirs.root, state: dirs.state, log: () => log, stop };
}

/** The tmpfs root, and anything a crashed run left mounted under root or state (the native snapshotter mounts nothing). */
async function unmountUnder(dir: string): Promise<void> {
  const mounts = await readFile('/proc/self/mounts', 'utf8').catch(() => '');
  const targets = mounts
    .split('\n')
    .map((line) => line.split(' ')[1] ?? '')
    .map((target) => target.replace(/\\040/g, ' '))
    .filter((target) => target.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const target of targets) {
    await run('umount', ['-l', target]).catch(() => undefined);
  }
}

