// Signatures and OCI 1.1 referrers built in their documented layouts (there is no cosign binary here) and
// pushed with raw HTTP into a registry: cosign's simple-signing manifest under `sha256-<hex>.sig`, and
// referrer manifests (subject + artifactType, empty config) listed in the `sha256-<hex>` fallback tag's index.

import assert from 'node:assert/strict';
import { sha256Of, type Digest } from '../../src/oci/digest.js';
import { MediaType } from '../../src/oci/media-types.js';
import { cosignSignatureTag, referrersFallbackTag } from '../../src/oci/referrers.js';

export const COSIGN_PAYLOAD_TYPE = 'application/vnd.dev.cosign.simplesigning.v1+json';
export const COSIGN_SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';
/** The OCI image spec's empty descriptor: the config of an artifact that has none. */
export const EMPTY_CONFIG = { mediaType: 'application/vnd.oci.empty.v1+json', bytes: Buffer.from('{}') } as const;

export interface PushedManifest {
  readonly digest: Digest;
  readonly bytes: Buffer;
  readonly mediaType: string;
}

export async function pushBlob(registryUrl: string, repo: string, bytes: Buffer): Promise<Digest> {
  const digest = sha256Of(bytes);
  const start = await fetch(`${registryUrl}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  assert.equal(start.status, 202, `upload start: ${await start.text()}`);
  const location = new URL(start.headers.get('location') ?? '', registryUrl);
  location.searchParams.set('digest', digest);
  const put = await fetch(location, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: bytes });
  assert.equal(put.status, 201, `upload finish: ${await put.text()}`);
  return digest;
}

/** PUTs a manifest under `reference` (a tag, or its own digest) and returns it as pushed. */
export async function pushManifest(registryUrl: string, repo: string, document: object, reference?: string): Promise<PushedManifest> {
  const bytes = Buffer.from(JSON.stringify(document));
  const mediaType = (document as { mediaType: string }).mediaType;
  const digest = sha256Of(bytes);
  const res = await fetch(`${registryUrl}/v2/${repo}/manifests/${reference ?? digest}`, { method: 'PUT', headers: { 'content-type': mediaType }, body: bytes });
  assert.equal(res.status, 201, `manifest push to ${repo}: ${await res.text()}`);
  return { digest, bytes, mediaType };
}

async function descriptorOf(registryUrl: string, repo: string, mediaType: string, bytes: Buffer): Promise<{ mediaType: string; digest: Digest; size: number }> {
  return { mediaType, digest: await pushBlob(registryUrl, repo, bytes), size: bytes.length };
}

/** A one-layer OCI image (not runnable; its bytes only matter) tagged `tag`. */
export async function pushSmallImage(registryUrl: string, repo: string, tag: string, seed: string): Promise<PushedManifest> {
  const config = await descriptorOf(registryUrl, repo, MediaType.ociConfig, Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, config: { Labels: { seed } } })));
  const layer = await descriptorOf(registryUrl, repo, 'application/vnd.oci.image.layer.v1.tar', Buffer.alloc(1024, seed));
  return pushManifest(registryUrl, repo, { schemaVersion: 2, mediaType: MediaType.ociManifest, config, layers: [layer] }, tag);
}

/** cosign's signature of `subject`: a simple-signing payload layer carrying the signature annotation, under the .sig tag. */
export async function pushCosignSignature(registryUrl: string, repo: string, dockerReference: string, subject: Digest): Promise<PushedManifest> {
  const payload = Buffer.from(JSON.stringify({ critical: { identity: { 'docker-reference': dockerReference }, image: { 'docker-manifest-digest': subject }, type: 'cosign container image signature' }, optional: null }));
  const layer = await descriptorOf(registryUrl, repo, COSIGN_PAYLOAD_TYPE, payload);
  const config = await descriptorOf(registryUrl, repo, MediaType.ociConfig, Buffer.from(JSON.stringify({ architecture: '', os: '', rootfs: { type: 'layers', diff_ids: [layer.digest] }, config: {} })));
  const signature = Buffer.from(`test signature over ${subject}`).toString('base64');
  const document = { schemaVersion: 2, mediaType: MediaType.ociManifest, config, layers: [{ ...layer, annotations: { [COSIGN_SIGNATURE_ANNOTATION]: signature } }] };
  return pushManifest(registryUrl, repo, document, cosignSignatureTag(subject));
}

/** An OCI 1.1 referrer of `subject` (pushed by digest): artifactType, empty config, one layer, annotations. */
export async function pushReferrer(registryUrl: string, repo: string, subject: PushedManifest, artifactType: string, content: string): Promise<PushedManifest> {
  const config = await descriptorOf(registryUrl, repo, EMPTY_CONFIG.mediaType, EMPTY_CONFIG.bytes);
  const layer = await descriptorOf(registryUrl, repo, 'application/json', Buffer.from(content));
  const document = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    artifactType,
    config,
    layers: [layer],
    subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.bytes.length },
    annotations: { 'org.opencontainers.image.created': '2026-11-30T00:00:00Z', 'io.pin-preload.test.content': content },
  };
  return pushManifest(registryUrl, repo, document);
}

/** The referrers fallback tag of `subject`: an index of the referrers' descriptors, as a client of a registry without the API writes it. */
export async function pushReferrersFallbackTag(registryUrl: string, repo: string, subject: Digest, referrers: readonly PushedManifest[]): Promise<PushedManifest> {
  const manifests = referrers.map((r) => {
    const doc = JSON.parse(r.bytes.toString('utf8')) as { artifactType?: string; annotations?: Record<string, string> };
    return { mediaType: r.mediaType, digest: r.digest, size: r.bytes.length, ...(doc.artifactType ? { artifactType: doc.artifactType } : {}), ...(doc.annotations ? { annotations: doc.annotations } : {}) };
  });
  return pushManifest(registryUrl, repo, { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests }, referrersFallbackTag(subject));
}
