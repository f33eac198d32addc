// RegistryClient against a real docker-registry: manifests by tag and digest (Docker schema2, OCI, index),
// verified and resumed blob streams, error codes, registries.conf mirrors, and the bearer token flow.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { DigestMismatchError, sha256Of, type Digest } from '../../src/oci/digest.js';
import { MediaType } from '../../src/oci/media-types.js';
import { parseReference } from '../../src/oci/reference.js';
import { RegistryClient, type RegistryClientOptions } from '../../src/registry/client.js';
import { DEFAULT_RETRY_POLICY, retryRequest } from '../../src/registry/retry.js';
import { loadCredentials } from '../../src/registry/credentials.js';
import { credentialHelperOnPath, HELPER_NAME } from '../support/credential-helper.js';
import { createImageSource } from '../../src/registry/index.js';
import { parseRegistriesConf } from '../../src/registry/registries-conf.js';
import { UserError } from '../../src/util/errors.js';
import { startDockerRegistry, type RunningRegistry } from '../support/docker-registry.js';
import { freePort } from '../support/ports.js';
import { faultTimes, startRegistryProxy, type RunningProxy } from '../support/registry-proxy.js';
import { PASSWORD, startTokenRegistry, USER, type TokenRegistry, type TokenServer } from '../support/token-server.js';

const run = promisify(execFile);
const FAST_RETRIES: RegistryClientOptions['retries'] = { attempts: 3, baseDelayMs: 1, maxDelayMs: 5, maxRetryAfterMs: 50 };

// ---- pushing a small image with raw HTTP ----

interface Blob {
  readonly digest: Digest;
  readonly size: number;
  readonly bytes: Buffer;
}

function blobOf(bytes: Buffer): Blob {
  return { digest: sha256Of(bytes), size: bytes.length, bytes };
}

async function pushBlob(registryUrl: string, repo: string, blob: Blob, authorization?: string): Promise<void> {
  const auth: Record<string, string> = authorization ? { authorization } : {};
  const start = await fetch(`${registryUrl}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers: auth });
  assert.equal(start.status, 202, `upload start: ${await start.text()}`);
  const location = new URL(start.headers.get('location')!, registryUrl);
  location.searchParams.set('digest', blob.digest);
  const put = await fetch(location, { method: 'PUT', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: blob.bytes });
  assert.equal(put.status, 201, `upload finish: ${await put.text()}`);
}

async function pushManifest(registryUrl: string, repo: string, tag: string, mediaType: string, bytes: Buffer, authorization?: string): Promise<Digest> {
  const res = await fetch(`${registryUrl}/v2/${repo}/manifests/${tag}`, {
    method: 'PUT',
    headers: { 'content-type': mediaType, ...(authorization ? { authorization } : {}) },
    body: bytes,
  });
  assert.equal(res.status, 201, `manifest push: ${await res.text()}`);
  return sha256Of(bytes);
}

interface PushedImage {
  readonly config: Blob;
  readonly layer: Blob;
  readonly docker: { bytes: Buffer; digest: Digest };
  readonly oci: { bytes: Buffer; digest: Digest };
  readonly index: { bytes: Buffer; digest: Digest };
}

/** A config, one ~1.5 MiB layer, a Docker schema2 manifest, an OCI manifest and an OCI index over both. */
async function pushTestImage(registryUrl: string, repo: string, authorization?: string): Promise<PushedImage> {
  const config = blobOf(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, config: {} })));
  const layer = blobOf(randomBytes(1536 * 1024));
  await pushBlob(registryUrl, repo, config, authorization);
  await pushBlob(registryUrl, repo, layer, authorization);
  const dockerBytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.dockerManifest,
      config: { mediaType: MediaType.dockerConfig, digest: config.digest, size: config.size },
      layers: [{ mediaType: MediaType.dockerLayerGzip, digest: layer.digest, size: layer.size }],
    }),
  );
  const ociBytes = Buffer.from(
    JSON.stringify(
      {
        schemaVersion: 2,
        mediaType: MediaType.ociManifest,
        config: { mediaType: MediaType.ociConfig, digest: config.digest, size: config.size },
        layers: [{ mediaType: MediaType.ociLayerGzip, digest: layer.digest, size: layer.size }],
      },
      null,
      2, // pretty-printed on purpose: digests are over the exact bytes
    ),
  );
  const docker = { bytes: dockerBytes, digest: await pushManifest(registryUrl, repo, 'docker', MediaType.dockerManifest, dockerBytes, authorization) };
  const oci = { bytes: ociBytes, digest: await pushManifest(registryUrl, repo, 'oci', MediaType.ociManifest, ociBytes, authorization) };
  const indexBytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociIndex,
      manifests: [
        { mediaType: MediaType.ociManifest, digest: oci.digest, size: oci.bytes.length, platform: { os: 'linux', architecture: 'amd64' } },
        { mediaType: MediaType.dockerManifest, digest: docker.digest, size: docker.bytes.length, platform: { os: 'linux', architecture: 'arm64' } },
      ],
    }),
  );
  const index = { bytes: indexBytes, digest: await pushManifest(registryUrl, repo, 'index', MediaType.ociIndex, indexBytes, authorization) };
  return { config, layer, docker, oci, index };
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function isUserErrorWith(code: string, ...mentions: string[]): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof UserError, `expected a UserError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    for (const m of mentions) assert.ok(err.message.includes(m), `"${err.message}" should mention "${m}"`);
    return true;
  };
}

// ---- an open registry behind the recording proxy ----

describe('RegistryClient against docker-registry', () => {
  const REPO = 'pin-preload/app';
  let registry: RunningRegistry;
  let proxy: RunningProxy;
  let image: PushedImage;
  let client: RegistryClient;

  before(async () => {
    registry = await startDockerRegistry();
    image = await pushTestImage(registry.url, REPO);
    proxy = await startRegistryProxy(registry.url);
    client = new RegistryClient({ retries: FAST_RETRIES });
  });
  after(async () => {
    await client?.close();
    await proxy?.stop();
    await registry?.stop();
  });

  const ref = (suffix: string) => parseReference(`${proxy.host}/${REPO}${suffix}`);

  test('fetches a Docker schema2 manifest by tag: exact bytes, media type and digest', async () => {
    const m = await client.getManifest(ref(':docker'));
    assert.deepEqual(m.bytes, image.docker.bytes);
    assert.equal(m.mediaType, MediaType.dockerManifest);
    assert.equal(m.digest, image.docker.digest);
  });

  test('fetches an OCI manifest and an OCI index by tag with their own media types', async () => {
    const oci = await client.getManifest(ref(':oci'));
    assert.deepEqual(oci.bytes, image.oci.bytes);
    assert.equal(oci.mediaType, MediaType.ociManifest);
    const index = await client.getManifest(ref(':index'));
    assert.equal(index.mediaType, MediaType.ociIndex);
    assert.equal(index.digest, image.index.digest);
  });

  test('fetches a manifest by digest and checks the bytes against it', async () => {
    const m = await client.getManifest(ref(`@${image.oci.digest}`));
    assert.deepEqual(m.bytes, image.oci.bytes);
    assert.equal(m.digest, image.oci.digest);
  });

  test('HEAD of a manifest and a blob report digest and size', async () => {
    const head = await client.headManifest(ref(':docker'));
    assert.equal(head.digest, image.docker.digest);
    assert.equal(head.size, image.docker.bytes.length);
    assert.deepEqual(await client.headBlob(ref(''), image.layer.digest), { size: image.layer.size });
  });

  test('streams a blob whose bytes hash to its digest', async () => {
    const bytes = await collect(client.blobStream(ref(''), image.layer));
    assert.ok(bytes.equals(image.layer.bytes));
  });

  test('streams a blob from an offset with the caller\'s prefix hash', async () => {
    const offset = 100_000;
    const prefixHash = createHash('sha256').update(image.layer.bytes.subarray(0, offset));
    const rest = await collect(client.blobStream(ref(''), image.layer, { offset, prefixHash }));
    assert.ok(rest.equals(image.layer.bytes.subarray(offset)));
    const last = proxy.requests.filter((r) => r.path.endsWith(image.layer.digest)).at(-1);
    assert.equal(last?.range, `bytes=${offset}-`);
  });

  test('resumes a blob with a Range request after the connection is reset mid-body', async () => {
    const before = proxy.countBlobGets(image.layer.digest);
    proxy.setFault(faultTimes((r) => r.method === 'GET' && r.path.endsWith(image.layer.digest), { kind: 'reset-after-bytes', bytes: 300_000 }));
    try {
      const bytes = await collect(client.blobStream(ref(''), image.layer));
      assert.ok(bytes.equals(image.layer.bytes));
    } finally {
      proxy.setFault(undefined);
    }
    const gets = proxy.requests.filter((r) => r.method === 'GET' && r.path.endsWith(image.layer.digest)).slice(-2);
    assert.equal(proxy.countBlobGets(image.layer.digest) - before, 2);
    assert.equal(gets[0]?.fault, 'reset-after-bytes');
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(gets[1]?.range ?? '')?.[1]);
    assert.ok(resumedAt >= 300_000 && resumedAt < image.layer.size, `resumed at ${gets[1]?.range}`);
  });

  test('resumes a body that ends cleanly but short', async () => {
    proxy.setFault(faultTimes((r) => r.method === 'GET' && r.path.endsWith(image.layer.digest), { kind: 'truncate', bytes: 500_000 }));
    try {
      const bytes = await collect(client.blobStream(ref(''), image.layer));
      assert.ok(bytes.equals(image.layer.bytes));
    } finally {
      proxy.setFault(undefined);
    }
    assert.equal(proxy.requests.at(-1)?.range, 'bytes=500000-');
  });

  test('a corrupted byte makes the stream fail with DigestMismatchError, never end', async () => {
    proxy.setFault(faultTimes((r) => r.method === 'GET' && r.path.endsWith(image.layer.digest), { kind: 'corrupt-byte', offset: 12345 }));
    try {
      await assert.rejects(collect(client.blobStream(ref(''), image.layer)), DigestMismatchError);
    } finally {
      proxy.setFault(undefined);
    }
  });

  test('retries a 503 with Retry-After and then succeeds', async () => {
    const before = proxy.requests.length;
    proxy.setFault(faultTimes((r) => r.path.includes('/manifests/'), { kind: 'status', status: 503, headers: { 'retry-after': '0' } }, 2));
    try {
      const m = await client.getManifest(ref(':docker'));
      assert.equal(m.digest, image.docker.digest);
    } finally {
      proxy.setFault(undefined);
    }
    assert.deepEqual(proxy.requests.slice(before).map((r) => r.status), [503, 503, 200]);
  });

  test('fetches a manifest again when the connection breaks mid-body', async () => {
    const before = proxy.requests.length;
    proxy.setFault(faultTimes((r) => r.path.includes('/manifests/'), { kind: 'reset-after-bytes', bytes: 40 }));
    try {
      const m = await client.getManifest(ref(':oci'));
      assert.deepEqual(m.bytes, image.oci.bytes);
    } finally {
      proxy.setFault(undefined);
    }
    assert.deepEqual(proxy.requests.slice(before).map((r) => r.fault ?? 'none'), ['reset-after-bytes', 'none']);
  });

  test('a status that stays 503 becomes REGISTRY_ERROR with the registry\'s error code', async () => {
    proxy.setFault((r) => (r.path.includes('/manifests/') ? { kind: 'status', status: 503, body: '{"errors":[{"code":"UNAVAILABLE","message":"try later"}]}' } : undefined));
    try {
      await assert.rejects(client.getManifest(ref(':docker')), isUserErrorWith('REGISTRY_ERROR', '503', 'UNAVAILABLE', 'try later'));
    } finally {
      proxy.setFault(undefined);
    }
  });

  test('a status that is never retried is asked once; an overload status is asked as many times as the policy allows', async () => {
    let before = proxy.requests.length;
    await assert.rejects(client.getManifest(ref(':no-such-tag')), isUserErrorWith('MANIFEST_UNKNOWN'));
    assert.deepEqual(proxy.requests.slice(before).map((r) => r.status), [404]);
    before = proxy.requests.length;
    proxy.setFault((r) => (r.path.includes('/manifests/') ? { kind: 'status', status: 502 } : undefined));
    try {
      await assert.rejects(client.getManifest(ref(':docker')), isUserErrorWith('REGISTRY_ERROR', '502', `after ${FAST_RETRIES!.attempts} tries`));
    } finally {
      proxy.setFault(undefined);
    }
    assert.deepEqual(proxy.requests.slice(before).map((r) => r.status), [502, 502, 502]);
  });

  test('the wait before a retry is the Retry-After the registry sent, and backoff below the cap without one', async () => {
    const slept: number[] = [];
    const recording = new RegistryClient({ retries: { ...FAST_RETRIES, maxRetryAfterMs: 60_000, sleep: async (ms) => void slept.push(ms) } });
    proxy.setFault(faultTimes((r) => r.path.includes('/manifests/'), { kind: 'status', status: 429, headers: { 'retry-after': '2' } }));
    try {
      assert.equal((await recording.getManifest(ref(':docker'))).digest, image.docker.digest);
      proxy.setFault(faultTimes((r) => r.method === 'GET' && r.path.endsWith(image.layer.digest), { kind: 'status', status: 500 }));
      assert.ok((await collect(recording.blobStream(ref(''), image.layer))).equals(image.layer.bytes));
    } finally {
      proxy.setFault(undefined);
      await recording.close();
    }
    assert.equal(slept.length, 2);
    assert.equal(slept[0], 2000);
    assert.ok(slept[1]! >= 0 && slept[1]! < FAST_RETRIES!.baseDelayMs!, `backoff ${slept[1]}`);
  });

  test('a blob body that keeps breaking without progress gives up after the bounded resumes with REGISTRY_UNREACHABLE', async () => {
    const bounded = new RegistryClient({ retries: FAST_RETRIES, maxBlobResumes: 2 });
    const before = proxy.countBlobGets(image.layer.digest);
    // The first GET breaks after 300 000 bytes; every resume breaks again before its first byte.
    proxy.setFault((r) => (r.method === 'GET' && r.path.endsWith(image.layer.digest) ? { kind: 'reset-after-bytes', bytes: r.range ? 0 : 300_000 } : undefined));
    try {
      await assert.rejects(collect(bounded.blobStream(ref(''), image.layer)), isUserErrorWith('REGISTRY_UNREACHABLE', image.layer.digest, 'kept breaking at byte 300000'));
    } finally {
      proxy.setFault(undefined);
      await bounded.close();
    }
    const gets = proxy.requests.filter((r) => r.method === 'GET' && r.path.endsWith(image.layer.digest)).slice(before);
    assert.equal(gets.length, 4, 'the first GET and three resumes without progress (maxBlobResumes 2, then one more gives up)');
    assert.ok(gets.slice(1).every((r) => r.range === 'bytes=300000-'), JSON.stringify(gets));
  });

  test('a blob body that keeps ending short without progress moves on, and with no other endpoint fails naming the byte', async () => {
    const bounded = new RegistryClient({ retries: FAST_RETRIES, maxBlobResumes: 1 });
    const before = proxy.countBlobGets(image.layer.digest);
    proxy.setFault((r) => (r.method === 'GET' && r.path.endsWith(image.layer.digest) ? { kind: 'truncate', bytes: r.range ? 0 : 500_000 } : undefined));
    try {
      await assert.rejects(collect(bounded.blobStream(ref(''), image.layer)), isUserErrorWith('REGISTRY_ERROR', image.layer.digest, `kept ending the body at byte 500000 of ${image.layer.size}`));
    } finally {
      proxy.setFault(undefined);
      await bounded.close();
    }
    const gets = proxy.requests.filter((r) => r.method === 'GET' && r.path.endsWith(image.layer.digest)).slice(before);
    assert.deepEqual(gets.map((r) => r.range ?? 'none'), ['none', 'bytes=500000-', 'bytes=500000-']);
  });

  test('a manifest that does not exist is MANIFEST_UNKNOWN naming the reference, also as its subject', async () => {
    await assert.rejects(client.getManifest(ref(':no-such-tag')), (err: unknown) => {
      isUserErrorWith('MANIFEST_UNKNOWN', `${proxy.host}/${REPO}:no-such-tag`)(err);
      assert.deepEqual((err as UserError).subject, { kind: 'image', name: `${proxy.host}/${REPO}:no-such-tag` });
      return true;
    });
  });

  test('a blob that does not exist is BLOB_UNKNOWN', async () => {
    const missing = blobOf(Buffer.from('not pushed'));
    await assert.rejects(collect(client.blobStream(ref(''), missing)), isUserErrorWith('BLOB_UNKNOWN', missing.digest));
  });

  test('a refused connection is REGISTRY_UNREACHABLE naming the host and ECONNREFUSED', async () => {
    const dead = `127.0.0.1:${await freePort()}`;
    await assert.rejects(client.getManifest(parseReference(`${dead}/${REPO}:docker`)), isUserErrorWith('REGISTRY_UNREACHABLE', dead, 'ECONNREFUSED'));
  });

  test('registries.conf mirrors are tried in order: a dead mirror, then the live one; the primary is not contacted', async () => {
    const dead = `127.0.0.1:${await freePort()}`;
    const deadPrimary = `127.0.0.1:${await freePort()}`;
    const conf = parseRegistriesConf(
      [
        '[[registry]]',
        'prefix = "registry.example.com/team"',
        `location = "${deadPrimary}/team"`,
        '[[registry.mirror]]',
        `location = "${dead}/pin-preload"`,
        'insecure = true',
        '[[registry.mirror]]',
        `location = "${proxy.host}/pin-preload"`,
        'insecure = true',
        'pull-from-mirror = "digest-only"',
      ].join('\n'),
      'test-registries.conf',
    );
    const mirrored = new RegistryClient({ registriesConf: conf, retries: FAST_RETRIES, loopbackIsInsecure: false });
    try {
      const before = proxy.requests.length;
      const m = await mirrored.getManifest(parseReference(`registry.example.com/team/app@${image.docker.digest}`));
      assert.deepEqual(m.bytes, image.docker.bytes);
      assert.ok(proxy.requests.slice(before).some((r) => r.path === `/v2/${REPO}/manifests/${image.docker.digest}` && r.status === 200));
      const layer = await collect(mirrored.blobStream(parseReference('registry.example.com/team/app'), image.layer));
      assert.ok(layer.equals(image.layer.bytes));
      // By tag the digest-only mirror is skipped: only the dead mirror and the dead primary are left.
      await assert.rejects(mirrored.getManifest(parseReference('registry.example.com/team/app:docker')), isUserErrorWith('REGISTRY_UNREACHABLE', dead, deadPrimary));
    } finally {
      await mirrored.close();
    }
  });

  test('a blocked registry is not contacted and without a usable mirror is REGISTRY_BLOCKED', async () => {
    const conf = parseRegistriesConf(
      ['[[registry]]', `location = "${proxy.host}/pin-preload"`, 'blocked = true'].join('\n'),
      'blocked.conf',
    );
    const blocked = new RegistryClient({ registriesConf: conf, retries: FAST_RETRIES });
    try {
      const before = proxy.requests.length;
      await assert.rejects(blocked.getManifest(ref(':docker')), isUserErrorWith('REGISTRY_BLOCKED', `${proxy.host}/${REPO}`));
      assert.equal(proxy.requests.length, before);
    } finally {
      await blocked.close();
    }
  });

  test('a reader that aborts or destroys a blob stream stops the download and frees the connection', async () => {
    const controller = new AbortController();
    const stream = client.blobStream(ref(''), image.layer, { signal: controller.signal });
    const aborted = new Error('stop now');
    await assert.rejects(
      (async () => {
        for await (const _chunk of stream) controller.abort(aborted);
      })(),
      (err: unknown) => err === aborted,
    );
    const destroyed = client.blobStream(ref(''), image.layer);
    await new Promise<void>((resolve) => destroyed.once('data', () => resolve()));
    destroyed.destroy();
    const m = await client.getManifest(ref(':docker'));
    assert.equal(m.digest, image.docker.digest);
  });

  test('TLS is verified: a self-signed registry is REGISTRY_UNREACHABLE unless insecure, then https is used', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-tls-'));
    let tlsProxy: RunningProxy | undefined;
    try {
      const key = path.join(dir, 'key.pem');
      const cert = path.join(dir, 'cert.pem');
      await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1']);
      tlsProxy = await startRegistryProxy(registry.url, { tls: { key: await readFile(key, 'utf8'), cert: await readFile(cert, 'utf8') } });
      const strict = new RegistryClient({ retries: FAST_RETRIES, loopbackIsInsecure: false });
      try {
        await assert.rejects(strict.getManifest(parseReference(`${tlsProxy.host}/${REPO}:docker`)), (err: unknown) => {
          isUserErrorWith('REGISTRY_UNREACHABLE', tlsProxy!.host)(err);
          assert.match((err as UserError).message, /CERT|SELF_SIGNED|TLS/);
          assert.match((err as UserError).hint ?? '', /insecure = true/);
          return true;
        });
      } finally {
        await strict.close();
      }
      assert.equal(tlsProxy.requests.length, 0);
      const conf = parseRegistriesConf(`[[registry]]\nlocation = "${tlsProxy.host}"\ninsecure = true\n`, 'tls.conf');
      const lenient = new RegistryClient({ registriesConf: conf, retries: FAST_RETRIES, loopbackIsInsecure: false });
      try {
        const m = await lenient.getManifest(parseReference(`${tlsProxy.host}/${REPO}:docker`));
        assert.equal(m.digest, image.docker.digest);
        assert.ok(tlsProxy.requests.some((r) => r.path === `/v2/${REPO}/manifests/docker` && r.status === 200));
      } finally {
        await lenient.close();
      }
    } finally {
      await tlsProxy?.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('createImageSource reads --registries-conf and --authfile', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-source-'));
    try {
      await writeFile(path.join(dir, 'r.conf'), `[[registry]]\nprefix = "mirror.test/x"\nlocation = "${proxy.host}/pin-preload"\ninsecure = true\n`);
      await writeFile(path.join(dir, 'auth.json'), '{"auths":{}}');
      const source = await createImageSource({ registriesConfFile: path.join(dir, 'r.conf'), authfile: path.join(dir, 'auth.json'), retries: FAST_RETRIES });
      try {
        const before = proxy.requests.length;
        const m = await source.getManifest(parseReference('mirror.test/x/app:oci'));
        assert.equal(m.digest, image.oci.digest);
        await source.getManifest(parseReference('mirror.test/x/app:docker'));
        // https was tried first (a TLS hello the plain-HTTP proxy cannot parse), then http was probed once and remembered.
        assert.deepEqual(proxy.requests.slice(before).map((r) => r.path), ['/v2/', `/v2/${REPO}/manifests/oci`, `/v2/${REPO}/manifests/docker`]);
      } finally {
        await source.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

// ---- bearer tokens: docker-registry with `auth: token` checking JWTs signed by our token server ----

describe('RegistryClient with bearer token auth (docker-registry auth: token)', () => {
  const REPO = 'secure/app';
  let dir: string;
  let tokens: TokenServer;
  let registry: RunningRegistry;
  let image: PushedImage;
  let authfile: string;

  let setup: TokenRegistry;

  before(async () => {
    setup = await startTokenRegistry();
    ({ dir, tokens, registry, authfile } = setup);
    const pushToken = `Bearer ${tokens.mint([{ name: REPO, actions: ['pull', 'push'] }])}`;
    image = await pushTestImage(registry.url, REPO, pushToken);
  });
  after(async () => {
    await setup?.stop();
  });

  test('the registry itself refuses requests without a token (the setup really checks tokens)', async () => {
    const res = await fetch(`${registry.url}/v2/${REPO}/manifests/docker`);
    assert.equal(res.status, 401);
    assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer realm=/);
  });

  test('without credentials: REGISTRY_UNAUTHORIZED naming registry and repository, with the --authfile hint', async () => {
    const client = new RegistryClient({ retries: FAST_RETRIES });
    try {
      await assert.rejects(client.getManifest(parseReference(`${registry.host}/${REPO}:docker`)), (err: unknown) => {
        isUserErrorWith('REGISTRY_UNAUTHORIZED', registry.host, REPO)(err);
        assert.match((err as UserError).hint ?? '', /--authfile FILE \(containers-auth.json format\) or REGISTRY_AUTH_FILE/);
        return true;
      });
    } finally {
      await client.close();
    }
  });

  test('with an authfile: manifests and blobs come through, and one token serves many requests', async () => {
    const client = new RegistryClient({ credentials: await loadCredentials({ authfile, env: {} }), retries: FAST_RETRIES });
    try {
      tokens.hits = 0;
      const results = await Promise.all([
        client.getManifest(parseReference(`${registry.host}/${REPO}:docker`)),
        client.getManifest(parseReference(`${registry.host}/${REPO}:oci`)),
        client.getManifest(parseReference(`${registry.host}/${REPO}@${image.index.digest}`)),
      ]);
      assert.deepEqual(results.map((m) => m.digest), [image.docker.digest, image.oci.digest, image.index.digest]);
      for (let i = 0; i < 5; i++) {
        const layer = await collect(client.blobStream(parseReference(`${registry.host}/${REPO}`), image.layer));
        assert.ok(layer.equals(image.layer.bytes));
      }
      assert.equal(tokens.hits, 1);
    } finally {
      await client.close();
    }
  });

  test('a cached token the registry refuses is dropped and replaced once', async () => {
    const client = new RegistryClient({ credentials: await loadCredentials({ authfile, env: {} }), retries: FAST_RETRIES });
    // distribution allows 60 s of clock skew past `exp`: this token is good for the registry for about
    // two more seconds, while our cache trusts expires_in (300 s).
    tokens.jwtLifetimeS = -58;
    try {
      tokens.hits = 0;
      await client.getManifest(parseReference(`${registry.host}/${REPO}:docker`));
      await new Promise((r) => setTimeout(r, 3100));
      const m = await client.getManifest(parseReference(`${registry.host}/${REPO}:oci`));
      assert.equal(m.digest, image.oci.digest);
      assert.equal(tokens.hits, 2);
    } finally {
      tokens.jwtLifetimeS = 300;
      await client.close();
    }
  });

  test('a blob redirected to another host is fetched there without the Authorization header', async () => {
    const seen: Array<string | undefined> = [];
    const storage = http.createServer((req, res) => {
      seen.push(req.headers.authorization);
      res.writeHead(200, { 'content-length': String(image.layer.size), 'content-type': 'application/octet-stream' });
      res.end(image.layer.bytes);
    });
    await new Promise<void>((resolve) => storage.listen(0, '127.0.0.1', () => resolve()));
    const storageUrl = `http://127.0.0.1:${(storage.address() as AddressInfo).port}/bucket/blob?signature=abc`;
    const front = await startRegistryProxy(registry.url, {
      fault: (r) => (r.method === 'GET' && r.path.includes('/blobs/') && r.headers.authorization !== undefined ? { kind: 'redirect', location: storageUrl } : undefined),
    });
    try {
      // Credentials are looked up by the endpoint's host: give the proxy's host the same entry.
      const creds = path.join(dir, 'front-auth.json');
      await writeFile(creds, JSON.stringify({ auths: { [front.host]: { auth: Buffer.from(`${USER}:${PASSWORD}`).toString('base64') } } }));
      const viaFront = new RegistryClient({ credentials: await loadCredentials({ authfile: creds, env: {} }), retries: FAST_RETRIES });
      try {
        const bytes = await collect(viaFront.blobStream(parseReference(`${front.host}/${REPO}`), image.layer));
        assert.ok(bytes.equals(image.layer.bytes));
      } finally {
        await viaFront.close();
      }
      assert.deepEqual(seen, [undefined]);
      assert.ok(front.requests.some((r) => r.status === 307), 'the registry side answered with a redirect');
    } finally {
      await front.stop();
      storage.closeAllConnections();
      await new Promise<void>((resolve) => storage.close(() => resolve()));
    }
  });

  test('credentials from a credHelpers helper (docker-credential-NAME on PATH) get a token and pull', async (t) => {
    const helper = await credentialHelperOnPath(t, dir, [[registry.host, USER, PASSWORD]]);
    const helperAuth = path.join(dir, 'helper-auth.json');
    await writeFile(helperAuth, JSON.stringify({ credHelpers: { [registry.host]: HELPER_NAME } }));
    const client = new RegistryClient({ credentials: await loadCredentials({ authfile: helperAuth, env: {} }), retries: FAST_RETRIES });
    try {
      const manifest = await client.getManifest(parseReference(`${registry.host}/${REPO}:docker`));
      assert.equal(manifest.digest, image.docker.digest);
      assert.deepEqual(await helper.calls(), [registry.host]);
    } finally {
      await client.close();
    }
  });

  test('a wrong password is REGISTRY_UNAUTHORIZED naming the credentials file', async () => {
    const wrong = path.join(dir, 'wrong-auth.json');
    await writeFile(wrong, JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from(`${USER}:nope`).toString('base64') } } }));
    const client = new RegistryClient({ credentials: await loadCredentials({ authfile: wrong, env: {} }), retries: FAST_RETRIES });
    try {
      await assert.rejects(client.getManifest(parseReference(`${registry.host}/${REPO}:docker`)), isUserErrorWith('REGISTRY_UNAUTHORIZED', registry.host, wrong));
    } finally {
      await client.close();
    }
  });
});

// ---- a server that sends a body with a HEAD response ----

/**
 * A raw HTTP/1.1 server on 127.0.0.1 that answers a HEAD with headers and then, on the same connection, the
 * body it should not send, just before its answer to the next request there (as a misbehaving proxy does).
 * Every other request gets 200 "ok". A TLS hello (the client's https probe) is refused at once.
 */
async function startStrayBodyServer(): Promise<{ port: number; connections: () => number; close: () => Promise<void> }> {
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    let received = '';
    let stray = '';
    socket.once('data', (first) => {
      if (first[0] === 0x16) socket.destroy(); // a TLS ClientHello
      else connections++;
    });
    socket.on('data', (bytes) => {
      received += bytes.toString('latin1');
      for (let end = received.indexOf('\r\n\r\n'); end >= 0; end = received.indexOf('\r\n\r\n')) {
        const method = received.slice(0, received.indexOf(' '));
        received = received.slice(end + 4);
        if (method === 'HEAD') {
          socket.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n');
          stray = 'stray';
        } else {
          socket.write(`${stray}HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok`);
          stray = '';
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    connections: () => connections,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('RegistryClient against a server that sends a body with a HEAD', () => {
  test('the request after a kept HEAD fails to parse once and succeeds through a retry on a fresh connection; later HEADs there close their connection', async () => {
    const server = await startStrayBodyServer();
    // One connection: the next request surely goes on the HEAD's (with more, undici picks one of them).
    const client = new RegistryClient({ retries: FAST_RETRIES, maxConcurrentRequests: 1 });
    const endpoint = { host: `127.0.0.1:${server.port}`, path: 'pin/app', insecure: true, mirror: false };
    const scope = 'repository:pin/app:pull,push';
    try {
      const head = await client.targetRequest(endpoint, { method: 'HEAD', path: '/v2/pin/app/blobs/sha256:00', headers: {}, keepAlive: true, scope });
      await head.body.dump();
      let tries = 0;
      // The loop a push step runs in (copy.ts): each try a single targetRequest, retried by the client's policy.
      const body = await retryRequest(async () => {
        tries++;
        const res = await client.targetRequest(endpoint, { method: 'GET', path: '/v2/pin/app/manifests/latest', headers: {}, scope });
        return await res.body.text();
      }, { ...DEFAULT_RETRY_POLICY, ...FAST_RETRIES }, undefined);
      assert.equal(body, 'ok');
      assert.equal(tries, 2, 'the first try fails on the garbled connection, the second succeeds');
      assert.ok(server.connections() >= 2, `a fresh connection for the retry (${server.connections()} connections)`);
      // Seen once, that origin's HEADs close their connection again: the next request after one needs no retry.
      const again = await client.targetRequest(endpoint, { method: 'HEAD', path: '/v2/pin/app/blobs/sha256:01', headers: {}, keepAlive: true, scope });
      await again.body.dump();
      const next = await client.targetRequest(endpoint, { method: 'GET', path: '/v2/pin/app/manifests/latest', headers: {}, scope });
      assert.equal(await next.body.text(), 'ok', 'the request after a later HEAD is not garbled');
    } finally {
      await client.close();
      await server.close();
    }
  });
});
