// Pulls a set of images by digest through containerd's CRI from a given registry (our mirror or
// docker-registry), in a fresh private containerd each time so neither run benefits from the other's cache.

import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CriImageService } from '../src/cri/image-service.js';
import { startContainerd, writeHostsToml } from '../test/support/containerd.js';

export interface CriPullResult {
  readonly images: number;
  readonly concurrency: number;
  readonly wallMs: number;
}

/** Pulls `references` (repo@digest) via hosts.toml pointing every source host at `registryUrl` only. */
export async function pullThroughCri(references: readonly string[], registryUrl: string, concurrency: number): Promise<CriPullResult> {
  const hostsDir = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-bench-hosts-'));
  const containerd = await startContainerd({ registryHostsDir: hostsDir });
  let cri: CriImageService | undefined;
  try {
    for (const host of new Set(references.map((r) => r.slice(0, r.indexOf('/'))))) await writeHostsToml(hostsDir, host, registryUrl, { mirrorOnly: true });
    cri = await CriImageService.connect(containerd.endpoint);
    const started = Date.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < references.length) await cri!.pullImage(references[next++]!, { timeoutMs: 600_000 });
      }),
    );
    return { images: references.length, concurrency, wallMs: Date.now() - started };
  } finally {
    cri?.close();
    await containerd.stop();
    await rm(hostsDir, { recursive: true, force: true });
  }
}
