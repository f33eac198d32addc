// The size parameters of a generated sample release, their defaults (small, for fast tests) and checks.
// Benchmarks scale them up (190+ components, 10 GB) and the demo uses a middle ground.

import { UserError } from '../util/errors.js';

/**
 * Parameters of `generateSampleRelease`. Every one is optional; the defaults build a small release
 * (12 components, ~1.5 MB) in well under a second. Same parameters → byte-identical layout and digests.
 *
 * - `version` ("4.16.0-sample"): release version; the payload is tagged `<version>-x86_64`.
 * - `components` (12): component images named like real release tags (cluster-version-operator,
 *   machine-os-images, etcd, …, then `sample-component-NNN`), all in
 *   `quay.io/openshift-release-dev/ocp-v4.0-art-dev`, by digest. Scales to 190 and beyond.
 * - `baseLayers` (3) of `baseLayerSize` bytes (64 KiB): shared by every component and the payload,
 *   like RHEL base images.
 * - `componentLayers` (1) of `componentLayerSize` bytes (16 KiB): unique per component and architecture.
 * - `multiArchShare` (0.25): fraction of components published as an index with linux/amd64 + linux/arm64.
 * - `ociShare` (0.5): fraction of images with OCI media types; the rest are Docker schema2 / manifest list.
 * - `extraImages` (2): non-release images `registry.example.com/sample/<name>:<tag>`.
 * - `seed` ("pin-preload"): seeds the content keystream and the choice of multi-arch / OCI components.
 * - `compressionLevel` (1): gzip level of the layers; 0 writes stored blocks (fast, for 10 GB benchmarks).
 * - `multiPayload` (false): also publish `<version>-multi`, a manifest list of per-arch payloads.
 * - `changedShare` (0): fraction of components whose own layers depend on `version`: two releases of the
 *   same seed share every other component byte for byte, like a z-stream (0.2 ≈ a fifth rebuilt). The
 *   choice is seeded by the version too, so for "a fifth changed" give the older release 0: with a share in
 *   both, they differ in the union of two choices.
 */
export interface SampleParams {
  readonly version: string;
  readonly components: number;
  readonly baseLayers: number;
  readonly baseLayerSize: number;
  readonly componentLayers: number;
  readonly componentLayerSize: number;
  readonly multiArchShare: number;
  readonly ociShare: number;
  readonly extraImages: number;
  readonly seed: string;
  readonly compressionLevel: number;
  readonly multiPayload: boolean;
  /** Optional, so that fixtures cached before it existed keep their parameters (and are not rebuilt). */
  readonly changedShare?: number;
}

export const DEFAULT_SAMPLE_PARAMS: SampleParams = {
  version: '4.16.0-sample',
  components: 12,
  baseLayers: 3,
  baseLayerSize: 64 * 1024,
  componentLayers: 1,
  componentLayerSize: 16 * 1024,
  multiArchShare: 0.25,
  ociShare: 0.5,
  extraImages: 2,
  seed: 'pin-preload',
  compressionLevel: 1,
  multiPayload: false,
};

function bad(name: string, value: unknown, why: string): UserError {
  return new UserError('SAMPLE_PARAM_INVALID', `sample release parameter ${name}=${JSON.stringify(value)}: ${why}`, { subject: { kind: 'option', name } });
}

/** Fills in defaults and rejects values that would make a broken or absurd release. */
export function resolveSampleParams(given: Partial<SampleParams>): SampleParams {
  const p: SampleParams = { ...DEFAULT_SAMPLE_PARAMS, ...given };
  const counts: Array<[keyof SampleParams, number]> = [
    ['components', 1],
    ['baseLayers', 0],
    ['componentLayers', 1],
    ['extraImages', 0],
    ['baseLayerSize', 0],
    ['componentLayerSize', 0],
  ];
  for (const [name, min] of counts) {
    const v = p[name];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) throw bad(name, v, `must be an integer ≥ ${min}`);
  }
  for (const name of ['multiArchShare', 'ociShare', 'changedShare'] as const) {
    const v = p[name];
    if (name === 'changedShare' && v === undefined) continue;
    if (typeof v !== 'number' || !(v >= 0 && v <= 1)) throw bad(name, v, 'must be a fraction between 0 and 1');
  }
  if (!Number.isInteger(p.compressionLevel) || p.compressionLevel < 0 || p.compressionLevel > 9) {
    throw bad('compressionLevel', p.compressionLevel, 'must be a gzip level 0–9');
  }
  if (!/^[0-9]+\.[0-9]+\.[0-9]+[\w.-]*$/.test(p.version) || p.version.length > 100) {
    throw bad('version', p.version, 'must look like a release version, e.g. 4.16.0 or 4.16.0-sample');
  }
  return p;
}
