// The node inventory file as the bastion reads it (readInventory, for `bundle create --since`): what the node
// writes reads back unchanged, and anything else is refused naming the file and what is wrong.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { INVENTORY_KIND, inventoryBlobDigests, inventoryBlobHolders, readInventory, writeInventory, type NodeInventory } from '../../../src/node/inventory.js';
import { UserError } from '../../../src/util/errors.js';
import { withTempDir } from '../../support/temp-dir.js';

const digest = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;

const SAMPLE: NodeInventory = {
  kind: INVENTORY_KIND,
  schemaVersion: 1,
  tool: { name: 'pin-preload', version: '0.1.0' },
  node: { name: 'worker-0', hostname: 'worker-0.example.com' },
  generatedAt: '2026-11-30T12:00:00.000Z',
  bundles: [{ path: '/var/lib/pin-preload/bundles/ocp-4.16.3.tar', manifestDigest: digest(1), created: '2026-11-29T08:00:00.000Z', releases: [{ name: `quay.io/openshift-release-dev/ocp-release@${digest(2)}`, version: '4.16.3', channel: 'stable-4.16' }], images: 2, blobs: 2 }],
  blobs: [{ digest: digest(3), size: 10, bundles: [digest(1)] }, { digest: digest(4), size: 0, bundles: [digest(1)] }],
  runtime: { name: 'containerd', version: '1.7.24', images: [{ id: digest(5), repoDigests: [`quay.io/x/y@${digest(6)}`], repoTags: [] }] },
};

const withDir = (fn: (dir: string) => Promise<void>): Promise<void> => withTempDir('pin-preload-inventory-', fn);

test('an inventory written by the node reads back unchanged, leaving no temp file; its blob digests are a set', async () => {
  await withDir(async (dir) => {
    const file = path.join(dir, 'inventory.json');
    await writeInventory(file, SAMPLE);
    assert.deepEqual(await readInventory(file), SAMPLE);
    assert.deepEqual(await readdir(dir), ['inventory.json']);
    assert.deepEqual([...inventoryBlobDigests(SAMPLE)], [digest(3), digest(4)]);
    assert.deepEqual([...inventoryBlobHolders(SAMPLE)!], [[digest(3), [digest(1)]], [digest(4), [digest(1)]]]);
    // Written before blobs named their bundles: no holders, so a delta takes every bundle as a base.
    assert.equal(inventoryBlobHolders({ ...SAMPLE, blobs: [{ digest: digest(3), size: 10 }] }), undefined);
    await assert.rejects(writeInventory(path.join(file, 'inventory.json'), SAMPLE), (e: unknown) => e instanceof UserError && e.code === 'INVENTORY_WRITE_FAILED' && /inventory\.json\/inventory\.json: E[A-Z]+$/.test(e.message), 'a path under a file');
  });
});

test('a file that is not a valid inventory is refused with INVENTORY_INVALID naming the file and the problem', async () => {
  const cases: Array<[unknown, RegExp]> = [
    [{ ...SAMPLE, kind: 'pin-preload.bundle' }, /kind is "pin-preload\.bundle", not "pin-preload\.inventory"/],
    [{ ...SAMPLE, schemaVersion: 2 }, /schemaVersion 2 is not supported/],
    [{ ...SAMPLE, node: 'worker-0' }, /node must be \{name, hostname\}/],
    [{ ...SAMPLE, generatedAt: 'yesterday' }, /generatedAt must be an RFC 3339 time/],
    [{ ...SAMPLE, bundles: [{ ...SAMPLE.bundles[0], manifestDigest: 'sha256:nothex' }] }, /bundle 1 needs a path and a manifestDigest/],
    [{ ...SAMPLE, bundles: [{ ...SAMPLE.bundles[0], releases: [{ name: 'x' }] }] }, /releases must be a list of \{name, version\}/],
    [{ ...SAMPLE, blobs: [{ digest: 'md5:abc', size: 1 }] }, /blob 1 has no valid digest/],
    [{ ...SAMPLE, blobs: [{ digest: digest(3), size: -1 }] }, /blob sha256:0+3 has no valid size/],
    [{ ...SAMPLE, blobs: [{ digest: digest(3), size: 1, bundles: [digest(9)] }] }, /blob sha256:0+3: bundles must be a non-empty list of manifest digests of bundles\[\]/],
    [{ ...SAMPLE, blobs: [{ digest: digest(3), size: 1, bundles: [] }] }, /blob sha256:0+3: bundles must be/],
    [{ ...SAMPLE, bundles: [{ ...SAMPLE.bundles[0], created: 'last week' }] }, /created must be an RFC 3339 time/],
    [{ ...SAMPLE, runtime: { images: [{ id: 'x', repoDigests: 'y', repoTags: [] }] } }, /runtime image 1 needs an id, repoDigests and repoTags/],
    [[SAMPLE], /not a JSON object/],
  ];
  await withDir(async (dir) => {
    const file = path.join(dir, 'inventory.json');
    for (const [doc, why] of cases) {
      await writeFile(file, JSON.stringify(doc));
      await assert.rejects(readInventory(file), (e: unknown) => e instanceof UserError && e.code === 'INVENTORY_INVALID' && e.message.startsWith(`${file} is not a pin-preload node inventory: `) && why.test(e.message), String(why));
    }
    await writeFile(file, '{"kind":');
    await assert.rejects(readInventory(file), /not JSON/);
    await assert.rejects(readInventory(path.join(dir, 'missing.json')), (e: unknown) => e instanceof UserError && e.code === 'INVENTORY_UNREADABLE' && /ENOENT/.test(e.message));
  });
});
