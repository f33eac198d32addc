// Builds an OpenShift-like release as an OCI image layout (payload, components, extra images) from size
// parameters, deterministically, streaming every layer: the fixture of tests, benchmarks and the demo.

import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Digest } from '../oci/digest.js';
import { MediaType } from '../oci/media-types.js';
import { formatPlatform, type Platform } from '../oci/platform.js';
import { writeFileAtomic } from '../util/atomic-file.js';
import { UserError } from '../util/errors.js';
import { mapBounded } from '../util/concurrency.js';
import { fractionOf } from './keystream.js';
import { canonicalJson, LayoutWriter, type BlobDescriptor } from './layout-writer.js';
import { resolveSampleParams, type SampleParams } from './params.js';
import { baseLayerEntries, componentLayerEntries, componentNames, imageReferences, releaseLayerEntries } from './release-files.js';
import { FIXED_MTIME, writeLayerBlob, type TarEntry, type WrittenLayer } from './tar-layer.js';

export const RELEASE_REPOSITORY = 'quay.io/openshift-release-dev/ocp-release';
export const COMPONENT_REPOSITORY = 'quay.io/openshift-release-dev/ocp-v4.0-art-dev';
export const EXTRA_REPOSITORY_PREFIX = 'registry.example.com/sample';
export const SAMPLE_FILE = 'sample.json';

export interface SampleComponent {
  /** The release tag name (image-references spec.tags[].name). */
  readonly name: string;
  /** Digest form: quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:… */
  readonly reference: string;
  readonly digest: Digest;
  readonly mediaType: string;
  /** "linux/amd64", plus "linux/arm64" for multi-arch components. */
  readonly platforms: string[];
}

export interface SampleExtraImage {
  /** Tag form: registry.example.com/sample/tools:1.0 */
  readonly reference: string;
  readonly digest: Digest;
  readonly mediaType: string;
}

export interface SampleImage {
  /** Exactly the index.json ref.name. */
  readonly reference: string;
  /** Domain and path, e.g. quay.io/openshift-release-dev/ocp-release */
  readonly repository: string;
  readonly tag?: string;
  readonly digest: Digest;
  readonly mediaType: string;
}

export interface SampleRelease {
  readonly params: SampleParams;
  readonly dir: string;
  /** Tag form: quay.io/openshift-release-dev/ocp-release:<version>-x86_64 */
  readonly releaseReference: string;
  readonly releaseDigest: Digest;
  /** Tag form of the `<version>-multi` manifest list, when multiPayload. */
  readonly multiReleaseReference?: string;
  readonly components: SampleComponent[];
  readonly extraImages: SampleExtraImage[];
  /** Every top-level image, in index.json order. */
  readonly images: SampleImage[];
  /** Number of blobs the release uses (configs, manifests, layers) and their total size. */
  readonly blobs: number;
  readonly totalBytes: number;
}

type Family = 'oci' | 'docker';

const AMD64: Platform = { os: 'linux', architecture: 'amd64' };
const ARM64: Platform = { os: 'linux', architecture: 'arm64' };
const CREATED = new Date(FIXED_MTIME * 1000).toISOString().replace('.000Z', 'Z');
/** Layers in flight at once: gzip runs on libuv's pool, so a few in parallel use the cores. */
const LAYER_CONCURRENCY = 4;

const TYPES = {
  oci: { manifest: MediaType.ociManifest, index: MediaType.ociIndex, config: MediaType.ociConfig, layer: MediaType.ociLayerGzip },
  docker: { manifest: MediaType.dockerManifest, index: MediaType.dockerManifestList, config: MediaType.dockerConfig, layer: MediaType.dockerLayerGzip },
} as const;

/** The `count` items of `names` ranked first by a seeded hash: an exact share, spread without pattern. */
function chooseShare(names: readonly string[], share: number, seed: string, purpose: string): Set<string> {
  const count = Math.round(names.length * share);
  const ranked = [...names].sort((a, b) => fractionOf(`${seed}:${purpose}:${a}`) - fractionOf(`${seed}:${purpose}:${b}`));
  return new Set(ranked.slice(0, count));
}

class ReleaseBuilder {
  /** Shared by every image; set once they are written. */
  baseLayers: readonly WrittenLayer[] = [];

  constructor(
    private readonly layout: LayoutWriter,
    private readonly p: SampleParams,
  ) {}

  async layer(entries: TarEntry[]): Promise<WrittenLayer> {
    const layer = await writeLayerBlob(this.layout.blobsDir, entries, this.p.compressionLevel);
    this.layout.recordBlob(layer.digest, layer.size);
    return layer;
  }

  /** Config + manifest of one single-platform image over the base layers and `own` layers. */
  async image(family: Family, platform: Platform, own: readonly WrittenLayer[], labels: Record<string, string>): Promise<BlobDescriptor> {
    const t = TYPES[family];
    const layers = [...this.baseLayers, ...own];
    const config = await this.layout.writeJson(t.config, {
      architecture: platform.architecture,
      os: platform.os,
      created: CREATED,
      config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Labels: labels },
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
      history: layers.map((_, i) => ({ created: CREATED, created_by: `sample layer ${i}` })),
    });
    const manifest = await this.layout.writeJson(t.manifest, {
      schemaVersion: 2,
      mediaType: t.manifest,
      config: { mediaType: config.mediaType, digest: config.digest, size: config.size },
      layers: layers.map((l) => ({ mediaType: t.layer, digest: l.digest, size: l.size })),
    });
    return { ...manifest, platform };
  }

  async index(family: Family, children: readonly BlobDescriptor[]): Promise<BlobDescriptor> {
    const t = TYPES[family];
    return this.layout.writeJson(t.index, {
      schemaVersion: 2,
      mediaType: t.index,
      manifests: children.map((c) => ({ mediaType: c.mediaType, digest: c.digest, size: c.size, platform: c.platform })),
    });
  }

  /** An application image (component or extra): per-platform own layers, an index when multi-arch. */
  async appImage(name: string, family: Family, multiArch: boolean, labels: Record<string, string>, changed = false): Promise<BlobDescriptor> {
    const platforms = multiArch ? [AMD64, ARM64] : [AMD64];
    const children: BlobDescriptor[] = [];
    for (const platform of platforms) {
      const own: WrittenLayer[] = [];
      for (let j = 0; j < this.p.componentLayers; j++) {
        // A changed component's content depends on the version, so releases of one seed differ in just those.
        const label = `${this.p.seed}${changed ? `:${this.p.version}` : ''}:image:${name}:${platform.architecture}:${j}`;
        own.push(await this.layer(componentLayerEntries(label, path.basename(name), j, this.p.componentLayerSize)));
      }
      children.push(await this.image(family, platform, own, labels));
    }
    return multiArch ? this.index(family, children) : (children[0] as BlobDescriptor);
  }
}

function sampleImage(reference: string, repository: string, descriptor: BlobDescriptor, tag?: string): SampleImage {
  return { reference, repository, ...(tag !== undefined ? { tag } : {}), digest: descriptor.digest, mediaType: descriptor.mediaType };
}

/** Reads the description a generation left in `dir`; fails when the layout is missing or incomplete. */
export async function loadSampleRelease(dir: string): Promise<SampleRelease> {
  let text: string;
  try {
    text = await fs.readFile(path.join(dir, SAMPLE_FILE), 'utf8');
  } catch (err) {
    throw new UserError('SAMPLE_MISSING', `no sample release in ${dir} (${SAMPLE_FILE} not readable: ${(err as Error).message})`, {
      subject: { kind: 'path', name: dir },
      cause: err,
    });
  }
  // The directory may have been moved since generation: trust where it was found.
  return { ...(JSON.parse(text) as SampleRelease), dir };
}

/**
 * Writes the sample release described by `params` (see SampleParams) as an OCI image layout at `dir`
 * and returns (and stores as dir/sample.json) what it contains. When `dir` already holds a complete
 * generation with the same parameters, it is returned as is: benchmarks reuse their 10 GB fixture.
 */
export async function generateSampleRelease(dir: string, params: Partial<SampleParams> = {}): Promise<SampleRelease> {
  const p = resolveSampleParams(params);
  const existing = await loadSampleRelease(dir).catch(() => undefined);
  if (existing && canonicalJson(existing.params) === canonicalJson(p)) return existing;

  const layout = new LayoutWriter(dir);
  await layout.open();
  // A previous generation's blobs may stay (content-addressed, harmless) but its description must not.
  await fs.rm(path.join(dir, SAMPLE_FILE), { force: true });

  const builder = new ReleaseBuilder(layout, p);
  builder.baseLayers = await mapBounded(Array.from({ length: p.baseLayers }, (_, k) => k), LAYER_CONCURRENCY, (k) =>
    builder.layer(baseLayerEntries(`${p.seed}:base:${k}`, k, p.baseLayerSize)),
  );

  const names = componentNames(p.components);
  const multiArch = chooseShare(names, p.multiArchShare, p.seed, 'multi-arch');
  const oci = chooseShare(names, p.ociShare, p.seed, 'oci');
  const changed = chooseShare(names, p.changedShare ?? 0, `${p.seed}:${p.version}`, 'changed');
  const componentDescriptors = await mapBounded(names, LAYER_CONCURRENCY, (name) =>
    builder.appImage(
      name,
      oci.has(name) ? 'oci' : 'docker',
      multiArch.has(name),
      {
        'io.k8s.display-name': name,
        'io.openshift.build.source-location': `https://github.com/openshift/${name}`,
        'io.openshift.release.operator': name.endsWith('-operator') ? 'true' : 'false',
      },
      changed.has(name),
    ),
  );
  const components: SampleComponent[] = names.map((name, i) => {
    const d = componentDescriptors[i] as BlobDescriptor;
    return {
      name,
      reference: `${COMPONENT_REPOSITORY}@${d.digest}`,
      digest: d.digest,
      mediaType: d.mediaType,
      platforms: (multiArch.has(name) ? [AMD64, ARM64] : [AMD64]).map(formatPlatform),
    };
  });

  const extraNames = Array.from({ length: p.extraImages }, (_, i) => (['tools', 'debug'][i] ?? `extra-${i + 1}`));
  const extraDescriptors = await mapBounded(extraNames, LAYER_CONCURRENCY, (name, i) =>
    // The second extra image is a multi-arch OCI index by tag, a case bundle tools must handle.
    builder.appImage(`sample/${name}`, i % 2 === 1 ? 'oci' : 'docker', i === 1, { 'io.k8s.display-name': name }),
  );
  const extraImages: SampleExtraImage[] = extraNames.map((name, i) => {
    const d = extraDescriptors[i] as BlobDescriptor;
    return { reference: `${EXTRA_REPOSITORY_PREFIX}/${name}:${i === 1 ? '2.1' : '1.0'}`, digest: d.digest, mediaType: d.mediaType };
  });

  const imageStream = imageReferences(p.version, p.seed, components.map((c) => ({ name: c.name, pullSpec: c.reference })));
  const payloadLabels = {
    'io.openshift.release': p.version,
    'io.openshift.release.base-image-digest': (components[0] as SampleComponent).digest,
  };
  const releaseLayer = await builder.layer(releaseLayerEntries(p.version, imageStream, false));
  const payload = await builder.image('docker', AMD64, [releaseLayer], payloadLabels);
  const releaseTag = `${p.version}-x86_64`;
  const releaseReference = `${RELEASE_REPOSITORY}:${releaseTag}`;

  const images: SampleImage[] = [sampleImage(releaseReference, RELEASE_REPOSITORY, payload, releaseTag)];
  let multiReleaseReference: string | undefined;
  if (p.multiPayload) {
    const multiLayer = await builder.layer(releaseLayerEntries(p.version, imageStream, true));
    const children = [];
    for (const platform of [AMD64, ARM64]) children.push(await builder.image('docker', platform, [multiLayer], payloadLabels));
    const list = await builder.index('docker', children);
    multiReleaseReference = `${RELEASE_REPOSITORY}:${p.version}-multi`;
    images.push(sampleImage(multiReleaseReference, RELEASE_REPOSITORY, list, `${p.version}-multi`));
  }
  for (const c of components) images.push({ reference: c.reference, repository: COMPONENT_REPOSITORY, digest: c.digest, mediaType: c.mediaType });
  extraImages.forEach((e, i) => {
    const name = extraNames[i] as string;
    const tag = e.reference.slice(e.reference.lastIndexOf(':') + 1);
    images.push({ reference: e.reference, repository: `${EXTRA_REPOSITORY_PREFIX}/${name}`, tag, digest: e.digest, mediaType: e.mediaType });
  });
  for (const image of images) {
    layout.addIndexEntry({ mediaType: image.mediaType, digest: image.digest, size: layout.written.get(image.digest) as number }, image.reference);
  }
  await layout.finish();

  const release: SampleRelease = {
    params: p,
    dir,
    releaseReference,
    releaseDigest: payload.digest,
    ...(multiReleaseReference !== undefined ? { multiReleaseReference } : {}),
    components,
    extraImages,
    images,
    ...layout.totals(),
  };
  await writeFileAtomic(path.join(dir, SAMPLE_FILE), `${JSON.stringify(release, null, 2)}\n`);
  return release;
}
