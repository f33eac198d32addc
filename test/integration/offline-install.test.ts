// The offline node package: `scripts/package.sh` builds the tarball from the built tree without network,
// and its install.sh installs a working pin-preload into a root, idempotently, keeping an edited config.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, existsSync, appendFileSync, writeFileSync,
  mkdirSync, symlinkSync, copyFileSync, truncateSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const repo = new URL('../../../', import.meta.url).pathname;
const pkg = JSON.parse(readFileSync(path.join(repo, 'package.json'), 'utf8')) as { version: string };
const nodeMajor = process.versions.node.split('.')[0]!;
const packageName = `pin-preload-${pkg.version}-linux-${process.arch}-node${nodeMajor}`;

function run(file: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): SpawnSyncReturns<string> {
  return spawnSync(file, args, { encoding: 'utf8', timeout: 120_000, ...options });
}

function succeeds(file: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): string {
  const result = run(file, args, options);
  assert.equal(result.status, 0, `${file} ${args.join(' ')} failed:\n${result.stdout}${result.stderr}`);
  return result.stdout;
}

function tempDir(t: { after: (fn: () => void) => void }, label: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), `pin-preload-${label}-`));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Builds the package into a temp dir and unpacks it; returns the unpacked package directory. */
function buildAndUnpack(t: { after: (fn: () => void) => void }, extraArgs: string[] = []): string {
  const out = tempDir(t, 'package');
  const printed = succeeds('bash', [path.join(repo, 'scripts/package.sh'), '--output-dir', out, ...extraArgs], { cwd: repo });
  const tarball = path.join(out, `${packageName}.tar.gz`);
  assert.equal(printed.trim(), tarball, 'package.sh prints the tarball it wrote');
  succeeds('tar', ['-xzf', tarball, '-C', out]);
  return path.join(out, packageName);
}

/** A PATH directory holding only links to the named tools (so, in particular, no node). */
function pathWithOnly(t: { after: (fn: () => void) => void }, toolNames: string[]): string {
  const tools = path.join(tempDir(t, 'bare-path'), 'bin');
  mkdirSync(tools);
  for (const tool of toolNames) {
    const found = run('sh', ['-c', `command -v ${tool}`]).stdout.trim();
    assert.ok(found.startsWith('/'), `${tool} is installed`);
    symlinkSync(found, path.join(tools, tool));
  }
  return tools;
}

function mode(file: string): string {
  return (statSync(file).mode & 0o7777).toString(8);
}

test('the package installs into a root, runs, and a second install keeps the edited config', (t) => {
  const unpacked = buildAndUnpack(t);
  const app = path.join(unpacked, 'app');
  // Production dependencies only, with the compiled native module and nothing of its build tree.
  assert.ok(existsSync(path.join(app, 'node_modules/better-sqlite3/build/Release/better_sqlite3.node')));
  assert.equal(existsSync(path.join(app, 'node_modules/typescript')), false, 'dev dependency typescript was shipped');
  assert.equal(existsSync(path.join(app, 'node_modules/fast-check')), false, 'dev dependency fast-check was shipped');
  assert.equal(existsSync(path.join(app, 'node_modules/better-sqlite3/deps')), false);
  assert.equal(existsSync(path.join(app, 'dist/test')), false, 'compiled tests were shipped');
  assert.equal(existsSync(path.join(app, 'node')), false, 'node is shipped only with --include-node');

  const root = tempDir(t, 'root');
  const firstInstall = succeeds(path.join(unpacked, 'install.sh'), ['--root', root]);
  assert.match(firstInstall, /systemctl daemon-reload && systemctl enable --now pin-preload/);

  const launcher = path.join(root, 'usr/local/bin/pin-preload');
  assert.equal(succeeds(launcher, ['--version']).trim(), pkg.version);
  assert.equal(mode(launcher), '755');
  const units = path.join(root, 'etc/systemd/system');
  assert.equal(mode(path.join(units, 'pin-preload.service')), '644');
  assert.equal(mode(path.join(units, 'pin-preload-import@.service')), '644');
  assert.match(readFileSync(path.join(units, 'pin-preload.service'), 'utf8'),
    /^ExecStart=\/usr\/local\/bin\/pin-preload run --config \/etc\/pin-preload\/config.toml$/m);
  assert.equal(existsSync(path.join(units, 'pin-preload.service.d')), false, 'the containerd drop-in is for containerd only');
  const config = path.join(root, 'etc/pin-preload/config.toml');
  assert.equal(mode(config), '644');
  assert.equal(readFileSync(config, 'utf8'), readFileSync(path.join(repo, 'systemd/config.toml.example'), 'utf8'));

  // The installed native module loads under the node that will run the app.
  const lib = path.join(root, 'usr/local/lib/pin-preload');
  const sqlite = succeeds(process.execPath, ['--input-type=module', '-e',
    "import Database from 'better-sqlite3'; console.log(new Database(':memory:').prepare('select 41 + 1 as n').get().n)"], { cwd: lib });
  assert.equal(sqlite.trim(), '42');

  appendFileSync(config, '# edited by the operator\n');
  const edited = readFileSync(config, 'utf8');
  const secondInstall = succeeds(path.join(unpacked, 'install.sh'), ['--root', root]);
  assert.match(secondInstall, /kept your existing/);
  assert.equal(readFileSync(config, 'utf8'), edited);
  assert.equal(succeeds(launcher, ['--version']).trim(), pkg.version);
  assert.deepEqual(readdirSync(path.join(root, 'usr/local/lib')), ['pin-preload'], 'no leftovers of the swap');
  assert.deepEqual(readdirSync(path.join(root, 'etc/pin-preload')).sort(), ['config.toml', 'config.toml.example']);

  // Another prefix and containerd: the units follow the prefix and the containerd drop-in is installed.
  const optRoot = tempDir(t, 'root-opt');
  succeeds(path.join(unpacked, 'install.sh'), ['--root', optRoot, '--prefix', '/opt/pin-preload', '--runtime', 'containerd']);
  assert.equal(succeeds(path.join(optRoot, 'opt/pin-preload/bin/pin-preload'), ['--version']).trim(), pkg.version);
  const optUnit = readFileSync(path.join(optRoot, 'etc/systemd/system/pin-preload.service'), 'utf8');
  assert.match(optUnit, /^ExecStart=\/opt\/pin-preload\/bin\/pin-preload run /m);
  assert.doesNotMatch(optUnit, /\/usr\/local\//);
  assert.equal(mode(path.join(optRoot, 'etc/systemd/system/pin-preload.service.d/10-containerd.conf')), '644');
  assert.ok(statSync(path.join(optRoot, 'etc/containerd/certs.d')).isDirectory());

  // A native module this node cannot load (here: a damaged copy) is refused before anything is installed.
  truncateSync(path.join(app, 'node_modules/better-sqlite3/build/Release/better_sqlite3.node'), 1024);
  const cleanRoot = tempDir(t, 'root-refused');
  const refused = run(path.join(unpacked, 'install.sh'), ['--root', cleanRoot]);
  assert.equal(refused.status, 1);
  assert.match(refused.stderr, /cannot load this package's native module \(better-sqlite3\)/);
  assert.deepEqual(readdirSync(cleanRoot), []);
});

test('install.sh refuses a node whose major version differs from the native module\'s, installing nothing', (t) => {
  // A package whose native module was built for another Node.js major; the refusal comes before any copy.
  const unpacked = tempDir(t, 'package');
  mkdirSync(path.join(unpacked, 'app'));
  copyFileSync(path.join(repo, 'scripts/install.sh'), path.join(unpacked, 'install.sh'));
  const otherMajor = String(Number(nodeMajor) + 2);
  writeFileSync(path.join(unpacked, 'build-info.env'),
    `PIN_PRELOAD_VERSION=${pkg.version}\nNODE_MAJOR=${otherMajor}\nARCH=${process.arch}\nINCLUDES_NODE=0\n`);
  const root = tempDir(t, 'root');
  const refused = run('sh', [path.join(unpacked, 'install.sh'), '--root', root]);
  assert.equal(refused.status, 1);
  assert.match(refused.stderr, new RegExp(`is v${process.versions.node.replaceAll('.', '\\.')}, but this package's native module \\(better-sqlite3\\) was built for Node\\.js ${otherMajor}`));
  assert.deepEqual(readdirSync(root), []);
});

test('install.sh on a node without Node.js says to use the package built with --include-node', (t) => {
  const unpacked = tempDir(t, 'package');
  mkdirSync(path.join(unpacked, 'app'));
  copyFileSync(path.join(repo, 'scripts/install.sh'), path.join(unpacked, 'install.sh'));
  writeFileSync(path.join(unpacked, 'build-info.env'),
    `PIN_PRELOAD_VERSION=${pkg.version}\nNODE_MAJOR=${nodeMajor}\nARCH=${process.arch}\nINCLUDES_NODE=0\n`);
  const tools = pathWithOnly(t, ['sh', 'dirname', 'uname']);
  const root = tempDir(t, 'root');
  const refused = run(path.join(tools, 'sh'), [path.join(unpacked, 'install.sh'), '--root', root], { env: { PATH: tools } });
  assert.equal(refused.status, 1);
  assert.match(refused.stderr, /no Node\.js found/);
  assert.match(refused.stderr, /--include-node/);
  assert.deepEqual(readdirSync(root), []);
});

test('with --include-node the installed launcher runs on a machine without node on PATH', (t) => {
  const unpacked = buildAndUnpack(t, ['--include-node']);
  assert.match(readFileSync(path.join(unpacked, 'build-info.env'), 'utf8'), /^INCLUDES_NODE=1$/m);
  const root = tempDir(t, 'root');
  // Only the tools the launcher itself uses: no node anywhere on PATH.
  const tools = pathWithOnly(t, ['sh', 'readlink', 'dirname']);
  succeeds(path.join(unpacked, 'install.sh'), ['--root', root]);
  const launcher = path.join(root, 'usr/local/bin/pin-preload');
  assert.notEqual(run('sh', ['-c', 'command -v node'], { env: { PATH: tools } }).status, 0, 'node is not on the bare PATH');
  assert.equal(succeeds(launcher, ['--version'], { env: { PATH: tools } }).trim(), pkg.version);
});
