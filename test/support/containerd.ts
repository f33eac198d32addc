// Test side of the private containerd (src/cri/private-containerd.ts): re-exported, the two containerd versions
// the containerd tests run against, and a hosts.toml writer.

import { constants } from 'node:fs';
import { access, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { containerd17Path, startContainerd, type ContainerdOptions, type RunningContainerd } from '../../src/cri/private-containerd.js';

export { startContainerd, type ContainerdOptions, type RunningContainerd } from '../../src/cri/private-containerd.js';

/** A containerd the tests run against: 1.6 never reports an image pinned, 1.7 does for labelled images. */
export interface ContainerdVariant {
  readonly name: string;
  /** undefined: "containerd" from PATH. */
  readonly binary: string | undefined;
  readonly pins: boolean;
  /** What CRI Version's runtimeVersion looks like. */
  readonly version: RegExp;
}

export const CONTAINERD_VARIANTS: readonly ContainerdVariant[] = [
  { name: 'containerd 1.6 (Debian 12, installed)', binary: undefined, pins: false, version: /^1\.6\./ },
  { name: 'containerd 1.7 (Debian 13, cached)', binary: containerd17Path(), pins: true, version: /^1\.7\./ },
];

/** Starts the variant's containerd; a missing 1.7 fails with what to run (CI fetches it: .ci/run). */
export async function startContainerdVariant(variant: ContainerdVariant, options: ContainerdOptions = {}): Promise<RunningContainerd> {
  if (variant.binary !== undefined) {
    await access(variant.binary, constants.X_OK).catch(() => {
      throw new Error(`${variant.name}: ${variant.binary} is missing; run scripts/fetch-containerd-1.7.sh (as root) first`);
    });
  }
  return startContainerd({ ...options, ...(variant.binary !== undefined ? { binary: variant.binary } : {}) });
}

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
