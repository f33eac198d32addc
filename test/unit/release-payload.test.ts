import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { sha256Of, VerifyingStream, type Digest } from '../../src/oci/digest.js';
import type { Descriptor, ImageManifest } from '../../src/oci/manifest.js';
import { MediaType } from '../../src/oci/media-types.js';
import type { Repository } from '../../src/oci/reference.js';
import type { BlobStreamOptions, FetchedManifest, ImageSource } from '../../src/registry/source.js';
import { normaliseEntryName, readPayloadFiles } from '../../src/release/payload.js';
import { UserError } from '../../src/util/errors.js';

/** Blobs served in 4 KiB chunks, counting what was actually read, so early hang-ups are visible. */
class CountingBlobs implements ImageSource {
  readonly blobs = new Map<Digest, Buffer>();
  readonly bytesServed = new Map<Digest, number>();
  readonly opened: Digest[] = [];

  add(bytes: Buffer, mediaType: string = MediaType.ociLayerGzip): Descriptor {
    const digest = sha256Of(bytes);
    this.blobs.set(digest, bytes);
    return { mediaType, digest, size: bytes.length };
  }

  async getManifest(): Promise<FetchedManifest> {
    throw new Error('not used');
  }

  blobStream(_repo: Repository, blob: { digest: Digest; size: number }, _options?: BlobStreamOptions): Readable {
    const bytes = this.blobs.get(blob.digest)!;
    this.opened.push(blob.digest);
    const counts = this.bytesServed;
    const body = Readable.from((function* () {
      for (let i = 0; i < bytes.length; i += 4096) {
        counts.set(blob.digest, (counts.get(blob.digest) ?? 0) + Math.min(4096, bytes.length - i));
        yield bytes.subarray(i, i + 4096);
      }
    })(), { objectMode: false, highWaterMark: 4096 });
    return body.pipe(new VerifyingStream(blob.digest, blob.size, 'test blob'));
  }
}

async function tarOf(entries: Array<{ name: string; body?: string | Buffer; type?: 'directory' | 'file' | 'symlink' }>): Promise<Buffer> {
  const pack = tar.pack();
  for (const e of entries) {
    if (e.type === 'directory') pack.entry({ name: e.name, type: 'directory' });
    else if (e.type === 'symlink') pack.entry({ name: e.name, type: 'symlink', linkname: 'elsewhere' });
    else pack.entry({ name: e.name }, e.body ?? '');
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function manifestOf(layers: Descriptor[]): ImageManifest {
  return { kind: 'image', mediaType: MediaType.dockerManifest, config: { mediaType: MediaType.dockerConfig, digest: sha256Of('{}'), size: 2 }, layers };
}

const repo = { domain: 'quay.io', path: 'openshift-release-dev/ocp-release' };
/** Incompressible bytes, so a gzip'd layer stays large and reading it whole would show. */
const filler = (n: number) => randomBytes(n);

test('entry names lose a leading ./ or /', () => {
  assert.equal(normaliseEntryName('./release-manifests/image-references'), 'release-manifests/image-references');
  assert.equal(normaliseEntryName('/release-manifests/x'), 'release-manifests/x');
  assert.equal(normaliseEntryName('release-manifests/x'), 'release-manifests/x');
});

test('reads both files from the top layer and hangs up before the rest of it, never opening lower layers', async () => {
  const source = new CountingBlobs();
  const base = source.add(gzipSync(await tarOf([{ name: 'usr/bin/cvo', body: filler(200_000) }])));
  const top = source.add(gzipSync(await tarOf([
    { name: 'release-manifests', type: 'directory' },
    { name: './release-manifests/image-references', body: '{"refs":1}' },
    { name: 'release-manifests/release-metadata', body: '{"meta":1}' },
    { name: 'release-manifests/0000_big.yaml', body: filler(2_000_000) },
  ])));
  const files = await readPayloadFiles(source, repo, manifestOf([base, top]), 'rel');
  assert.equal(files.imageReferences.toString(), '{"refs":1}');
  assert.equal(files.releaseMetadata?.toString(), '{"meta":1}');
  assert.equal(files.layersRead, 1);
  assert.deepEqual(source.opened, [top.digest]);
  assert.ok(source.bytesServed.get(top.digest)! < top.size / 4, `read ${source.bytesServed.get(top.digest)} of ${top.size} bytes`);
});

test('walks down the layers; the topmost occurrence wins; metadata is optional', async () => {
  const source = new CountingBlobs();
  const bottom = source.add(gzipSync(await tarOf([{ name: 'release-manifests/image-references', body: 'old' }, { name: 'release-manifests/release-metadata', body: 'old-meta' }])));
  const middle = source.add(gzipSync(await tarOf([
    { name: 'release-manifests/image-references', type: 'symlink' },
    { name: 'release-manifests/image-references', body: 'new' },
    { name: 'release-manifests/image-references', body: 'later duplicate in the same layer' },
  ])));
  const top = source.add(await tarOf([{ name: 'etc/motd', body: 'hello' }]), MediaType.ociLayerTar);
  const files = await readPayloadFiles(source, repo, manifestOf([bottom, middle, top]), 'rel');
  assert.equal(files.imageReferences.toString(), 'new');
  assert.equal(files.releaseMetadata, undefined, 'the walk stops at the layer that had image-references');
  assert.deepEqual(source.opened, [top.digest, middle.digest]);
});

test('a payload without image-references is refused with RELEASE_NO_IMAGE_REFERENCES', async () => {
  const source = new CountingBlobs();
  const only = source.add(gzipSync(await tarOf([{ name: 'release-manifests/release-metadata', body: '{}' }])));
  await assert.rejects(readPayloadFiles(source, repo, manifestOf([only]), 'quay.io/x/y:1'), (err: unknown) =>
    err instanceof UserError && err.code === 'RELEASE_NO_IMAGE_REFERENCES' && err.message === 'release image quay.io/x/y:1 did not contain an image-references file');
});

test('a layer that is not gzip although it says so is reported, naming the layer', async () => {
  const source = new CountingBlobs();
  const bad = source.add(Buffer.from('definitely not gzip'.repeat(10)));
  await assert.rejects(readPayloadFiles(source, repo, manifestOf([bad]), 'rel'), (err: unknown) =>
    err instanceof UserError && err.code === 'RELEASE_LAYER_UNREADABLE' && err.message.includes(bad.digest));
});

test('a gzip layer that does not hold a tar is reported, naming the layer', async () => {
  const source = new CountingBlobs();
  const bad = source.add(gzipSync(Buffer.alloc(1024, 7)));
  await assert.rejects(readPayloadFiles(source, repo, manifestOf([bad]), 'rel'), (err: unknown) =>
    err instanceof UserError && err.code === 'RELEASE_LAYER_UNREADABLE' && /not a valid tar/.test(err.message) && err.message.includes(bad.digest));
});
