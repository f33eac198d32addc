// The content the OCI distribution-spec conformance suite pushes before its Pull and Content Discovery
// checks, built the way its setup.go builds it (opencontainers/distribution-spec conformance/ at 13a5d3e,
// the last version with 01_pull_test.go and 03_discovery_test.go): per-workflow image configs with a
// random author, the suite's gzip layer, OCI manifests whose descriptors carry `data` and an unspecified
// field, the empty JSON blob, artifact manifests and an artifact index with a subject and one annotation,
// and one referrer whose subject was never pushed. Our mirror is read-only, so instead of pushing, the
// same pieces are written into a bundle (real planner types, real bundle writer) as images of two
// repositories: the Pull workflow's and the Content Discovery workflow's (the suite runs each against its
// own OCI_NAMESPACE; in one namespace its Pull teardown would have deleted the tag Discovery re-pushes).

import { randomInt } from 'node:crypto';
import type { Digest } from '../../src/oci/digest.js';
import { sha256Of } from '../../src/oci/digest.js';
import { MediaType } from '../../src/oci/media-types.js';
import type { Repository } from '../../src/oci/reference.js';
import type { PlannedBlob, PlannedImage } from '../../src/plan/plan.js';
import { plannedBlob, type TestImage } from './bundle-plans.js';

/** setup.go's layerBase64String: a tar.gz of one test.txt. */
const LAYER_BASE64 =
  'H4sIAAAAAAAAA+3OQQrCMBCF4a49xXgBSUnaHMCTRBptQRNpp6i3t0UEV7oqIv7fYgbmzeJpHHSjVy0' +
  'WZCa1c/MufWVe94N3RWlrZ72x3k/30nhbFWKWLPU0Dhp6keJ8im//PuU/6pZH2WVtYx8b0Sz7LjWSR5VLG6YRBumSzOlGtjkd+qD' +
  'jMWiX07Befbs7AAAAAAAAAAAAAAAAAPyzO34MnqoAKAAA';

export const ANNOTATION_KEY = 'org.opencontainers.conformance.test';
export const ARTIFACT_TYPE_A = 'application/vnd.nhl.peanut.butter.bagel';
export const ARTIFACT_TYPE_B = 'application/vnd.nba.strawberry.jam.croissant';
export const ARTIFACT_TYPE_INDEX = 'application/vnd.food.stand';
/** setup.go's testTagName. */
export const TEST_TAG = 'tagtest0';
/** setup.go's nonexistentManifest: not even a valid tag, and the suite requires 404 for it. */
export const NONEXISTENT_MANIFEST = '.INVALID_MANIFEST_NAME';
/** setup.go's dummyDigest: godigest.FromString("hello world"). */
export const DUMMY_DIGEST = sha256Of('hello world');
/** setup.go's errorCodes: the codes a 400 body may carry. */
export const ERROR_CODES = [
  'BLOB_UNKNOWN', 'BLOB_UPLOAD_INVALID', 'BLOB_UPLOAD_UNKNOWN', 'DIGEST_INVALID', 'MANIFEST_BLOB_UNKNOWN', 'MANIFEST_INVALID',
  'MANIFEST_UNKNOWN', 'MANIFEST_UNVERIFIED', 'NAME_INVALID', 'NAME_UNKNOWN', 'SIZE_INVALID', 'TAG_INVALID', 'UNAUTHORIZED', 'DENIED', 'UNSUPPORTED',
];

export interface Piece {
  readonly bytes: Buffer;
  readonly digest: Digest;
  readonly mediaType: string;
}

function piece(bytes: Buffer, mediaType: string): Piece {
  return { bytes, digest: sha256Of(bytes), mediaType };
}

/** Go's json.MarshalIndent(v, "", "\t"): the same layout (field order is the struct's, kept by the literals). */
function marshalIndent(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value, null, '\t'));
}

/** setup.go's descriptor: mediaType, digest, size, then optional fields, and newUnspecifiedField always (null when unset). */
function descriptor(p: Piece, extra: { data?: Buffer; newUnspecifiedField?: Buffer } = {}): Record<string, unknown> {
  return {
    mediaType: p.mediaType,
    digest: p.digest,
    size: p.bytes.length,
    ...(extra.data ? { data: extra.data.toString('base64') } : {}),
    newUnspecifiedField: extra.newUnspecifiedField ? extra.newUnspecifiedField.toString('base64') : null,
  };
}

/** setup.go's randomString: 16 of [0-9A-Za-z-], so every run has configs (and manifests) of its own. */
function randomAuthor(): string {
  const letters = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-';
  return Array.from({ length: 16 }, () => letters[randomInt(letters.length)]).join('');
}

export interface ConformanceContent {
  readonly pullRepository: Repository;
  readonly discoveryRepository: Repository;
  /** configs[0…4] and manifests[0…4] of setup.go (it makes one per workflow bit; these are the ones used). */
  readonly configs: readonly Piece[];
  readonly manifests: readonly Piece[];
  readonly layer: Piece;
  readonly emptyJson: Piece;
  readonly refBlobA: Piece;
  readonly refBlobB: Piece;
  readonly refsManifestAConfig: Piece;
  readonly refsManifestALayer: Piece;
  readonly refsManifestBConfig: Piece;
  readonly refsManifestBLayer: Piece;
  /** Its subject, manifests[3], is never pushed. */
  readonly refsManifestCLayer: Piece;
  readonly refsIndex: Piece;
  /** The tags Discovery's setup pushes for manifests[2]: test0…3 and TEST0…3. */
  readonly discoveryTags: readonly string[];
  /** Referrer digest → its annotation value (setup.go's testAnnotationValues). */
  readonly annotationValues: ReadonlyMap<string, string>;
  /** The images a bundle of this content holds, for buildTinyBundle. */
  readonly images: readonly TestImage[];
}

export function conformanceContent(domain = 'registry.example.com'): ConformanceContent {
  const pullRepository = { domain, path: 'conformance/pull' };
  const discoveryRepository = { domain, path: 'conformance/discovery' };
  const configs = Array.from({ length: 5 }, () =>
    piece(marshalIndent({ author: randomAuthor(), architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }), MediaType.ociConfig),
  );
  const layer = piece(Buffer.from(LAYER_BASE64, 'base64'), MediaType.ociLayerGzip);
  const manifests = configs.map((config) =>
    piece(
      marshalIndent({
        schemaVersion: 2,
        mediaType: MediaType.ociManifest,
        config: descriptor(config, { data: config.bytes, newUnspecifiedField: Buffer.from('hello world') }),
        layers: [descriptor(layer)],
      }),
      MediaType.ociManifest,
    ),
  );
  const emptyJson = piece(Buffer.from('{}'), MediaType.ociEmpty);
  const refBlobA = piece(Buffer.from('NHL Peanut Butter on my NHL bagel'), ARTIFACT_TYPE_A);
  const refBlobB = piece(Buffer.from('NBA Strawberry Jam on my NBA croissant'), ARTIFACT_TYPE_B);
  const subjectOf = (m: Piece) => ({ mediaType: MediaType.ociManifest, digest: m.digest, size: m.bytes.length, newUnspecifiedField: null });
  const annotationValues = new Map<string, string>();
  const artifact = (fields: { artifactType?: string; config: Piece; layer: Piece; subject: Piece; annotation?: string }): Piece => {
    const p = piece(
      marshalIndent({
        schemaVersion: 2,
        mediaType: MediaType.ociManifest,
        ...(fields.artifactType ? { artifactType: fields.artifactType } : {}),
        config: descriptor(fields.config),
        layers: [descriptor(fields.layer)],
        subject: subjectOf(fields.subject),
        ...(fields.annotation ? { annotations: { [ANNOTATION_KEY]: fields.annotation } } : {}),
      }),
      MediaType.ociManifest,
    );
    if (fields.annotation) annotationValues.set(p.digest, fields.annotation);
    return p;
  };
  // config.mediaType = artifact type (A, B); artifactType with an empty JSON config (A, B, and C on a subject never pushed).
  const refsManifestAConfig = artifact({ config: refBlobA, layer: emptyJson, subject: manifests[4]!, annotation: 'test config a' });
  const refsManifestBConfig = artifact({ config: refBlobB, layer: emptyJson, subject: manifests[4]!, annotation: 'test config b' });
  const refsManifestALayer = artifact({ artifactType: ARTIFACT_TYPE_A, config: emptyJson, layer: refBlobA, subject: manifests[4]!, annotation: 'test layer a' });
  const refsManifestBLayer = artifact({ artifactType: ARTIFACT_TYPE_B, config: emptyJson, layer: refBlobB, subject: manifests[4]!, annotation: 'test layer b' });
  const refsManifestCLayer = artifact({ artifactType: ARTIFACT_TYPE_B, config: emptyJson, layer: refBlobB, subject: manifests[3]! });
  const refsIndex = piece(
    marshalIndent({
      schemaVersion: 2,
      mediaType: MediaType.ociIndex,
      artifactType: ARTIFACT_TYPE_INDEX,
      manifests: [descriptor(refsManifestAConfig), descriptor(refsManifestALayer)],
      subject: subjectOf(manifests[4]!),
      annotations: { [ANNOTATION_KEY]: 'test index' },
    }),
    MediaType.ociIndex,
  );
  annotationValues.set(refsIndex.digest, 'test index');
  const discoveryTags = [0, 1, 2, 3].flatMap((i) => [`test${i}`, `TEST${i}`]);

  const pull = (m: Piece, blobs: Piece[], tag?: string) => image(pullRepository, m, blobs, tag);
  const discovery = (m: Piece, blobs: Piece[], tag?: string, children: Piece[] = []) => image(discoveryRepository, m, blobs, tag, children);
  const images: TestImage[] = [
    // 01_pull_test.go's setup: configs[0], configs[1], the layer; manifests[0] by tag, manifests[1] by digest.
    pull(manifests[0]!, [configs[0]!, layer], TEST_TAG),
    pull(manifests[1]!, [configs[1]!, layer]),
    // 03_discovery_test.go's setup: manifests[2] under eight tags; the references; manifests[4] by tag.
    ...discoveryTags.map((tag) => discovery(manifests[2]!, [configs[2]!, layer], tag)),
    discovery(refsManifestAConfig, [refBlobA, emptyJson]),
    discovery(refsManifestALayer, [emptyJson, refBlobA]),
    discovery(refsIndex, [refBlobA, emptyJson], undefined, [refsManifestAConfig, refsManifestALayer]),
    discovery(manifests[4]!, [configs[4]!, layer], TEST_TAG),
    discovery(refsManifestBConfig, [refBlobB, emptyJson]),
    discovery(refsManifestBLayer, [emptyJson, refBlobB]),
    discovery(refsManifestCLayer, [emptyJson, refBlobB]),
  ];
  return {
    pullRepository, discoveryRepository, configs, manifests, layer, emptyJson, refBlobA, refBlobB,
    refsManifestAConfig, refsManifestALayer, refsManifestBConfig, refsManifestBLayer, refsManifestCLayer, refsIndex,
    discoveryTags, annotationValues, images,
  };
}

/** One planned image: its top manifest (and an index's children), config and layer blobs, maybe a tag. */
function image(repo: Repository, top: Piece, blobs: readonly Piece[], tag: string | undefined, children: readonly Piece[] = []): TestImage {
  const name = `${repo.domain}/${repo.path}`;
  const manifestBlobs = [top, ...children].map((m) => plannedBlob(m.bytes, m.mediaType, 'manifest', repo, m.bytes.length));
  const otherBlobs: PlannedBlob[] = blobs.map((b, i) => plannedBlob(b.bytes, b.mediaType, i === 0 && children.length === 0 ? 'config' : 'layer', repo, b.bytes.length));
  const planned: PlannedImage = {
    reference: { ...repo, digest: top.digest },
    requestedAs: tag !== undefined ? `${name}:${tag}` : `${name}@${top.digest}`,
    ...(tag !== undefined ? { tag } : {}),
    origin: 'extra',
    mediaType: top.mediaType,
    platforms: [{ os: 'linux', architecture: 'amd64' }],
    manifests: [top.digest, ...children.map((c) => c.digest)],
    blobs: [...new Set(blobs.map((b) => b.digest))],
  };
  return { image: planned, blobs: [...manifestBlobs, ...otherBlobs] };
}
