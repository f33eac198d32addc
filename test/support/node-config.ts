// The node configuration the containerd node tests share: every path under one node dir, the private
// containerd's socket and hosts dir, a free mirror port, small pull and storage settings.

import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import TOML from '@iarna/toml';
import { CriImageService } from '../../src/cri/image-service.js';
import { startContainerdVariant, type ContainerdVariant, type RunningContainerd } from './containerd.js';
import { freePort } from './ports.js';

/** Writes NODE/config.toml for a containerd at `endpoint` whose hosts dir is `certs`; returns its path. */
export async function writeContainerdNodeConfig(node: string, endpoint: string, certs: string, keepReleases = 2): Promise<string> {
  const file = path.join(node, 'config.toml');
  await writeFile(
    file,
    TOML.stringify({
      paths: { bundles: path.join(node, 'bundles'), state: path.join(node, 'state.db') },
      mirror: { listen: `127.0.0.1:${await freePort()}` },
      runtime: { kind: 'containerd', endpoint, reload: [], hosts_dir: certs, registries_conf: path.join(node, 'registries.conf') },
      storage: { reserve: '1MiB' },
      pull: { concurrency: 4, retries: 2, timeout: '60s' },
      pins: { keep_releases: keepReleases },
    } as TOML.JsonMap),
  );
  return file;
}

/** A node dir with a private containerd of `variant` (hosts dir NODE/certs.d), its CRI client and its config. */
export async function startContainerdNode(node: string, variant: ContainerdVariant): Promise<{ containerd: RunningContainerd; cri: CriImageService; configFile: string; bundleDir: string }> {
  const certs = path.join(node, 'certs.d');
  await mkdir(certs, { recursive: true });
  const containerd = await startContainerdVariant(variant, { registryHostsDir: certs });
  const cri = await CriImageService.connect(containerd.endpoint);
  return { containerd, cri, configFile: await writeContainerdNodeConfig(node, containerd.endpoint, certs), bundleDir: path.join(node, 'bundles') };
}
