// The OCI layout destination on its own (real files, no copy): what commit merges into index.json, which
// images it names, the order in which a layout's files appear, and a full file system named as the layout's.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { ManifestBytes } from '../../src/copy/destination.js';
import { LayoutDestination } from '../../src/copy/layout-destination.js';
import { sha256Of } from '../../src/oci/digest.js';
import { INDEX_FILE, OCI_LAYOUT_FILE, readLayoutIndex, REF_NAME_ANNOTATION } from '../../src/oci/image-layout.js';
import { MediaType } from '../../src/oci/media-types.js';
import { KILL_AT_ENV } from '../../src/util/kill-point.js';
import { isUserError } from '../../src/util/errors.js';
import { withTempDir } from '../support/temp-dir.js';

const run = promisify(execFile);
const REPOSITORY = 'quay.io/ns/app';
const LAYOUT_DESTINATION_MODULE = fileURLToPath(new URL('../../src/copy/layout-destination.js', import.meta.url));

function manifestBytes(mediaType: string, document: Record<string, unknown>): ManifestBytes {
  const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType, ...document }), 'utf8');
  return { digest: sha256Of(bytes), mediaType, bytes };
}

/** An amd64 image manifest and a multi-arch index listing it. */
function imageAndIndex(): { image: ManifestBytes; index: ManifestBytes } {
  const config = { mediaType: MediaType.ociConfig, digest: sha256Of(Buffer.from('config')), size: 6 };
  const image = manifestBytes(MediaType.ociManifest, { config, layers: [] });
  const index = manifestBytes(MediaType.ociIndex, {
    manifests: [{ mediaType: image.mediaType, digest: image.digest, size: image.bytes.length, platform: { os: 'linux', architecture: 'amd64' } }],
  });
  return { image, index };
}

async function names(dir: string): Promise<Map<string, string>> {
  return new Map((await readLayoutIndex(dir)).index.manifests.map((entry) => [entry.annotations?.[REF_NAME_ANNOTATION] ?? '', entry.digest]));
}

test('commit merges into index.json as it is at commit: an entry and top-level fields another tool wrote after open stay', async () => {
  await withTempDir('pin-preload-layout-dest-', async (dir) => {
    const { image } = imageAndIndex();
    const destination = await LayoutDestination.open(dir);
    try {
      await destination.putManifest(REPOSITORY, image);
      // Another tool (skopeo) names an image while the push runs.
      const foreign = { mediaType: image.mediaType, digest: image.digest, size: image.bytes.length, annotations: { [REF_NAME_ANNOTATION]: 'foreign' } };
      await writeFile(path.join(dir, INDEX_FILE), JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [foreign], annotations: { owner: 'skopeo' }, artifactType: 'application/x-example' }));
      await destination.commit();
    } finally {
      await destination.close();
    }
    const written = JSON.parse(await readFile(path.join(dir, INDEX_FILE), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(written.annotations, { owner: 'skopeo' });
    assert.equal(written.artifactType, 'application/x-example');
    assert.deepEqual([...(await names(dir)).keys()], ['foreign', `${REPOSITORY}@${image.digest}`]);
  });
});

test('an image that is also a child of another image\'s index (a pinned platform manifest and its multi-arch index) is named by digest, as the index is', async () => {
  await withTempDir('pin-preload-layout-dest-', async (dir) => {
    const { image, index } = imageAndIndex();
    const destination = await LayoutDestination.open(dir);
    try {
      destination.nameImages([
        { repository: REPOSITORY, manifests: [image] },
        { repository: REPOSITORY, manifests: [image, index] },
      ]);
      await destination.putManifest(REPOSITORY, image);
      await destination.putManifest(REPOSITORY, index);
      await destination.commit();
    } finally {
      await destination.close();
    }
    assert.deepEqual([...(await names(dir))].sort(), [
      [`${REPOSITORY}@${image.digest}`, image.digest],
      [`${REPOSITORY}@${index.digest}`, index.digest],
    ].sort());
  });
});

test('a child of an index that no image names stays unnamed: it is reached through its index', async () => {
  await withTempDir('pin-preload-layout-dest-', async (dir) => {
    const { image, index } = imageAndIndex();
    const destination = await LayoutDestination.open(dir);
    try {
      destination.nameImages([{ repository: REPOSITORY, manifests: [image, index] }]);
      await destination.putManifest(REPOSITORY, image);
      await destination.putManifest(REPOSITORY, index);
      await destination.commit();
    } finally {
      await destination.close();
    }
    assert.deepEqual([...(await names(dir)).keys()], [`${REPOSITORY}@${index.digest}`]);
  });
});

test('index.json is written before oci-layout: a writer killed between the two leaves no oci-layout, and the next commit adds it', async () => {
  await withTempDir('pin-preload-layout-dest-', async (dir) => {
    const { image } = imageAndIndex();
    const script = `
      import { LayoutDestination } from ${JSON.stringify(LAYOUT_DESTINATION_MODULE)};
      const image = ${JSON.stringify({ ...image, bytes: image.bytes.toString('base64') })};
      const destination = await LayoutDestination.open(${JSON.stringify(dir)});
      await destination.putManifest(${JSON.stringify(REPOSITORY)}, { ...image, bytes: Buffer.from(image.bytes, 'base64') });
      await destination.commit();
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, [KILL_AT_ENV]: 'layout:index-written' }, stdio: 'inherit' });
    const signal = await new Promise((resolve) => child.on('exit', (_code, sig) => resolve(sig)));
    assert.equal(signal, 'SIGKILL', 'the writer died at the kill point');
    assert.ok((await names(dir)).has(`${REPOSITORY}@${image.digest}`), 'index.json names the image');
    await assert.rejects(stat(path.join(dir, OCI_LAYOUT_FILE)), { code: 'ENOENT' });

    const destination = await LayoutDestination.open(dir);
    try {
      assert.equal(await destination.hasManifest(REPOSITORY, image.digest), true);
      await destination.commit();
    } finally {
      await destination.close();
    }
    assert.deepEqual(JSON.parse(await readFile(path.join(dir, OCI_LAYOUT_FILE), 'utf8')), { imageLayoutVersion: '1.0.0' });
  });
});

test('a full file system while writing a blob is PUSH_FAILED naming the layout, with a hint about its disk, not a registry', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to mount a small tmpfs');
  await withTempDir('pin-preload-layout-dest-', async (dir) => {
    await run('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir]);
    try {
      const blob = Buffer.alloc(2 << 20, 7);
      const destination = await LayoutDestination.open(dir);
      try {
        const failure = await destination.putBlob(REPOSITORY, { digest: sha256Of(blob), size: blob.length }, () => Readable.from([blob])).then(() => undefined, (e: unknown) => e);
        assert.ok(isUserError(failure) && failure.code === 'PUSH_FAILED', `got ${String(failure)}`);
        assert.match(failure.message, new RegExp(`writing blob ${sha256Of(blob)} into oci:${dir}: ENOSPC`));
        assert.ok(failure.hint?.includes(`free space in (or fix the permissions of) ${dir}`), failure.hint);
        assert.deepEqual(failure.subject, { kind: 'path', name: dir });
      } finally {
        await destination.close();
      }
    } finally {
      await run('umount', [dir]);
    }
  });
});
