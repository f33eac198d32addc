// Pushes every image of an OCI image layout to a registry with the distribution push API, each to the
// repository path of its source reference: how tests and benchmarks fill a real registry from a fixture.

import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { Pool } from 'undici';
import { digestHex, parseDigest, type Digest } from '../oci/digest.js';
import { parseManifest } from '../oci/manifest.js';
import { parseReference, type Reference } from '../oci/reference.js';
import { UserError } from '../util/errors.js';
import { mapBounded } from '../util/concurrency.js';
import { REF_NAME_ANNOTATION } from './layout-writer.js';

export interface PushOptions {
  /** Requests in flight at once (default 4). */
  readonly concurrency?: number;
}

export interface PushStats {
  readonly images: number;
  /** Manifest PUTs, by digest and by tag. */
  readonly manifests: number;
  readonly blobsUploaded: number;
  /** Blobs that a cross-repository mount placed without upload. */
  readonly blobsMounted: number;
  /** Blobs the registry already had in the target repository. */
  readonly blobsSkipped: number;
  readonly bytesUploaded: number;
}

interface LayoutManifest {
  readonly digest: Digest;
  readonly mediaType: string;
  readonly bytes: Buffer;
}

interface LayoutImage {
  readonly refName: string;
  readonly reference: Reference;
  /** Children before the index that lists them: the registry checks that they exist. */
  readonly manifests: LayoutManifest[];
  readonly blobs: Map<Digest, number>;
}

function pushError(what: string, detail: string, cause?: unknown): UserError {
  return new UserError('PUSH_FAILED', `${what}: ${detail}`, { cause });
}

/** Reads index.json and every manifest below it (small JSON; blobs stay on disk). */
async function readLayoutImages(dir: string): Promise<LayoutImage[]> {
  const blobsDir = path.join(dir, 'blobs', 'sha256');
  const readManifest = async (digest: Digest, mediaType: string, where: string): Promise<LayoutManifest> => {
    try {
      return { digest, mediaType, bytes: await fs.readFile(path.join(blobsDir, digestHex(digest))) };
    } catch (err) {
      throw new UserError('LAYOUT_INVALID', `${where}: manifest ${digest} is missing from ${blobsDir}`, { cause: err });
    }
  };
  const indexFile = path.join(dir, 'index.json');
  let index;
  try {
    index = parseManifest(await fs.readFile(indexFile), undefined, indexFile);
  } catch (err) {
    throw new UserError('LAYOUT_INVALID', `${dir} is not an OCI image layout: ${(err as Error).message}`, { cause: err });
  }
  if (index.kind !== 'index') throw new UserError('LAYOUT_INVALID', `${indexFile} is not an image index`);
  const images: LayoutImage[] = [];
  for (const entry of index.manifests) {
    const refName = entry.annotations?.[REF_NAME_ANNOTATION];
    if (refName === undefined) throw new UserError('LAYOUT_INVALID', `${indexFile}: entry ${entry.digest} has no ${REF_NAME_ANNOTATION} annotation`);
    const image: LayoutImage = { refName, reference: parseReference(refName), manifests: [], blobs: new Map() };
    const visit = async (digest: Digest, mediaType: string): Promise<void> => {
      const m = await readManifest(digest, mediaType, refName);
      const parsed = parseManifest(m.bytes, mediaType, `${refName} manifest ${digest}`);
      if (parsed.kind === 'index') {
        for (const child of parsed.manifests) await visit(child.digest, child.mediaType);
      } else {
        for (const blob of [parsed.config, ...parsed.layers]) image.blobs.set(blob.digest, blob.size);
      }
      image.manifests.push(m);
    };
    await visit(entry.digest, entry.mediaType);
    images.push(image);
  }
  return images;
}

class RegistryPusher {
  readonly pool: Pool;
  private readonly origin: string;
  /** Which repository received a blob first, so later repositories can mount it from there. */
  private readonly firstPush = new Map<Digest, Promise<string>>();
  stats = { images: 0, manifests: 0, blobsUploaded: 0, blobsMounted: 0, blobsSkipped: 0, bytesUploaded: 0 };

  constructor(registryUrl: string, private readonly blobsDir: string, concurrency: number) {
    this.origin = new URL(registryUrl).origin;
    this.pool = new Pool(this.origin, { connections: concurrency });
  }

  private async send(
    what: string,
    method: 'HEAD' | 'POST' | 'PUT',
    urlPath: string,
    expected: number[],
    options: { headers?: Record<string, string>; body?: Buffer | NodeJS.ReadableStream } = {},
  ): Promise<{ status: number; location?: string }> {
    let res;
    try {
      res = await this.pool.request({ method, path: urlPath, headers: options.headers ?? {}, ...(options.body ? { body: options.body as Buffer } : {}) });
    } catch (err) {
      throw pushError(what, `${method} ${this.origin}${urlPath} failed: ${(err as Error).message}`, err);
    }
    const text = method === 'HEAD' ? '' : await res.body.text();
    if (method === 'HEAD') await res.body.dump();
    if (!expected.includes(res.statusCode)) {
      throw pushError(what, `${method} ${this.origin}${urlPath} answered HTTP ${res.statusCode} ${text.slice(0, 500)}`);
    }
    const location = res.headers.location;
    return { status: res.statusCode, ...(typeof location === 'string' ? { location } : {}) };
  }

  /** An upload URL from a Location header as a path on our origin (the registry may answer absolute URLs). */
  private uploadPath(what: string, location: string | undefined, digest: Digest): string {
    if (!location) throw pushError(what, 'registry started an upload without a Location header');
    const url = new URL(location, this.origin);
    if (url.origin !== this.origin) throw pushError(what, `registry redirected the upload to another origin ${url.origin}`);
    url.searchParams.set('digest', digest);
    return `${url.pathname}${url.search}`;
  }

  private async upload(what: string, repo: string, digest: Digest, size: number, location?: string): Promise<void> {
    const start = location ?? (await this.send(what, 'POST', `/v2/${repo}/blobs/uploads/`, [202])).location;
    await this.send(what, 'PUT', this.uploadPath(what, start, digest), [201], {
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
      body: createReadStream(path.join(this.blobsDir, digestHex(digest))),
    });
    this.stats.blobsUploaded++;
    this.stats.bytesUploaded += size;
  }

  private async present(what: string, repo: string, digest: Digest): Promise<boolean> {
    const { status } = await this.send(what, 'HEAD', `/v2/${repo}/blobs/${digest}`, [200, 404]);
    if (status === 200) this.stats.blobsSkipped++;
    return status === 200;
  }

  /** HEAD first; the first repository to need a blob uploads it, later ones mount it from there. */
  pushBlob(imageName: string, repo: string, digest: Digest, size: number): Promise<void> {
    const what = `pushing blob ${digest} of ${imageName} to ${this.origin}/v2/${repo}`;
    const first = this.firstPush.get(digest);
    if (first === undefined) {
      const done = (async () => {
        if (!(await this.present(what, repo, digest))) await this.upload(what, repo, digest, size);
        return repo;
      })();
      this.firstPush.set(digest, done);
      return done.then(() => undefined);
    }
    return (async () => {
      const from = await first;
      if (await this.present(what, repo, digest)) return;
      const mount = await this.send(what, 'POST', `/v2/${repo}/blobs/uploads/?mount=${digest}&from=${from}`, [201, 202]);
      if (mount.status === 201) this.stats.blobsMounted++;
      else await this.upload(what, repo, digest, size, mount.location); // 202: mount refused, upload started
    })();
  }

  async pushManifests(image: LayoutImage): Promise<void> {
    const repo = image.reference.path;
    const put = async (m: LayoutManifest, target: string): Promise<void> => {
      await this.send(`pushing manifest ${m.digest} of ${image.refName} as ${repo}:${target}`, 'PUT', `/v2/${repo}/manifests/${target}`, [201], {
        headers: { 'content-type': m.mediaType, 'content-length': String(m.bytes.length) },
        body: m.bytes,
      });
      this.stats.manifests++;
    };
    for (const m of image.manifests) await put(m, m.digest);
    const top = image.manifests[image.manifests.length - 1] as LayoutManifest;
    if (image.reference.tag !== undefined) await put(top, image.reference.tag);
    this.stats.images++;
  }
}

/**
 * Pushes every image named in the layout's index.json to `registryUrl` (http://127.0.0.1:PORT): blobs
 * (HEAD, cross-repository mount, or POST+PUT streamed from the file), then manifests by digest, children
 * first, then the tag when the source reference has one. Idempotent: a second push uploads nothing.
 */
export async function pushLayout(dir: string, registryUrl: string, options: PushOptions = {}): Promise<PushStats> {
  const concurrency = Math.max(1, options.concurrency ?? 4);
  const images = await readLayoutImages(dir);
  const pusher = new RegistryPusher(registryUrl, path.join(dir, 'blobs', 'sha256'), concurrency);
  try {
    const blobs = new Map<string, { image: string; repo: string; digest: Digest; size: number }>();
    for (const image of images) {
      for (const [digest, size] of image.blobs) {
        const key = `${image.reference.path}@${digest}`;
        if (!blobs.has(key)) blobs.set(key, { image: image.refName, repo: image.reference.path, digest: parseDigest(digest), size });
      }
    }
    await mapBounded([...blobs.values()], concurrency, (b) => pusher.pushBlob(b.image, b.repo, b.digest, b.size));
    await mapBounded(images, concurrency, (image) => pusher.pushManifests(image));
    return { ...pusher.stats };
  } finally {
    await pusher.pool.close();
  }
}
