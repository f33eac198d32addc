// The copy pipeline's contract with sources and destinations (src/copy/copy.ts): each blob's digest is
// checked exactly once (by a source that says it verifies, else by the copy), a destination holding a
// prefix gets only the rest from the source, and a keepGoing copy names every failure and commits nothing.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { copyImages, CopyIncomplete, IndexSkipped, type CopyImage } from '../../src/copy/copy.js';
import type { BlobRef, BlobReuse, ImageDestination, ManifestBytes, OpenBlob } from '../../src/copy/destination.js';
import { DigestMismatchError, type Digest } from '../../src/oci/digest.js';
import type { Reference, Repository } from '../../src/oci/reference.js';
import type { BlobStreamOptions, FetchedManifest, ImageSource } from '../../src/registry/source.js';
import { MediaType } from '../../src/oci/media-types.js';
import { ManifestCache } from '../../src/plan/manifest-cache.js';
import { blobContents, MemorySource, multiArchImage, testImage, type TestImage } from '../support/bundle-plans.js';

const repo = { domain: 'quay.io', path: 'example/app' };
const one = testImage(repo, 'one', [randomBytes(300_000), randomBytes(5_000)]);
const contents = blobContents([one]);
const layer = one.blobs.find((b) => b.role === 'layer' && b.size > 100_000)!;

function copyImageOf(t: TestImage): CopyImage {
  const byDigest = new Map(t.blobs.map((b) => [b.digest, b]));
  return {
    name: `${t.image.reference.domain}/${t.image.reference.path}@${t.image.reference.digest}`,
    source: repo,
    repository: 'example/app',
    manifests: [...t.image.manifests].reverse().map((digest) => ({ digest, mediaType: MediaType.ociManifest })),
    blobs: t.image.blobs.map((digest) => ({ digest, size: byDigest.get(digest)!.size })),
    tags: [],
  };
}

/** Serves `contents` as they are, checking nothing (as a bundle or a layout dir does); counts bytes served. */
class PlainSource implements ImageSource {
  readonly served = new Map<Digest, number>();
  readonly failing = new Set<Digest>();

  constructor(private readonly contents: Map<Digest, Buffer>) {}

  async getManifest(ref: Reference): Promise<FetchedManifest> {
    if (this.failing.has(ref.digest!)) throw new Error(`manifest ${ref.digest!} not found`);
    const bytes = this.contents.get(ref.digest!)!;
    return { bytes, mediaType: MediaType.ociManifest, digest: ref.digest! };
  }

  blobStream(_repo: Repository, blob: { digest: Digest; size: number }, options: BlobStreamOptions = {}): Readable {
    if (this.failing.has(blob.digest)) return Readable.from((async function* () { throw new Error(`blob ${blob.digest} not found`); })());
    const slice = this.contents.get(blob.digest)!.subarray(options.offset ?? 0);
    this.served.set(blob.digest, (this.served.get(blob.digest) ?? 0) + slice.length);
    return Readable.from([Buffer.from(slice)], { objectMode: false });
  }
}

/** A source that says its streams are verified but serves one blob with a byte flipped. */
class LyingSource extends PlainSource {
  constructor(
    contents: Map<Digest, Buffer>,
    readonly verifiesBlobs: boolean,
  ) {
    const flipped = Buffer.from(contents.get(layer.digest)!);
    flipped[1000] = flipped[1000]! ^ 0xff;
    super(new Map([...contents, [layer.digest, flipped]]));
  }
}

/**
 * Keeps blobs in memory. `prefixes` are blobs it already holds the start of: it hands the copy their
 * hash (OpenBlob's prefixHash) and appends what comes, as the bundle's destination does from disk.
 */
class MemoryDestination implements ImageDestination {
  readonly name = 'memory';
  readonly resumesPartialBlobs = true;
  readonly blobs = new Map<Digest, Buffer>();
  readonly manifests = new Map<Digest, Buffer>();
  committed = false;

  constructor(private readonly prefixes = new Map<Digest, Buffer>()) {}

  async reuseBlob(_repository: string, blob: BlobRef): Promise<BlobReuse> {
    return this.blobs.has(blob.digest) ? 'present' : 'absent';
  }

  async putBlob(_repository: string, blob: BlobRef, open: OpenBlob): Promise<number> {
    const prefix = this.prefixes.get(blob.digest) ?? Buffer.alloc(0);
    let hash: Hash | undefined;
    if (prefix.length > 0) hash = createHash('sha256').update(prefix);
    const rest = await buffer(prefix.length > 0 ? open(prefix.length, hash) : open(0));
    this.blobs.set(blob.digest, Buffer.concat([prefix, rest]));
    return rest.length;
  }

  async hasManifest(_repository: string, digest: Digest): Promise<boolean> {
    return this.manifests.has(digest);
  }

  async putManifest(_repository: string, manifest: ManifestBytes): Promise<void> {
    this.manifests.set(manifest.digest, manifest.bytes);
  }

  async tagDigest(): Promise<Digest | undefined> {
    return undefined;
  }

  async putTag(): Promise<void> {}

  async commit(): Promise<void> {
    this.committed = true;
  }

  async close(): Promise<void> {}
}

const noRetry = { retry: { attempts: 1 } };

test('a source that declares its streams verified is not hashed again by the copy; one that does not is checked by it', async () => {
  // The lying source proves the point from both sides: trusted when it says it verifies (no second sha256
  // per byte), caught when it does not say so. The registry client's streams do verify (registry-client tests).
  const trusted = new MemoryDestination();
  await copyImages(new LyingSource(contents, true), trusted, [copyImageOf(one)], noRetry);
  assert.notDeepEqual(trusted.blobs.get(layer.digest), contents.get(layer.digest));

  const checked = new MemoryDestination();
  await assert.rejects(copyImages(new LyingSource(contents, false), checked, [copyImageOf(one)], noRetry), (err: unknown) => {
    assert.ok(err instanceof DigestMismatchError || (err as { cause?: unknown }).cause instanceof DigestMismatchError, String(err));
    return true;
  });
  assert.equal(checked.blobs.has(layer.digest), false);
  assert.equal(checked.committed, false);
});

test('a destination that holds a prefix and its hash gets only the rest from the source, verified as a whole', async () => {
  const at = 123_456;
  for (const source of [new MemorySource(contents), new PlainSource(contents)]) {
    const destination = new MemoryDestination(new Map([[layer.digest, contents.get(layer.digest)!.subarray(0, at)]]));
    await copyImages(source, destination, [copyImageOf(one)], noRetry);
    assert.equal(source.served.get(layer.digest), layer.size - at, `${source.constructor.name}: only the bytes after the prefix are read`);
    assert.deepEqual(destination.blobs.get(layer.digest), contents.get(layer.digest));
  }
});

test('a damaged prefix fails the digest check of the whole blob, whoever verifies', async () => {
  const damaged = Buffer.from(contents.get(layer.digest)!.subarray(0, 50_000));
  damaged[10] = damaged[10]! ^ 1;
  for (const source of [new MemorySource(contents), new PlainSource(contents)]) {
    const destination = new MemoryDestination(new Map([[layer.digest, damaged]]));
    await assert.rejects(copyImages(source, destination, [copyImageOf(one)], noRetry), (err: unknown) => {
      assert.ok((err as { cause?: unknown }).cause instanceof DigestMismatchError, `${source.constructor.name}: ${String(err)}`);
      return true;
    });
    assert.equal(destination.committed, false);
  }
});

test('keepGoing: every blob that fails is named in one run, the rest is copied, and nothing is committed', async () => {
  const source = new PlainSource(contents);
  const victims = one.blobs.filter((b) => b.role !== 'manifest').slice(0, 2).map((b) => b.digest);
  for (const v of victims) source.failing.add(v);
  const destination = new MemoryDestination();
  await assert.rejects(copyImages(source, destination, [copyImageOf(one)], { ...noRetry, keepGoing: true }), (err: unknown) => {
    assert.ok(err instanceof CopyIncomplete);
    assert.deepEqual(err.failures.map((f) => f.digest).sort(), [...victims].sort());
    for (const f of err.failures) assert.match((f.error as Error).message, /not found/);
    return true;
  });
  const others = one.blobs.filter((b) => b.role !== 'manifest' && !victims.includes(b.digest));
  for (const b of others) assert.ok(destination.blobs.has(b.digest), `blob ${b.digest} was copied`);
  assert.equal(destination.committed, false);
});

test('an image is whole (its manifest placed) as soon as its own blobs are in, while another image\'s blob still streams', async () => {
  const two = testImage({ domain: 'quay.io', path: 'example/other' }, 'two', [randomBytes(2_000_000)]);
  const slow = two.blobs.find((b) => b.role === 'layer')!;
  let release: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const source = new PlainSource(new Map([...contents, ...blobContents([two])]));
  const plainStream = source.blobStream.bind(source);
  source.blobStream = (repository, blob, options) => {
    if (blob.digest !== slow.digest) return plainStream(repository, blob, options);
    const bytes = plainStream(repository, blob, options);
    return Readable.from((async function* () {
      await gate; // held until the first image is whole
      for await (const chunk of bytes) yield chunk as Buffer;
    })(), { objectMode: false });
  };
  const destination = new MemoryDestination();
  const firstWhole = new Promise<void>((resolve) => {
    const put = destination.putManifest.bind(destination);
    destination.putManifest = async (repository, manifest) => {
      await put(repository, manifest);
      if (manifest.digest === one.image.reference.digest) resolve();
    };
  });
  const copied = copyImages(source, destination, [copyImageOf(one), { ...copyImageOf(two), source: two.image.reference, repository: 'example/other' }], noRetry);
  // A copy that put manifests only after every blob would wait here: the gate opens anyway after 5 s, and the
  // blob is then in before the manifest, which the assertion catches.
  const fallback = setTimeout(release, 5000);
  await firstWhole;
  clearTimeout(fallback);
  assert.equal(destination.blobs.has(slow.digest), false, 'the other image\'s blob is still streaming');
  release();
  await copied;
  assert.ok(destination.manifests.has(two.image.reference.digest));
});

/** `t` as a copy image of its own repository (copyImageOf puts every image in example/app). */
function copyImageIn(t: TestImage): CopyImage {
  return { ...copyImageOf(t), source: t.image.reference, repository: t.image.reference.path };
}

test('keepGoing: an image with a blob that failed gets no manifest, the other images are whole, and the blob is named', async () => {
  const two = testImage({ domain: 'quay.io', path: 'example/other' }, 'two', [randomBytes(40_000)]);
  const source = new PlainSource(new Map([...contents, ...blobContents([two])]));
  source.failing.add(layer.digest); // a 404 for one layer of image one
  const destination = new MemoryDestination();
  await assert.rejects(copyImages(source, destination, [copyImageOf(one), copyImageIn(two)], { ...noRetry, keepGoing: true }), (err: unknown) => {
    assert.ok(err instanceof CopyIncomplete);
    assert.deepEqual(err.failures.map((f) => f.digest), [layer.digest]);
    return true;
  });
  assert.equal(destination.manifests.has(one.image.reference.digest), false, 'no manifest over a missing blob');
  assert.ok(destination.manifests.has(two.image.reference.digest), 'the other image is whole');
  assert.equal(destination.committed, false);
});

/** `t` as a copy image with each manifest's own media type (an index is one), in example/app. */
function typedCopyImageOf(t: TestImage): CopyImage {
  const byDigest = new Map(t.blobs.map((b) => [b.digest, b]));
  return { ...copyImageOf(t), manifests: [...t.image.manifests].reverse().map((digest) => ({ digest, mediaType: byDigest.get(digest)!.mediaType })) };
}

/** The multi-arch image's index and its amd64 and arm64 child manifests. */
function multiArchParts(t: TestImage): { index: Digest; amd64: Digest; arm64: Digest } {
  const [index, amd64, arm64] = t.image.manifests;
  return { index: index!, amd64: amd64!, arm64: arm64! };
}

test('keepGoing: an index whose child manifest could not be copied is never written, and the failures name the child and the index', async () => {
  const multi = multiArchImage(repo);
  const { index, amd64, arm64 } = multiArchParts(multi);
  const source = new PlainSource(blobContents([multi]));
  source.failing.add(arm64);
  const destination = new MemoryDestination();
  await assert.rejects(copyImages(source, destination, [typedCopyImageOf(multi)], { ...noRetry, keepGoing: true }), (err: unknown) => {
    assert.ok(err instanceof CopyIncomplete);
    assert.deepEqual(err.failures.map((f) => f.digest), [arm64, index]);
    const skipped = err.failures[1]!.error;
    assert.ok(skipped instanceof IndexSkipped);
    assert.equal(skipped.child, arm64);
    assert.match(skipped.message, new RegExp(`index ${index} .*not written: its manifest ${arm64} could not be copied`));
    return true;
  });
  assert.equal(destination.manifests.has(index), false, 'no index over a missing child');
  assert.ok(destination.manifests.has(amd64), 'the other child is still tried');
  assert.equal(destination.committed, false);
});

test('keepGoing: a child manifest that failed for one image keeps the index of another image that lists it unwritten too', async () => {
  const multi = multiArchImage(repo);
  const { index, arm64 } = multiArchParts(multi);
  const source = new PlainSource(blobContents([multi]));
  source.failing.add(arm64);
  const arm64Alone: CopyImage = { ...typedCopyImageOf(multi), name: `quay.io/example/app@${arm64}`, manifests: [{ digest: arm64, mediaType: MediaType.ociManifest }] };
  const destination = new MemoryDestination();
  await assert.rejects(copyImages(source, destination, [arm64Alone, typedCopyImageOf(multi)], { ...noRetry, keepGoing: true }), (err: unknown) => {
    assert.ok(err instanceof CopyIncomplete);
    assert.deepEqual(err.failures.map((f) => f.digest).sort(), [arm64, index].sort());
    return true;
  });
  assert.equal(destination.manifests.has(index), false);
});

test('keepGoing: a layer of one platform child that fails leaves the whole multi-arch image unwritten (no index, no child), naming the layer', async () => {
  const multi = multiArchImage(repo);
  const { index, amd64, arm64 } = multiArchParts(multi);
  const arm64Layer = multi.blobs.find((b) => b.role === 'layer' && b.size > 6000)!.digest;
  const source = new PlainSource(blobContents([multi]));
  source.failing.add(arm64Layer);
  const destination = new MemoryDestination();
  await assert.rejects(copyImages(source, destination, [typedCopyImageOf(multi)], { ...noRetry, keepGoing: true }), (err: unknown) => {
    assert.ok(err instanceof CopyIncomplete);
    assert.deepEqual(err.failures.map((f) => f.digest), [arm64Layer]);
    return true;
  });
  for (const manifest of [index, amd64, arm64]) assert.equal(destination.manifests.has(manifest), false, `manifest ${manifest} is not written`);
});

test('keepGoing stops at a fatal error (a full disk) and throws it as it is, not as one blob among many', async () => {
  const many = Array.from({ length: 6 }, (_, i) => testImage({ domain: 'quay.io', path: `example/app${i}` }, `app${i}`, [randomBytes(10_000)]));
  const destination = new MemoryDestination();
  let puts = 0;
  destination.putBlob = async () => {
    puts++;
    throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
  };
  const isFatal = (error: unknown): boolean => (error as { code?: unknown }).code === 'ENOSPC';
  await assert.rejects(copyImages(new PlainSource(blobContents(many)), destination, many.map(copyImageIn), { ...noRetry, keepGoing: true, isFatal, concurrency: 1 }), (err: unknown) => {
    assert.ok(!(err instanceof CopyIncomplete), String(err));
    assert.equal((err as { code?: unknown }).code, 'ENOSPC');
    return true;
  });
  assert.equal(puts, 1, 'no blob is tried after the disk filled up');
  assert.equal(destination.manifests.size, 0);
});

test('a resumed blob read through ManifestCache gets only the rest from a verifying source, checked as a whole', async () => {
  const at = 123_456;
  const inner = new MemorySource(contents);
  const destination = new MemoryDestination(new Map([[layer.digest, contents.get(layer.digest)!.subarray(0, at)]]));
  await copyImages(new ManifestCache(inner), destination, [copyImageOf(one)], noRetry);
  assert.equal(inner.served.get(layer.digest), layer.size - at);
  assert.deepEqual(destination.blobs.get(layer.digest), contents.get(layer.digest));
});

test('a verifying stream asked to start past byte 0 without the prefix hash is refused at once, not failed at the end', () => {
  assert.throws(() => new MemorySource(contents).blobStream(repo, layer, { offset: 1000 }), /needs the hash of the bytes before it/);
});

test('blobs are copied small ones first in image order, then the large ones largest first', async () => {
  const images = [
    testImage({ domain: 'quay.io', path: 'example/a' }, 'a', [randomBytes(1_200_000), randomBytes(4_000)]),
    testImage({ domain: 'quay.io', path: 'example/b' }, 'b', [randomBytes(2_500_000), randomBytes(6_000)]),
    testImage({ domain: 'quay.io', path: 'example/c' }, 'c', [randomBytes(1_800_000)]),
  ];
  const destination = new MemoryDestination();
  const order: BlobRef[] = [];
  const put = destination.putBlob.bind(destination);
  destination.putBlob = (repository, blob, open) => {
    order.push(blob);
    return put(repository, blob, open);
  };
  await copyImages(new PlainSource(blobContents(images)), destination, images.map(copyImageIn), { ...noRetry, concurrency: 1 });
  const small = images.flatMap((t) => copyImageIn(t).blobs.filter((b) => b.size <= 1024 * 1024));
  const large = images.flatMap((t) => copyImageIn(t).blobs.filter((b) => b.size > 1024 * 1024)).sort((a, b) => b.size - a.size);
  assert.equal(large.length, 3);
  assert.deepEqual(order.map((b) => b.digest), [...small, ...large].map((b) => b.digest));
});
