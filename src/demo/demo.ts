// The whole pin-preload flow on the built-in sample release, on one machine, in under a minute:
// upstream registry → bundle plan/create/verify (bastion) → import, serve, pull, status (node); then day 2:
// the next z-stream as a delta bundle → import, pull across base + delta, preload retiring the first release.

import { spawn, type ChildProcess } from 'node:child_process';
import { access, constants, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseReference } from '../oci/reference.js';
import { parseManifest } from '../oci/manifest.js';
import { LayoutStore } from '../mirror/layout-store.js';
import { startMirror, type RunningMirror } from '../mirror/server.js';
import { RegistryClient, parseRegistriesConf } from '../registry/index.js';
import { generateSampleRelease, type SampleRelease } from '../sample/index.js';
import { openBundle } from '../bundle/reader.js';
import { containerd17Binary, containerd17Path, startContainerd, type RunningContainerd } from '../cri/private-containerd.js';
import { stopChild } from '../util/child-process.js';
import { freePort, waitFor } from '../util/net.js';
import { formatBytes } from '../util/size.js';
import { cliPath, DemoNarrator } from './steps.js';

export interface DemoOptions {
  /** Where everything goes; a fresh temp dir (removed at the end unless keep) by default. */
  readonly workDir?: string;
  readonly keep?: boolean;
  /** A CRI socket (containerd or CRI-O) to pre-load into for real. */
  readonly criEndpoint?: string;
  /**
   * Without criEndpoint: 'auto' starts a private containerd (own root, state and socket in the demo dir) when
   * running as root with containerd installed, else pulls with our own registry client; 'none' always does the latter.
   */
  readonly privateRuntime?: 'auto' | 'none';
  readonly runtimeKind?: 'crio' | 'containerd';
  readonly out?: NodeJS.WritableStream;
}

interface DemoPaths {
  readonly work: string;
  readonly upstream: string;
  readonly keys: string;
  readonly media: string;
  readonly node: string;
}

function demoPaths(work: string): DemoPaths {
  return {
    work,
    upstream: path.join(work, 'upstream'),
    keys: path.join(work, 'keys'),
    media: path.join(work, 'media'),
    node: path.join(work, 'node'),
  };
}

/** registries.conf for the bastion: the sample's source hosts are served by the local upstream. */
function upstreamRegistriesConf(upstreamHost: string): string {
  return ['quay.io', 'registry.example.com']
    .map((source) => `[[registry]]\nprefix = "${source}"\nlocation = "${upstreamHost}"\ninsecure = true\n`)
    .join('\n');
}

/** registries.conf for a client on the node: the source hosts are blocked, only the mirror serves them. */
function mirrorOnlyRegistriesConf(mirrorHost: string): string {
  return ['quay.io', 'registry.example.com']
    .map((source) => `[[registry]]\nprefix = "${source}"\nlocation = "${source}"\nblocked = true\n\n[[registry.mirror]]\nlocation = "${mirrorHost}"\ninsecure = true\n`)
    .join('\n');
}

function hostsDir(paths: DemoPaths): string {
  return path.join(paths.node, 'etc', 'containerd', 'certs.d');
}

/** Whether `program` is on PATH (the demo only starts a private containerd where one is installed). */
async function onPath(program: string): Promise<boolean> {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    if (await access(path.join(dir, program), constants.X_OK).then(() => true, () => false)) return true;
  }
  return false;
}

interface PrivateRuntime {
  readonly containerd: RunningContainerd | undefined;
  /** Which containerd, and whether it can pin (or why there is none): said before the preload. */
  readonly note: string;
}

/**
 * The demo's private containerd: the cached 1.7 (scripts/fetch-containerd-1.7.sh), which pins, when it is there;
 * else the installed one (Debian 12's 1.6, which cannot pin).
 */
async function startPrivateRuntime(paths: DemoPaths, options: DemoOptions): Promise<PrivateRuntime> {
  if (options.criEndpoint) return { containerd: undefined, note: '' };
  if (options.privateRuntime === 'none') return { containerd: undefined, note: 'the private containerd is off (--no-private-runtime)' };
  if (process.getuid?.() !== 0) return { containerd: undefined, note: 'not running as root, so no private containerd' };
  const cached = await containerd17Binary();
  if (cached === undefined && !(await onPath('containerd'))) return { containerd: undefined, note: 'no containerd installed' };
  await mkdir(hostsDir(paths), { recursive: true });
  const containerd = await startContainerd({ registryHostsDir: hostsDir(paths), ...(cached ? { binary: cached } : {}) });
  const note = cached
    ? `containerd 1.7 from ${cached}: it pins (label io.cri-containerd.pinned=pinned, reported as CRI "pinned": true)`
    : `containerd from PATH; ${containerd17Path()} is missing (run scripts/fetch-containerd-1.7.sh), and containerd 1.6 cannot pin: the images end up present, not pinned`;
  return { containerd, note };
}

function nodeConfigToml(paths: DemoPaths, listen: string, options: DemoOptions): string {
  const etc = path.join(paths.node, 'etc');
  const kind = options.runtimeKind ?? 'containerd';
  return [
    '# Demo node configuration: like /etc/pin-preload/config.toml, with every path inside the demo directory.',
    '[paths]',
    `bundles = ${JSON.stringify(path.join(paths.node, 'bundles'))}`,
    `state = ${JSON.stringify(path.join(paths.node, 'state.db'))}`,
    '[mirror]',
    `listen = ${JSON.stringify(listen)}`,
    '[runtime]',
    `kind = "${kind}"`,
    `endpoint = ${JSON.stringify(options.criEndpoint ?? 'unix:///run/containerd/containerd.sock')}`,
    'reload = []',
    `pinned_images_file = ${JSON.stringify(path.join(etc, 'crio/crio.conf.d/50-pinned-images'))}`,
    `registries_dropin = ${JSON.stringify(path.join(etc, 'containers/registries.conf.d/50-pin-preload.conf'))}`,
    `hosts_dir = ${JSON.stringify(hostsDir(paths))}`,
    '[storage]',
    'reserve = "64MiB"',
    '[pins]',
    '# 1, not the default 2: so that day 2 shows the first release retired as soon as the second is all pinned.',
    'keep_releases = 1',
    '',
  ].join('\n');
}

/**
 * Pulls every image of the bundle through the mirror with our registry client, verifying every digest. A
 * delta's images name layers its base holds: their sizes come from `baseSeals`.
 */
async function pullThroughMirror(bundleSeal: string, mirrorHost: string, baseSeals: readonly string[] = []): Promise<{ images: number; blobs: number; bytes: number }> {
  const sizes = new Map<string, number>();
  for (const seal of baseSeals) {
    const base = await openBundle(seal);
    for (const b of base.manifest.blobs) sizes.set(b.digest, b.size);
    await base.close();
  }
  const bundle = await openBundle(bundleSeal);
  for (const b of bundle.manifest.blobs) sizes.set(b.digest, b.size);
  const client = new RegistryClient({ registriesConf: parseRegistriesConf(mirrorOnlyRegistriesConf(mirrorHost), 'demo registries.conf') });
  const pulled = new Set<string>();
  let bytes = 0;
  try {
    for (const image of bundle.manifest.images) {
      const ref = parseReference(image.name);
      for (const digest of image.manifests) {
        const manifest = await client.getManifest({ domain: ref.domain, path: ref.path, digest });
        parseManifest(manifest.bytes, manifest.mediaType, image.name); // a client must be able to read what it got
      }
      for (const digest of image.blobs) {
        if (pulled.has(digest)) continue;
        const size = sizes.get(digest);
        if (size === undefined) continue;
        await pipeline(client.blobStream(ref, { digest, size }), new Writable({ write: (chunk: Buffer, _e, done) => { bytes += chunk.length; done(); } }));
        pulled.add(digest);
      }
    }
  } finally {
    await client.close();
  }
  return { images: bundle.manifest.images.length, blobs: pulled.size, bytes };
}

/** Shows the first lines of a file the demo's node wrote, as an operator would `head` it. */
async function showFile(say: DemoNarrator, file: string, what: string, lines: number): Promise<void> {
  const text = await readFile(file, 'utf8').catch(() => undefined);
  if (text === undefined) return;
  const all = text.trimEnd().split('\n');
  say.say(`${what}:`);
  for (const line of all.slice(0, lines)) say.say(`  ${line.length > 110 ? `${line.slice(0, 109)}…` : line}`);
  if (all.length > lines) say.say(`  … (${all.length - lines} more lines)`);
}

async function startNodeMirror(args: string[], url: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [cliPath(), ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
  await waitFor('the node mirror', async () => {
    if (child.exitCode !== null) throw new Error(`pin-preload serve exited: ${stderr}`);
    return (await fetch(`${url}/v2/`)).status === 200;
  }, 20_000);
  return child;
}

/** The next z-stream's version: "4.16.0-sample" → "4.16.1-sample". */
function nextVersion(version: string): string {
  const m = /^(\d+)\.(\d+)\.(\d+)(.*)$/.exec(version);
  return m ? `${m[1]}.${m[2]}.${Number(m[3]) + 1}${m[4]}` : `${version}.1`;
}

/** The headings runDemo prints (`say.heading`): one per step on each path through it. */
const DEMO_STEPS = 14;

export async function runDemo(options: DemoOptions = {}): Promise<void> {
  const out = options.out ?? process.stdout;
  const work = options.workDir ? path.resolve(options.workDir) : await import('node:fs/promises').then((fs) => fs.mkdtemp(path.join(os.tmpdir(), 'pin-preload-demo-')));
  const paths = demoPaths(work);
  const say = new DemoNarrator(DEMO_STEPS, out);
  let upstream: RunningMirror | undefined;
  let upstream2: RunningMirror | undefined;
  let nodeMirror: ChildProcess | undefined;
  let runtime: RunningContainerd | undefined;
  out.write(`pin-preload demo: the whole flow on a built-in sample release, in ${work}\n`);
  try {
    await Promise.all([paths.keys, paths.media, paths.node].map((d) => mkdir(d, { recursive: true })));

    say.heading('Bastion: generate the built-in sample OpenShift release (an OCI layout on disk)');
    const sample: SampleRelease = await generateSampleRelease(paths.upstream, {});
    say.say(`${sample.releaseReference}: ${sample.components.length} components (OCI and Docker schema2, some multi-arch), ${sample.extraImages.length} extra images, ${sample.blobs} blobs, ${formatBytes(sample.totalBytes)}`);

    say.heading('Bastion: serve it as the "upstream" registry (stands in for quay.io and registry.example.com)');
    upstream = await startMirror({ store: await LayoutStore.open(paths.upstream), listen: '127.0.0.1:0', accessLog: false });
    const registriesConf = path.join(work, 'bastion-registries.conf');
    await writeFile(registriesConf, upstreamRegistriesConf(`127.0.0.1:${upstream.port}`));
    say.say(`upstream at ${upstream.url}; ${registriesConf} maps quay.io and registry.example.com to it`);
    const selection = ['--release', sample.releaseReference, ...sample.extraImages.flatMap((i) => ['--image', i.reference]), '--registries-conf', registriesConf];

    say.heading('Bastion: make a signing key');
    const key = path.join(paths.keys, 'bundle-key');
    await rm(key, { force: true });
    await rm(`${key}.pub`, { force: true });
    await say.run(['keygen', '--output', key]);

    say.heading('Bastion: plan the bundle (manifests only: what it will hold, after deduplication)');
    await say.run(['bundle', 'plan', ...selection]);

    say.heading('Bastion: create the signed bundle (every blob downloaded once, verified while streaming)');
    const bundleFile = path.join(paths.media, `sample-${sample.params.version}.tar`);
    await say.run(['bundle', 'create', ...selection, '--output', bundleFile, '--sign-key', key, '--quiet'], { env: { SOURCE_DATE_EPOCH: '1700000000' } });

    say.heading('Media: prove the bundle arrived whole and is signed by our key');
    await say.run(['bundle', 'verify', bundleFile, '--trusted-key', `${key}.pub`, '--quiet']);

    say.heading('Node: import the bundle from the media (copy + verify in one pass, registered in SQLite)');
    const listenPort = await freePort();
    const listen = `127.0.0.1:${listenPort}`;
    const config = path.join(paths.node, 'config.toml');
    const privateRuntime = await startPrivateRuntime(paths, options);
    runtime = privateRuntime.containerd;
    const criEndpoint = options.criEndpoint ?? runtime?.endpoint;
    await writeFile(config, nodeConfigToml(paths, listen, { ...options, ...(criEndpoint ? { criEndpoint } : {}) }));
    await say.run(['import', bundleFile, '--config', config]);

    say.heading('Node: serve the bundle as a local mirror and pull every image through it with our own client');
    const state = path.join(paths.node, 'state.db');
    const args = ['serve', '--bundle-dir', path.join(paths.node, 'bundles'), '--listen', listen, '--state', state, '--no-access-log'];
    out.write(`    $ pin-preload ${args.join(' ')} &\n`);
    nodeMirror = await startNodeMirror(args, `http://${listen}`);
    const seal = path.join(paths.node, 'bundles', `${path.basename(bundleFile)}.seal.json`);
    const pulled = await pullThroughMirror(seal, listen);
    say.say(`pulled ${pulled.images} images (${pulled.blobs} blobs, ${formatBytes(pulled.bytes)}) through ${listen} with quay.io and registry.example.com blocked: every digest verified`);
    await stopChild(nodeMirror); // preload serves the mirror itself, on the same address
    nodeMirror = undefined;

    if (criEndpoint) {
      say.heading(`Node: pre-load through CRI (${runtime ? 'a private containerd started for the demo' : criEndpoint}): storage check, mirror config, pulls, pin`);
      if (privateRuntime.note) say.say(privateRuntime.note);
      await say.run(['preload', '--config', config]);
      await showFile(say, path.join(paths.node, 'etc', 'crio', 'crio.conf.d', '50-pinned-images'), 'the CRI-O pinned-images drop-in it wrote (on a CRI-O node: /etc/crio/crio.conf.d/50-pinned-images)', 6);
    } else {
      say.heading('Node: pre-load through CRI: skipped');
      say.say(`no CRI runtime here${privateRuntime.note ? ` (${privateRuntime.note})` : ''}: as root with containerd installed the demo starts a private one (containerd 1.7, which pins, when scripts/fetch-containerd-1.7.sh has fetched it); or give --cri-endpoint SOCKET`);
      say.say('so nothing is pinned: status below shows the bundle and its images pending');
    }

    say.heading('Node: status, as MachineConfigNode shows it');
    await say.run(['status', '--config', config]);

    // Day 2: the next z-stream, as a delta against the first bundle.
    say.heading('Bastion, day 2: the next z-stream of the sample (a fifth of the components rebuilt), served upstream');
    const next = await generateSampleRelease(path.join(work, 'upstream-2'), { version: nextVersion(sample.params.version), changedShare: 0.2 });
    upstream2 = await startMirror({ store: await LayoutStore.open(next.dir), listen: '127.0.0.1:0', accessLog: false });
    const registriesConf2 = path.join(work, 'bastion-registries-2.conf');
    await writeFile(registriesConf2, upstreamRegistriesConf(`127.0.0.1:${upstream2.port}`));
    say.say(`${next.releaseReference} at ${upstream2.url}`);
    const selection2 = ['--release', next.releaseReference, ...next.extraImages.flatMap((i) => ['--image', i.reference]), '--registries-conf', registriesConf2];

    say.heading('Bastion: plan and create a delta bundle --since the first (only the layers the node lacks; every manifest and config)');
    const deltaFile = path.join(paths.media, `sample-${next.params.version}-delta.tar`);
    await say.run(['bundle', 'plan', ...selection2, '--since', bundleFile], { only: /^(Release|Delta since|  New|  Carried|  Left to the base|Unique bytes):/ });
    await say.run(['bundle', 'create', ...selection2, '--since', bundleFile, '--output', deltaFile, '--sign-key', key, '--quiet'], { env: { SOURCE_DATE_EPOCH: '1700000000' } });
    await say.run(['bundle', 'verify', deltaFile, '--trusted-key', `${key}.pub`, '--quiet']);

    say.heading('Node: import the delta (its base is already in the bundle dir) and pull the new release across base + delta');
    await say.run(['import', deltaFile, '--config', config]);
    nodeMirror = await startNodeMirror(args, `http://${listen}`);
    const deltaSeal = path.join(paths.node, 'bundles', `${path.basename(deltaFile)}.seal.json`);
    const pulled2 = await pullThroughMirror(deltaSeal, listen, [seal]);
    say.say(`pulled ${pulled2.images} images of ${next.params.version} (${pulled2.blobs} blobs, ${formatBytes(pulled2.bytes)}) through ${listen}, layers from both bundles: every digest verified`);
    await stopChild(nodeMirror);
    nodeMirror = undefined;

    if (criEndpoint) {
      say.heading('Node: pre-load the new release; with keep_releases = 1 the first release\'s own images are unpinned once it is all pinned');
      await say.run(['preload', '--config', config]);
    } else {
      say.heading('Node: pre-load the new release and retire the first: skipped (no CRI runtime, see above)');
      say.say('retiring needs the new release all pinned first; status shows the two releases, the new images pending');
    }
    await say.run(['status', '--config', config]);
    out.write(`\ndemo finished in ${say.elapsedSeconds().toFixed(1)} s${options.keep || options.workDir ? `; files kept in ${work}` : ''}\n`);
  } finally {
    if (nodeMirror) await stopChild(nodeMirror);
    if (runtime) await runtime.stop();
    if (upstream) await upstream.close();
    if (upstream2) await upstream2.close();
    if (!options.keep && !options.workDir) await rm(work, { recursive: true, force: true });
  }
}

