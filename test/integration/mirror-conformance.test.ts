// The OCI distribution-spec conformance suite's Pull and Content Discovery workflows, check for check
// (conformance/01_pull_test.go and 03_discovery_test.go at 13a5d3e, the last version before the suite's
// redesign), against the mirror serving a bundle of the content the suite's setup.go builds
// (test/support/conformance-content.ts). Suites and tests carry the suite's own context and spec titles;
// each test sends what the spec sends (method, path, headers, body) and requires what it requires,
// including its "if the header is present it must be right" checks. The Setup specs push that content,
// which a read-only mirror cannot take: the bundle holds it instead, so they have no test here. The Teardown specs' DELETEs are kept:
// the suite accepts 405 there, which is what a read-only registry answers.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http, { type IncomingHttpHeaders } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { BundleStore } from '../../src/mirror/bundle-store.js';
import { startMirror, type RunningMirror } from '../../src/mirror/server.js';
import { MediaType } from '../../src/oci/media-types.js';
import { ANNOTATION_KEY, ARTIFACT_TYPE_A, conformanceContent, DUMMY_DIGEST, ERROR_CODES, NONEXISTENT_MANIFEST, TEST_TAG, type ConformanceContent } from '../support/conformance-content.js';
import { buildTinyBundle } from '../support/mirror-fixture.js';

let work: string;
let store: BundleStore;
let mirror: RunningMirror;
let content: ConformanceContent;

before(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-conformance-'));
  content = conformanceContent();
  const seal = await buildTinyBundle(path.join(work, 'conformance.tar'), content.images);
  store = await BundleStore.open(path.join(work, 'state.db'));
  await store.registerBundle(seal);
  mirror = await startMirror({ store, listen: '127.0.0.1:0' });
});

after(async () => {
  await mirror?.close();
  store?.close();
  await rm(work, { recursive: true, force: true });
});

interface Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

/** One request as the suite's client (reggie) sends it; `<name>` in the path is the workflow's namespace. */
function send(method: string, target: string, options: { headers?: Record<string, string>; body?: Buffer } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const url = new URL(target, mirror.url);
    // Like Go's client, a body goes with its Content-Length (Node would otherwise send a GET body chunked).
    const length = options.body ? { 'Content-Length': String(options.body.length) } : {};
    const req = http.request(url, { method, headers: { 'User-Agent': 'distribution-spec-conformance-tests', ...length, ...options.headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

const OCI_MANIFEST = { Accept: MediaType.ociManifest };
const pullName = () => content.pullRepository.path;
const discoveryName = () => content.discoveryRepository.path;

function isSuccess(status: number): boolean {
  return status >= 200 && status < 300;
}

/** The suite's teardown matcher: 2xx, or one of the statuses it also accepts there. */
function assertDeleteAccepted(res: Answer, also: readonly number[], what: string): void {
  assert.ok(isSuccess(res.status) || also.includes(res.status), `${what}: ${res.status}`);
}

/** The suite's `Docker-Content-Digest`, checked only when the registry sends it. */
function assertDigestIfPresent(res: Answer, digest: string): void {
  const header = res.headers['docker-content-digest'];
  if (header !== undefined && header !== '') assert.equal(header, digest);
}

interface IndexBody {
  manifests: Array<{ digest: string; annotations?: Record<string, string> }>;
}

function referrersOf(res: Answer): IndexBody {
  assert.equal(res.status, 200);
  assert.equal(res.headers['content-type'], 'application/vnd.oci.image.index.v1+json');
  return JSON.parse(res.body.toString()) as IndexBody;
}

function assertAnnotated(index: IndexBody): void {
  for (const m of index.manifests) {
    assert.equal(Object.keys(m.annotations ?? {}).length, 1, m.digest);
    assert.equal(m.annotations![ANNOTATION_KEY], content.annotationValues.get(m.digest), m.digest);
  }
}

function tagListOf(res: Answer): string[] {
  try {
    return (JSON.parse(res.body.toString()) as { tags?: string[] }).tags ?? [];
  } catch {
    return []; // the suite's getTagList: an unreadable body is an empty list
  }
}

describe('Pull', () => {
  // The suite's tag: testTagName, pushed by its setup; the bundle holds manifests[0] under it.
  const tag: string = TEST_TAG;

  describe('Pull blobs', () => {
    test('HEAD request to nonexistent blob should result in 404 response', async () => {
      const res = await send('HEAD', `/v2/${pullName()}/blobs/${DUMMY_DIGEST}`);
      assert.equal(res.status, 404);
    });

    test('HEAD request to existing blob should yield 200', async () => {
      const res = await send('HEAD', `/v2/${pullName()}/blobs/${content.configs[0]!.digest}`);
      assert.equal(res.status, 200);
      assertDigestIfPresent(res, content.configs[0]!.digest);
    });

    test('GET nonexistent blob should result in 404 response', async () => {
      const res = await send('GET', `/v2/${pullName()}/blobs/${DUMMY_DIGEST}`);
      assert.equal(res.status, 404);
    });

    test('GET request to existing blob URL should yield 200', async () => {
      const res = await send('GET', `/v2/${pullName()}/blobs/${content.configs[0]!.digest}`);
      assert.equal(res.status, 200);
    });
  });

  describe('Pull manifests', () => {
    test('HEAD request to nonexistent manifest should return 404', async () => {
      const res = await send('HEAD', `/v2/${pullName()}/manifests/${NONEXISTENT_MANIFEST}`);
      assert.equal(res.status, 404);
    });

    for (const i of [0, 1]) {
      test(`HEAD request to manifest[${i}] path (digest) should yield 200 response`, async () => {
        const res = await send('HEAD', `/v2/${pullName()}/manifests/${content.manifests[i]!.digest}`, { headers: OCI_MANIFEST });
        assert.equal(res.status, 200);
        assertDigestIfPresent(res, content.manifests[i]!.digest);
      });
    }

    test('HEAD request to manifest path (tag) should yield 200 response', async () => {
      assert.ok(tag !== '');
      const res = await send('HEAD', `/v2/${pullName()}/manifests/${tag}`, { headers: OCI_MANIFEST });
      assert.equal(res.status, 200);
      assertDigestIfPresent(res, content.manifests[0]!.digest);
    });

    test('GET nonexistent manifest should return 404', async () => {
      const res = await send('GET', `/v2/${pullName()}/manifests/${NONEXISTENT_MANIFEST}`);
      assert.equal(res.status, 404);
    });

    for (const i of [0, 1]) {
      test(`GET request to manifest[${i}] path (digest) should yield 200 response`, async () => {
        const res = await send('GET', `/v2/${pullName()}/manifests/${content.manifests[i]!.digest}`, { headers: OCI_MANIFEST });
        assert.equal(res.status, 200);
      });
    }

    test('GET request to manifest path (tag) should yield 200 response', async () => {
      assert.ok(tag !== '');
      const res = await send('GET', `/v2/${pullName()}/manifests/${tag}`, { headers: OCI_MANIFEST });
      assert.equal(res.status, 200);
    });
  });

  describe('Error codes', () => {
    test('400 response body should contain OCI-conforming JSON message', async () => {
      const res = await send('GET', `/v2/${pullName()}/manifests/sha256:totallywrong`, {
        headers: { 'Content-Type': MediaType.ociManifest },
        body: Buffer.from('blablabla'),
      });
      assert.ok(res.status === 400 || res.status === 404, String(res.status));
      if (res.status === 400) {
        const errors = (JSON.parse(res.body.toString()) as { errors: Array<{ code: string }> }).errors;
        assert.ok(errors.length > 0);
        assert.ok(ERROR_CODES.includes(errors[0]!.code), errors[0]!.code);
      }
    });
  });

  describe('Teardown', () => {
    // OCI_DELETE_MANIFEST_BEFORE_BLOBS defaults to true: manifests first, then blobs.
    for (const i of [0, 1]) {
      test(`Delete manifest[${i}] created in setup`, async () => {
        const res = await send('DELETE', `/v2/${pullName()}/manifests/${content.manifests[i]!.digest}`);
        assertDeleteAccepted(res, [405], `manifest[${i}]`);
      });
    }

    for (const i of [0, 1]) {
      test(`Delete config[${i}] blob created in setup`, async () => {
        const res = await send('DELETE', `/v2/${pullName()}/blobs/${content.configs[i]!.digest}`);
        assertDeleteAccepted(res, [404, 405], `config[${i}]`);
      });
    }

    test('Delete layer blob created in setup', async () => {
      const res = await send('DELETE', `/v2/${pullName()}/blobs/${content.layer.digest}`);
      assertDeleteAccepted(res, [404, 405], 'layer');
    });
  });
});

describe('Content Discovery', () => {
  let numTags = 4;
  let tagList: string[] = [];

  describe('Test content discovery endpoints (listing tags)', () => {
    test('GET request to list tags should yield 200 response and be in sorted order', async () => {
      const res = await send('GET', `/v2/${discoveryName()}/tags/list`);
      assert.equal(res.status, 200);
      tagList = tagListOf(res);
      numTags = tagList.length;
      // Lexical (case-insensitive) order, or plain byte order, which the suite also accepts.
      const lexical = [...tagList].sort((a, b) => (a.toLowerCase() < b.toLowerCase() ? -1 : a.toLowerCase() > b.toLowerCase() ? 1 : 0));
      const bytewise = [...tagList].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      assert.ok(JSON.stringify(tagList) === JSON.stringify(lexical) || JSON.stringify(tagList) === JSON.stringify(bytewise), tagList.join(','));
      // Not the suite's check, but what makes the ones below meaningful: every pushed tag is listed.
      assert.deepEqual([...tagList].sort(), [...content.discoveryTags, TEST_TAG].sort());
    });

    test('GET number of tags should be limitable by `n` query parameter', async () => {
      const numResults = Math.trunc(numTags / 2);
      const res = await send('GET', `/v2/${discoveryName()}/tags/list?n=${numResults}`);
      assert.equal(res.status, 200);
      tagList = tagListOf(res);
      assert.equal(tagList.length, numResults);
    });

    test('GET start of tag is set by `last` query parameter', async () => {
      const numResults = Math.trunc(numTags / 2);
      let res = await send('GET', `/v2/${discoveryName()}/tags/list?n=${numResults}`);
      assert.equal(res.status, 200);
      tagList = tagListOf(res);
      const last = tagList[numResults - 1]!;
      res = await send('GET', `/v2/${discoveryName()}/tags/list?n=${numResults}&last=${encodeURIComponent(last)}`);
      assert.equal(res.status, 200);
      tagList = tagListOf(res);
      assert.ok(tagList.length <= numResults);
      assert.ok(!tagList.includes(last));
    });
  });

  describe('Test content discovery endpoints (listing references)', () => {
    test('GET request to nonexistent blob should result in empty 200 response', async () => {
      const index = referrersOf(await send('GET', `/v2/${discoveryName()}/referrers/${DUMMY_DIGEST}`));
      assert.equal(index.manifests.length, 0);
    });

    test('GET request to existing blob should yield 200', async () => {
      const index = referrersOf(await send('GET', `/v2/${discoveryName()}/referrers/${content.manifests[4]!.digest}`));
      assert.equal(index.manifests.length, 5);
      assert.notEqual(index.manifests[0]!.digest, index.manifests[1]!.digest);
      assertAnnotated(index);
    });

    test('GET request to existing blob with filter should yield 200', async () => {
      const res = await send('GET', `/v2/${discoveryName()}/referrers/${content.manifests[4]!.digest}?artifactType=${encodeURIComponent(ARTIFACT_TYPE_A)}`);
      const index = referrersOf(res);
      // The suite accepts an unfiltered answer (with a warning); ours filters, so the header must be there.
      assert.equal(res.headers['oci-filters-applied'], 'artifactType');
      assert.equal(index.manifests.length, 2);
      assertAnnotated(index);
    });

    test('GET request to missing manifest should yield 200', async () => {
      const index = referrersOf(await send('GET', `/v2/${discoveryName()}/referrers/${content.manifests[3]!.digest}`));
      assert.equal(index.manifests.length, 1);
      assert.equal(index.manifests[0]!.digest, content.refsManifestCLayer.digest);
    });
  });

  describe('Teardown', () => {
    const deleteAll = async (targets: readonly string[]) => {
      for (const target of targets) assertDeleteAccepted(await send('DELETE', `/v2/${discoveryName()}/${target}`), [404, 405], target);
    };

    test('Delete created manifest & associated tags', async () => {
      const c = content;
      await deleteAll([c.refsIndex, c.manifests[2]!, c.manifests[4]!, c.refsManifestAConfig, c.refsManifestALayer, c.refsManifestBConfig, c.refsManifestBLayer, c.refsManifestCLayer].map((m) => `manifests/${m.digest}`));
    });

    test('Delete config blob created in tests', async () => {
      await deleteAll([`blobs/${content.configs[2]!.digest}`]);
    });

    test('Delete layer blob created in setup', async () => {
      await deleteAll([`blobs/${content.layer.digest}`]);
    });

    test('References teardown', async () => {
      const c = content;
      await deleteAll([
        ...[c.refsIndex, c.refsManifestAConfig, c.refsManifestALayer, c.manifests[4]!, c.refsManifestBConfig, c.refsManifestBLayer].map((m) => `manifests/${m.digest}`),
        ...[c.configs[4]!, c.refBlobA, c.refBlobB, c.emptyJson].map((b) => `blobs/${b.digest}`),
      ]);
    });
  });
});
