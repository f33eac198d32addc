// Builds a BundlePlan from a Selection: the release and its components, the extra images, tags resolved
// to digests, index children chosen per platform, and every blob listed once. Only manifests are fetched.

import type { Digest } from '../oci/digest.js';
import { ManifestError, parseManifest, type Descriptor, type ImageManifest } from '../oci/manifest.js';
import { layerCompression } from '../oci/media-types.js';
import { DEFAULT_PLATFORM, formatPlatform, type Platform } from '../oci/platform.js';
import { digestReference, formatReference, repositoryName, withDefaultTag, type DigestReference, type Reference } from '../oci/reference.js';
import type { ImageSource } from '../registry/source.js';
import { resolveRelease, runnableChildren, selectChild, type ResolvedRelease } from '../release/resolve-release.js';
import { UserError } from '../util/errors.js';
import { mapBounded } from '../util/concurrency.js';
import { ManifestCache } from './manifest-cache.js';
import { graphArch, resolveChannel, type GraphReader, type ResolvedChannel } from '../release/channel.js';
import { DEFAULT_GRAPH_URL, fetchUpdateGraph, type UpdateGraph } from '../release/update-graph.js';
import { blockedBy } from './image-set-config.js';
import type { BlobRole, BlockedPlanImage, BundlePlan, ImageOrigin, PlannedBlob, PlannedChannel, PlannedImage, PlannedRelease } from './plan.js';
import { resolveSignatures } from './signatures.js';
import { requestImage, uniqueRequests, type PlatformChoice, type RequestedImage, type Selection } from './selection.js';

import { COMPRESSED_LAYER_RATIO, DEFAULT_CONCURRENCY } from './plan.js';

export { COMPRESSED_LAYER_RATIO, DEFAULT_CONCURRENCY };

export interface PlanOptions {
  /** Manifest fetches in flight at once (default 16). */
  readonly concurrency?: number;
  /** Reads a channel's update graph; default: GET selection.graphUrl (or DEFAULT_GRAPH_URL). */
  readonly readGraph?: GraphReader;
  /** Also plan every image's signatures and referrers (bundle create --signatures). */
  readonly signatures?: boolean;
}

/** Release payloads read at once: each streams its top layer until image-references is found. */
const RELEASE_CONCURRENCY = 4;

interface ImageRequest {
  readonly ref: Reference;
  readonly requestedAs: string;
  readonly origin: ImageOrigin;
  readonly component?: string;
  /** Names the image in error messages. */
  readonly where: string;
}

export interface BlobUse {
  readonly descriptor: Descriptor;
  readonly role: BlobRole;
  readonly bytes?: Buffer;
}

export interface ResolvedImage {
  readonly image: PlannedImage;
  readonly uses: readonly BlobUse[];
}

interface WantedRelease {
  readonly image: RequestedImage;
  readonly channel?: string;
}

export async function planBundle(source: ImageSource, selection: Selection, options: PlanOptions = {}): Promise<BundlePlan> {
  const cache = new ManifestCache(source);
  const channels = await resolveChannels(selection, options.readGraph);
  const wanted: WantedRelease[] = [...selection.releases.map((image) => ({ image }))];
  for (const c of channels) {
    for (const r of c.releases) wanted.push({ image: requestImage(r.payload, `channel ${c.name} (update graph ${c.graphUrl})`), channel: c.name });
  }
  const distinct = uniqueRequests(wanted, (w) => w.image);
  const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;

  const requests: ImageRequest[] = [];
  const blocked: BlockedPlanImage[] = [];
  const extraRequests: ImageRequest[] = [];
  const extraBlocked: BlockedPlanImage[] = [];
  // oc-mirror matches blockedImages against the name an image was asked by and the name it is mirrored to.
  const admit = (request: ImageRequest, into = requests, blockedInto = blocked): boolean => {
    const match = blockedBy(selection.blocked, [request.requestedAs, formatReference(request.ref)]);
    if (!match) {
      into.push(request);
      return true;
    }
    if (!blockedInto.some((b) => b.requestedAs === request.requestedAs)) blockedInto.push({ requestedAs: request.requestedAs, pattern: match.text, patternOrigin: match.origin });
    return false;
  };
  // Extra images do not depend on any release: they resolve while the release payloads are read (the
  // longest chain of requests), not after. Their order in the plan, and which error is reported first, stay.
  for (const extra of selection.images) {
    admit({ ref: withDefaultTag(extra.reference), requestedAs: extra.requestedAs, origin: 'extra', where: `image ${extra.requestedAs} (from ${extra.origin})` }, extraRequests, extraBlocked);
  }
  const extrasResolved = mapBounded(extraRequests, concurrency, (r) => resolveImage(cache, r, selection.platforms));
  extrasResolved.catch(() => undefined); // awaited below, after the releases
  const resolvedReleases = await mapBounded(distinct, RELEASE_CONCURRENCY, async (w) => ({
    wanted: w,
    release: await resolveReleaseNamed(cache, withDefaultTag(w.image.reference), selection.platforms),
  }));

  const releases: PlannedRelease[] = [];
  for (const { wanted: w, release } of resolvedReleases) {
    // The same payload reached twice (a --release that is also on a channel's path) is planned once.
    if (releases.some((r) => r.reference.digest === release.reference.digest && repositoryName(r.reference) === repositoryName(release.reference))) continue;
    const ref = withDefaultTag(w.image.reference);
    admit({ ref: { ...ref, digest: release.reference.digest }, requestedAs: w.image.requestedAs, origin: 'release', where: `release image ${release.requestedAs}` });
    const components = release.components.filter((c) =>
      admit({ ref: c.reference, requestedAs: formatReference(c.reference), origin: 'component', component: c.name, where: `release component "${c.name}" of ${release.version || release.requestedAs} (${formatReference(c.reference)})` }),
    );
    releases.push({
      reference: release.reference,
      requestedAs: release.requestedAs,
      version: release.version,
      ...(release.previous.length > 0 ? { previous: release.previous } : {}),
      componentCount: release.components.length,
      components: components.map((c) => ({ name: c.name, reference: c.reference })),
      ...(w.channel !== undefined ? { channel: w.channel } : {}),
    });
  }
  for (const b of extraBlocked) if (!blocked.some((x) => x.requestedAs === b.requestedAs)) blocked.push(b);
  const resolved = [...(await mapBounded(requests, concurrency, (r) => resolveImage(cache, r, selection.platforms))), ...(await extrasResolved)];
  // Each image's signatures after every image is known, so that they follow the images in the plan's order.
  const signatures = options.signatures ? (await mapBounded(resolved, concurrency, (r) => resolveSignatures(cache, r.image))).flat() : [];
  const plan = assemble([...resolved, ...signatures], releases, channels, blocked, selection);
  if (!options.signatures) return plan;
  const carried = plan.images.filter((i) => i.origin === 'signature');
  return { ...plan, signatures: { artifacts: carried.length, subjects: new Set(carried.map((i) => i.subject)).size } };
}

async function resolveChannels(selection: Selection, readGraph: GraphReader | undefined): Promise<ResolvedChannel[]> {
  if (selection.channels.length === 0) return [];
  const graphUrl = selection.graphUrl ?? DEFAULT_GRAPH_URL;
  const arch = graphArch(selection.platforms);
  const graphs = new Map<string, Promise<UpdateGraph>>();
  const read: GraphReader = (channel, a) => {
    const key = `${channel}\n${a}`;
    if (!graphs.has(key)) graphs.set(key, (readGraph ?? ((c, x) => fetchUpdateGraph(graphUrl, c, x, { origin: selection.graphUrlOrigin })))(channel, a));
    return graphs.get(key)!;
  };
  const out: ResolvedChannel[] = [];
  for (const request of selection.channels) out.push(await resolveChannel(request, read, arch, graphUrl));
  return out;
}

async function resolveReleaseNamed(source: ImageSource, ref: Reference, platforms: PlatformChoice): Promise<ResolvedRelease> {
  try {
    return await resolveRelease(source, ref, { platform: await readingPlatform(source, ref, platforms) });
  } catch (err) {
    if (err instanceof ManifestError) throw new UserError('MANIFEST_INVALID', `release image ${formatReference(ref)}: ${err.message}`, { subject: { kind: 'image', name: formatReference(ref) } });
    if (err instanceof UserError && err.code === 'MANIFEST_UNKNOWN') {
      throw new UserError(err.code, `release image ${formatReference(ref)}: ${err.message}`, {
        hint: 'check the version and architecture suffix of the tag (e.g. ocp-release:4.16.3-x86_64 or :4.16.3-multi)',
        subject: { kind: 'image', name: formatReference(ref) },
        cause: err,
      });
    }
    throw err;
  }
}

/** Which child of a multi-arch release to read image-references from: the first wanted platform. */
async function readingPlatform(source: ImageSource, ref: Reference, choice: PlatformChoice): Promise<Platform> {
  if (choice !== 'all') return choice[0] ?? DEFAULT_PLATFORM;
  const top = await source.getManifest(ref);
  const parsed = parseManifest(top.bytes, top.mediaType, `release image ${formatReference(ref)}`);
  if (parsed.kind !== 'index') return DEFAULT_PLATFORM;
  const children = runnableChildren(parsed);
  const preferred = children.find((c) => c.platform && formatPlatform(c.platform) === formatPlatform(DEFAULT_PLATFORM));
  return (preferred ?? children[0])?.platform ?? DEFAULT_PLATFORM;
}

async function resolveImage(source: ImageSource, request: ImageRequest, platforms: PlatformChoice): Promise<ResolvedImage> {
  try {
    return await resolveImageUnwrapped(source, request, platforms);
  } catch (err) {
    if (err instanceof ManifestError) throw new UserError('MANIFEST_INVALID', `${request.where}: ${err.message}`);
    if (err instanceof UserError && !err.message.includes(request.where)) {
      throw new UserError(err.code, `${request.where}: ${err.message}`, { hint: err.hint, subject: err.subject, cause: err });
    }
    throw err;
  }
}

async function resolveImageUnwrapped(source: ImageSource, request: ImageRequest, platforms: PlatformChoice): Promise<ResolvedImage> {
  const top = await source.getManifest(request.ref);
  const reference: DigestReference = digestReference(request.ref, top.digest);
  const topManifest = parseManifest(top.bytes, top.mediaType, request.where);
  const uses: BlobUse[] = [{ descriptor: { mediaType: top.mediaType, digest: top.digest, size: top.bytes.length }, role: 'manifest', bytes: top.bytes }];
  const manifests: Digest[] = [top.digest];
  const chosenPlatforms: Platform[] = [];
  if (topManifest.kind === 'image') {
    uses.push(...imageBlobUses(topManifest));
  } else {
    const chosen = platforms === 'all' ? runnableChildren(topManifest) : platforms.map((p) => selectChild(topManifest, p, request.where));
    // A single-entry index serves every wanted platform: each child once, in the index's order.
    const children = chosen.filter((c, i) => c.digest !== top.digest && chosen.findIndex((d) => d.digest === c.digest) === i);
    // The children are fetched at once (the registry client bounds the connections), not one after another.
    const fetchedChildren = await Promise.all(children.map((child) => source.getManifest(digestReference(request.ref, child.digest))));
    for (const [i, child] of children.entries()) {
      const fetched = fetchedChildren[i]!;
      const childManifest = parseManifest(fetched.bytes, fetched.mediaType, `${request.where} (${child.digest})`);
      if (childManifest.kind !== 'image') throw new UserError('NESTED_INDEX', `${request.where}: index entry ${child.digest} is itself an index, which is not supported`);
      manifests.push(child.digest);
      if (child.platform) chosenPlatforms.push(child.platform);
      uses.push({ descriptor: { mediaType: fetched.mediaType, digest: fetched.digest, size: fetched.bytes.length }, role: 'manifest', bytes: fetched.bytes });
      uses.push(...imageBlobUses(childManifest));
    }
  }
  const blobs = unique(uses.filter((u) => u.role !== 'manifest').map((u) => u.descriptor.digest));
  const image: PlannedImage = {
    reference,
    requestedAs: request.requestedAs,
    ...(request.ref.tag !== undefined ? { tag: request.ref.tag } : {}),
    origin: request.origin,
    ...(request.component !== undefined ? { component: request.component } : {}),
    mediaType: top.mediaType,
    platforms: chosenPlatforms,
    manifests,
    blobs,
  };
  return { image, uses };
}

export function imageBlobUses(manifest: ImageManifest): BlobUse[] {
  return [{ descriptor: manifest.config, role: 'config' as const }, ...manifest.layers.map((l) => ({ descriptor: l, role: 'layer' as const }))];
}

function unique<T>(items: readonly T[]): T[] {
  return [...new Set(items)];
}

/** Exact for JSON and uncompressed tar; COMPRESSED_LAYER_RATIO × size for compressed layers. */
export function uncompressedSizeOf(role: BlobRole, descriptor: Descriptor): { size: number; estimated: boolean } {
  if (role !== 'layer') return { size: descriptor.size, estimated: false };
  if (layerCompression(descriptor.mediaType) === 'none') return { size: descriptor.size, estimated: false };
  return { size: descriptor.size * COMPRESSED_LAYER_RATIO, estimated: true };
}

function assemble(resolved: readonly ResolvedImage[], releases: readonly PlannedRelease[], channels: readonly ResolvedChannel[], blocked: readonly BlockedPlanImage[], selection: Selection): BundlePlan {
  const images: PlannedImage[] = [];
  const seenImages = new Set<string>();
  const blobs = new Map<Digest, { blob: PlannedBlob; repositories: string[] }>();
  let bytesWithRepeats = 0;
  for (const { image, uses } of resolved) {
    const key = `${repositoryName(image.reference)}@${image.reference.digest}`;
    // The same image asked for twice (an extra that is also a component) is planned once, first origin wins.
    if (seenImages.has(key)) continue;
    seenImages.add(key);
    images.push(image);
    const repo = repositoryName(image.reference);
    const counted = new Set<Digest>();
    for (const use of uses) {
      const d = use.descriptor;
      if (!counted.has(d.digest)) {
        counted.add(d.digest);
        bytesWithRepeats += d.size;
      }
      const known = blobs.get(d.digest);
      if (known) {
        if (!known.repositories.includes(repo)) known.repositories.push(repo);
        continue;
      }
      const uncompressed = uncompressedSizeOf(use.role, d);
      const repositories = [repo];
      blobs.set(d.digest, {
        repositories,
        blob: {
          digest: d.digest,
          size: d.size,
          mediaType: d.mediaType,
          role: use.role,
          repositories,
          ...(use.bytes ? { bytes: use.bytes } : {}),
          uncompressedSize: uncompressed.size,
          uncompressedEstimated: uncompressed.estimated,
        },
      });
    }
  }
  const sortedBlobs = [...blobs.values()].map((b) => b.blob).sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0));
  const plannedChannels: PlannedChannel[] = channels.map((c) => ({
    name: c.name,
    arch: c.arch,
    graphUrl: c.graphUrl,
    mode: c.mode,
    minVersion: c.minVersion,
    maxVersion: c.maxVersion,
    versions: c.releases.map((r) => r.version),
  }));
  const platforms: Platform[] = selection.platforms === 'all' ? allPlatforms(images) : [...selection.platforms];
  return {
    releases,
    channels: plannedChannels,
    blocked,
    platforms,
    images,
    blobs: sortedBlobs,
    totals: {
      images: images.length,
      uniqueBlobs: sortedBlobs.length,
      uniqueBytes: sortedBlobs.reduce((n, b) => n + b.size, 0),
      bytesWithRepeats,
      uncompressedBytes: sortedBlobs.reduce((n, b) => n + b.uncompressedSize, 0),
    },
  };
}

function allPlatforms(images: readonly PlannedImage[]): Platform[] {
  const out = new Map<string, Platform>();
  for (const image of images) for (const p of image.platforms) out.set(formatPlatform(p), p);
  return [...out.values()].sort((a, b) => formatPlatform(a).localeCompare(formatPlatform(b)));
}
