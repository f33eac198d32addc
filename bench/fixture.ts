// The benchmark fixture: a release-like sample (shared generator) in a work dir, pushed to a local Debian
// docker-registry, and the lists of what it holds (manifests, unique blobs, repositories) for the loads.

import { readFile, writeFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { digestHex, type Digest } from '../src/oci/digest.js';
import { MANIFEST_ACCEPT } from '../src/oci/media-types.js';
import { generateSampleRelease, pushLayout, type SampleParams, type SampleRelease } from '../src/sample/index.js';
import { startDockerRegistry, type RunningRegistry } from '../test/support/docker-registry.js';
import type { LoadTarget } from './server-rounds.js';
import { NGINX_MISSING, nginxAvailable, startNginx, type ChildServer } from './servers.js';

export interface FixtureBlob {
  /** "quay.io/openshift-release-dev/ocp-v4.0-art-dev" */
  readonly repository: string;
  readonly digest: Digest;
  readonly size: number;
}

export interface FixtureManifest {
  readonly repository: string;
  readonly digest: Digest;
}

export interface Fixture {
  readonly sample: SampleRelease;
  readonly registry: RunningRegistry;
  readonly registriesConf: string;
  readonly authfile: string;
  readonly manifests: readonly FixtureManifest[];
  /** Every unique blob (configs and layers), with one repository holding it. */
  readonly blobs: readonly FixtureBlob[];
  readonly uniqueBlobBytes: number;
  readonly generateMs: number;
  readonly pushMs: number;
}

interface ManifestDoc {
  manifests?: Array<{ digest: string }>;
  config?: { digest: string; size: number };
  layers?: Array<{ digest: string; size: number }>;
}

/** Walks the layout from index.json: every manifest (children of indexes too) and the blobs they name. */
async function layoutContents(sample: SampleRelease): Promise<{ manifests: FixtureManifest[]; blobs: FixtureBlob[] }> {
  const blobsDir = path.join(sample.dir, 'blobs', 'sha256');
  const manifests = new Map<string, FixtureManifest>();
  const blobs = new Map<string, FixtureBlob>();
  const visit = async (repository: string, digest: Digest): Promise<void> => {
    if (manifests.has(`${repository}@${digest}`)) return;
    manifests.set(`${repository}@${digest}`, { repository, digest });
    const doc = JSON.parse(await readFile(path.join(blobsDir, digestHex(digest)), 'utf8')) as ManifestDoc;
    for (const child of doc.manifests ?? []) await visit(repository, child.digest as Digest);
    for (const b of [...(doc.config ? [doc.config] : []), ...(doc.layers ?? [])]) {
      if (!blobs.has(b.digest)) blobs.set(b.digest, { repository, digest: b.digest as Digest, size: b.size });
    }
  };
  for (const image of sample.images) await visit(image.repository, image.digest);
  return { manifests: [...manifests.values()], blobs: [...blobs.values()] };
}

/** Generates (or reuses, same parameters → same bytes) the sample in `workDir` and pushes it. */
export async function prepareFixture(workDir: string, params: Partial<SampleParams>, log: (line: string) => void): Promise<Fixture> {
  await mkdir(workDir, { recursive: true });
  let t0 = Date.now();
  const sample = await generateSampleRelease(path.join(workDir, 'sample'), params);
  const generateMs = Date.now() - t0;
  log(`sample: ${sample.images.length} top-level images, ${sample.blobs} blobs, ${(sample.totalBytes / 1e9).toFixed(2)} GB (${generateMs} ms)`);
  const registry = await startDockerRegistry({ storageDir: path.join(workDir, 'registry-storage') });
  t0 = Date.now();
  try {
    await pushLayout(sample.dir, registry.url, { concurrency: 8 });
  } catch (err) {
    await registry.stop();
    throw err;
  }
  const pushMs = Date.now() - t0;
  log(`pushed to docker-registry at ${registry.url} (${pushMs} ms)`);
  const registriesConf = path.join(workDir, 'registries.conf');
  await writeFile(registriesConf, ['quay.io', 'registry.example.com'].map((p) => `[[registry]]\nprefix = "${p}"\nlocation = "${registry.host}"\ninsecure = true\n`).join('\n'));
  const authfile = path.join(workDir, 'auth.json');
  await writeFile(authfile, '{"auths":{}}');
  const { manifests, blobs } = await layoutContents(sample);
  return { sample, registry, registriesConf, authfile, manifests, blobs, uniqueBlobBytes: blobs.reduce((n, b) => n + b.size, 0), generateMs, pushMs };
}

/** "quay.io/a/b" → { domain: "quay.io", path: "a/b" } */
export function splitRepository(repository: string): { domain: string; path: string } {
  const slash = repository.indexOf('/');
  return { domain: repository.slice(0, slash), path: repository.slice(slash + 1) };
}

/** Request path of a blob or manifest; `ns` as containerd sends it (our mirror routes by it; distribution ignores it). */
export function registryPath(repository: string, kind: 'blobs' | 'manifests', digest: string, withNs: boolean): string {
  const { domain, path: repoPath } = splitRepository(repository);
  return `/v2/${repoPath}/${kind}/${digest}${withNs ? `?ns=${domain}` : ''}`;
}

/** The fixture's manifests and blobs as a load target on one server; `pid` when this bench started it. */
export function fixtureTarget(name: string, origin: string, f: Fixture, options: { withNs: boolean; blobs: boolean; pid?: number }): LoadTarget {
  return {
    name,
    origin,
    manifests: f.manifests.map((m) => registryPath(m.repository, 'manifests', m.digest, options.withNs)),
    ...(options.blobs ? { blobs: f.blobs.map((b) => ({ path: registryPath(b.repository, 'blobs', b.digest, options.withNs), size: b.size })) } : {}),
    ...(options.pid === undefined ? {} : { pid: options.pid }),
  };
}

export { MANIFEST_ACCEPT };

/**
 * nginx serving the fixture's blobs from docker-registry's own files, as a blob-only target (no manifests),
 * pushed to `into` as soon as it runs so the caller stops it; none, with a note, when nginx is not installed.
 */
export async function nginxTargets(f: Fixture, into: ChildServer[], log: (line: string) => void): Promise<LoadTarget[]> {
  if (!(await nginxAvailable())) {
    log(`${NGINX_MISSING}. The blob loads run without it.`);
    return [];
  }
  const nginx = await startNginx(f.registry.rootDir);
  into.push(nginx);
  return [{ ...fixtureTarget(nginx.name, nginx.origin, f, { withNs: false, blobs: true, pid: nginx.pid }), manifests: [] }];
}
