// A throwaway node with systemd as PID 1 for tests: the cached Debian rootfs (scripts/build-node-rootfs.sh)
// under an overlayfs with a temp upper dir, booted with systemd-nspawn, driven with nsenter, always powered off.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const NODE_ROOTFS = path.join(process.env.PIN_PRELOAD_CACHE_DIR || '/var/cache/pin-preload', 'rootfs-bookworm');
/** Written last by scripts/build-node-rootfs.sh: the rootfs is complete. */
const ROOTFS_MARKER = 'etc/pin-preload-test-rootfs';
const PATH_INSIDE = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface ExecResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface BootedNode {
  /** The node's root as the host sees it (the overlay): files written here are seen inside at once. */
  readonly root: string;
  /** Runs a command inside the node (all of PID 1's namespaces, a clean environment); never throws on exit codes. */
  exec(argv: readonly string[], options?: { timeoutMs?: number }): Promise<ExecResult>;
  /** The node's console output so far (boot messages), for failure reports. */
  console(): string;
  /** Powers the node off (SIGTERM to nspawn, then SIGKILL), unmounts the overlay, removes the temp dirs. */
  destroy(): Promise<void>;
}

/** Fails with what to do when the cached rootfs is missing (`.ci/run` builds it). */
export async function assertNodeRootfs(): Promise<void> {
  const ready = await stat(path.join(NODE_ROOTFS, ROOTFS_MARKER)).then(() => true, () => false);
  if (!ready) throw new Error(`no node rootfs at ${NODE_ROOTFS}: run "bash scripts/build-node-rootfs.sh" (as root; .ci/run does)`);
}

/** An overlay over the cached rootfs; `prepare` fills it before boot (packages, units, config). */
export async function bootNode(options: { binds?: ReadonlyArray<{ host: string; inside: string; readOnly?: boolean }>; prepare: (root: string) => Promise<void>; bootTimeoutMs?: number }): Promise<BootedNode> {
  await assertNodeRootfs();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-node-'));
  const upper = path.join(dir, 'upper');
  const work = path.join(dir, 'work');
  const root = path.join(dir, 'root');
  await Promise.all([upper, work, root].map((d) => mkdir(d)));
  // An overlay costs nothing to set up, where a copy of the 170 MB rootfs takes seconds.
  await run('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${NODE_ROOTFS},upperdir=${upper},workdir=${work}`, root]);
  const machine = `pin-preload-test-${process.pid}-${path.basename(dir).slice(-6)}`;
  let nspawn: ChildProcess | undefined;
  let consoleText = '';
  let pid1: number | undefined;

  const destroy = async () => {
    if (nspawn && nspawn.exitCode === null && nspawn.signalCode === null) {
      const exited = new Promise<void>((resolve) => nspawn!.once('exit', () => resolve()));
      nspawn.kill('SIGTERM'); // nspawn asks the node's systemd to power off
      const timer = setTimeout(() => nspawn!.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    }
    await run('umount', [root]).catch(() => run('umount', ['-l', root]).catch(() => undefined));
    await rm(dir, { recursive: true, force: true });
    await rm(path.join('/run/systemd/nspawn/propagate', machine), { recursive: true, force: true }).catch(() => undefined);
  };

  try {
    await options.prepare(root);
    const args = ['--quiet', '--register=no', '--keep-unit', `--machine=${machine}`, '-D', root, '--boot'];
    for (const b of options.binds ?? []) args.splice(args.length - 1, 0, `--bind${b.readOnly ? '-ro' : ''}=${b.host}:${b.inside}`);
    nspawn = spawn('systemd-nspawn', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const collect = (chunk: Buffer) => (consoleText = (consoleText + chunk.toString()).slice(-100_000));
    nspawn.stdout!.on('data', collect);
    nspawn.stderr!.on('data', collect);
    const nspawnPid = nspawn.pid!;
    const deadline = Date.now() + (options.bootTimeoutMs ?? 60_000);
    // The node's PID 1 is the systemd that nspawn forked; its namespaces are the node's.
    while (pid1 === undefined) {
      if (nspawn.exitCode !== null || Date.now() > deadline) throw new Error(`the node did not start:\n${consoleText}`);
      pid1 = await systemdChildOf(nspawnPid);
      if (pid1 === undefined) await new Promise((r) => setTimeout(r, 100));
    }
    const node: BootedNode = {
      root,
      exec: async (argv, execOptions = {}) => {
        try {
          const { stdout, stderr } = await run('nsenter', ['-t', String(pid1), '-a', 'env', '-i', `PATH=${PATH_INSIDE}`, 'LANG=C.UTF-8', ...argv], {
            timeout: execOptions.timeoutMs ?? 60_000,
            maxBuffer: 32 * 1024 * 1024,
          });
          return { code: 0, stdout, stderr };
        } catch (err) {
          const e = err as { code?: unknown; stdout?: string; stderr?: string; killed?: boolean };
          return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: `${e.stderr ?? ''}${e.killed ? '\n(timed out)' : ''}` };
        }
      },
      console: () => consoleText,
      destroy,
    };
    // Boot is done when systemd says so ("running", or "degraded" with a failed unit the test will name).
    // Until PID 1 has opened its private socket, systemctl cannot reach it ("Failed to connect to bus", or
    // "offline" just before): ask again (bounded).
    let state: ExecResult;
    do {
      state = await node.exec(['systemctl', 'is-system-running', '--wait'], { timeoutMs: Math.max(1000, deadline - Date.now()) });
      if (!/Failed to connect to bus/.test(state.stderr) && state.stdout.trim() !== 'offline') break;
      await new Promise((r) => setTimeout(r, 100));
    } while (Date.now() < deadline);
    if (!/^(running|degraded)/.test(state.stdout.trim())) throw new Error(`the node did not finish booting (${state.stdout.trim() || state.stderr.trim()}):\n${consoleText}`);
    return node;
  } catch (err) {
    await destroy();
    throw err;
  }
}

async function systemdChildOf(parent: number): Promise<number | undefined> {
  const tasks = await readdir(`/proc/${parent}/task`).catch(() => [] as string[]);
  for (const task of tasks) {
    const children = (await readFile(`/proc/${parent}/task/${task}/children`, 'utf8').catch(() => '')).trim().split(/\s+/).filter(Boolean);
    for (const child of children) {
      const comm = (await readFile(`/proc/${child}/comm`, 'utf8').catch(() => '')).trim();
      if (comm === 'systemd') return Number(child);
    }
  }
  return undefined;
}
