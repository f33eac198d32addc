// Bundles for the mirror's tests: the sample release pushed to a real docker-registry and bundled with
// the real planner and writer (what `bundle create` does), and small hand-made bundles that need no registry.

import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { openBundle } from '../../src/bundle/reader.js';
import type { BundleManifest } from '../../src/bundle/format.js';
import type { Digest } from '../../src/oci/digest.js';
import { createBundle } from '../../src/bundle/writer.js';
import { selectionFromOptions } from '../../src/cli/selection-options.js';
import { planBundle } from '../../src/plan/resolve.js';
import { generateSampleRelease, pushLayout, type SampleRelease } from '../../src/sample/index.js';
import { blobContents, MemorySource, testImage, testPlan, type TestImage } from './bundle-plans.js';
import { startDockerRegistry, writeSampleSourceConfig } from './docker-registry.js';

export const RELEASE_TAG = '4.16.0-sample-x86_64';
export const RELEASE_SOURCE = `quay.io/openshift-release-dev/ocp-release:${RELEASE_TAG}`;
export const EXTRA_IMAGES = ['registry.example.com/sample/tools:1.0', 'registry.example.com/sample/debug:2.1'];

export interface SampleBundle {
  readonly sample: SampleRelease;
  /** The bundle's seal file (what `serve` registers). */
  readonly sealPath: string;
  readonly tarPath: string;
}

/** Generates the sample under `dir`, pushes it to a throwaway docker-registry, plans and writes `dir/media/sample.tar`. */
export async function buildSampleBundle(dir: string, options: { splitSize?: number } = {}): Promise<SampleBundle> {
  await mkdir(dir, { recursive: true });
  const sample = await generateSampleRelease(path.join(dir, 'sample'));
  const registry = await startDockerRegistry();
  try {
    await pushLayout(sample.dir, registry.url, { concurrency: 8 });
    const { conf, authfile } = await writeSampleSourceConfig(dir, registry);
    const { selection, source } = await selectionFromOptions({ release: RELEASE_SOURCE, image: EXTRA_IMAGES, imagesFrom: [], platform: ['linux/amd64'], registriesConf: conf, authfile });
    try {
      const plan = await planBundle(source, selection, {});
      await mkdir(path.join(dir, 'media'), { recursive: true });
      const tarPath = path.join(dir, 'media', 'sample.tar');
      const result = await createBundle({ plan, source, output: tarPath, created: '2026-01-01T00:00:00Z', ...(options.splitSize ? { splitSize: options.splitSize } : {}) });
      return { sample, sealPath: result.sealPath, tarPath };
    } finally {
      await source.close();
    }
  } finally {
    await registry.stop();
  }
}

/** The manifest (pin-preload.json) of the bundle at `file` (its tar, a volume or its seal). */
export async function bundleManifestOf(file: string): Promise<BundleManifest> {
  const opened = await openBundle(file);
  try {
    return opened.manifest;
  } finally {
    await opened.close();
  }
}

/** The bundle's largest blob and where its bytes lie in the tar: the one a damaged-media test flips a byte of. */
export async function largestBlobOf(file: string): Promise<{ readonly digest: Digest; readonly offset: number; readonly size: number }> {
  const opened = await openBundle(file);
  try {
    const [digest, at] = [...(await opened.locateBlobs()).entries()].sort((a, b) => b[1].size - a[1].size)[0]!;
    return { digest, offset: at.offset, size: at.size };
  } finally {
    await opened.close();
  }
}

/** A small bundle of hand-made OCI images, written without any registry. */
export async function buildTinyBundle(output: string, images: readonly TestImage[], options: { created?: string; splitSize?: number } = {}): Promise<string> {
  const result = await createBundle({
    plan: testPlan(images),
    source: new MemorySource(blobContents(images)),
    output,
    created: options.created ?? '2026-01-01T00:00:00Z',
    ...(options.splitSize ? { splitSize: options.splitSize } : {}),
  });
  return result.sealPath;
}

export { testImage, type TestImage };
