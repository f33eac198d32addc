// The registry push destination's answers against a real docker-registry: a blob the target held already,
// found by a mount from its own repository, is "present" and not taken for one this run placed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { BlobRef } from '../../src/copy/destination.js';
import type { Digest } from '../../src/oci/digest.js';
import { RegistryClient } from '../../src/registry/client.js';
import { RegistryDestination } from '../../src/registry/destination.js';
import { startDockerRegistry } from '../support/docker-registry.js';

function blobOf(bytes: Buffer): BlobRef & { open: () => Readable } {
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest;
  return { digest, size: bytes.length, open: () => Readable.from([bytes]) };
}

async function put(destination: RegistryDestination, repository: string, blob: ReturnType<typeof blobOf>): Promise<void> {
  assert.equal(await destination.reuseBlob(repository, blob, undefined), 'absent');
  await destination.putBlob(repository, blob, blob.open);
}

test('a blob found by a mount from its own repository is present, and a later repository holding it too is asked, not counted mounted', async (t) => {
  const registry = await startDockerRegistry();
  const client = new RegistryClient();
  t.after(async () => {
    await client.close();
    await registry.stop();
  });
  const target = { host: registry.host, insecure: true };
  const held = blobOf(randomBytes(4096));
  // An earlier push put the blob into both repositories.
  const earlier = new RegistryDestination(client, target);
  await put(earlier, 'site/a', held);
  await put(earlier, 'site/b', held);

  // This push: a new blob first, so site/a has answered only "absent", and its upload showed the target mounts.
  const push = new RegistryDestination(client, target);
  await put(push, 'site/a', blobOf(randomBytes(4096)));
  assert.equal(await push.reuseBlob('site/a', held, undefined), 'present', 'linked from site/a itself: it was there');
  assert.equal(await push.reuseBlob('site/b', held, 'site/a'), 'present', 'not mounted from site/a as if this run had put it there');
});
