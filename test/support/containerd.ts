// Test side of the private containerd (src/cri/private-containerd.ts): re-exported, plus a hosts.toml writer.

import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

export { startContainerd, type ContainerdOptions, type RunningContainerd } from '../../src/cri/private-containerd.js';

/**
 * Test helper: a certs.d hosts.toml sending pulls for `sourceHost` (e.g. "quay.io") to `mirrorUrl`
 * (e.g. "http://127.0.0.1:PORT"). containerd falls back to `server` when the mirror fails, so `mirrorOnly`
 * makes the mirror the server too (containerd 1.6 rejects a hosts.toml without a [host] table, so it stays).
 * The production writer lives in src/node.
 */
export async function writeHostsToml(
  hostsDir: string,
  sourceHost: string,
  mirrorUrl: string,
  options: { mirrorOnly?: boolean } = {},
): Promise<string> {
  const dir = path.join(hostsDir, sourceHost);
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, 'hosts.toml');
  const server = options.mirrorOnly ? mirrorUrl : `https://${sourceHost}`;
  await writeFile(
    file,
    [
      `server = ${JSON.stringify(server)}`,
      '',
      `[host.${JSON.stringify(mirrorUrl)}]`,
      '  capabilities = ["pull", "resolve"]',
      '',
    ].join('\n'),
  );
  return file;
}
