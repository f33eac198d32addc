// containerd's own images API (containerd.services.images.v1.Images) on the CRI socket, in the CRI plugin's
// namespace: the image records behind the CRI's images and their labels. containerd ≥ 1.7's CRI reports an
// image `pinned` (and the kubelet's image GC skips it) when one of its records carries
// io.cri-containerd.pinned=pinned; this client lists the records naming a manifest digest and sets or removes
// that label, nothing else.

import * as grpc from '@grpc/grpc-js';
import { UserError } from '../util/errors.js';
import { criSocketPath } from './image-service.js';
import { loadProto, unaryCall, unixClient, waitForReady, type GrpcClient, type GrpcClientConstructor } from './grpc.js';

/** The label and value containerd's CRI plugin (pkg/cri/labels) reads as "pinned". */
export const PINNED_LABEL = 'io.cri-containerd.pinned';
export const PINNED_VALUE = 'pinned';
/** The namespace the CRI plugin keeps the kubelet's images in. */
const CRI_NAMESPACE = 'k8s.io';

const DEFAULT_TIMEOUT_MS = 30_000;
/** Filters per List call: containerd ORs them; a few thousand digests stay well under any message limit. */
const FILTERS_PER_LIST = 200;

export interface ContainerdImageRecord {
  /** "quay.io/…@sha256:…", a tag, or "sha256:<config>" (the CRI's image-ID record). */
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  /** The manifest (or index) the record points at; `digest` is what the record names. */
  readonly target: ContainerdDescriptor;
}

/** Wire shape: size is an int64, a decimal string as proto-loader hands it over. */
export interface ContainerdDescriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: string;
}

interface WireImage {
  name: string;
  labels: Record<string, string>;
  target: ContainerdDescriptor | null;
}

let imagesV1: GrpcClientConstructor | undefined;

function loadImagesV1(): GrpcClientConstructor {
  if (imagesV1 === undefined) {
    const loaded = loadProto('containerd-images-v1.proto') as unknown as {
      containerd: { services: { images: { v1: { Images: GrpcClientConstructor } } } };
    };
    imagesV1 = loaded.containerd.services.images.v1.Images;
  }
  return imagesV1;
}

/** A failed call of containerd's images API, naming the operation and the record. */
export class ContainerdImagesError extends UserError {
  constructor(grpcCode: number, operation: string, details: string, cause?: unknown) {
    const codeName = grpc.status[grpcCode] ?? `GRPC_${grpcCode}`;
    super('CONTAINERD_IMAGES_FAILED', `containerd images API ${operation} failed (${codeName}): ${details}`, {
      cause,
    });
    this.name = 'ContainerdImagesError';
  }
}

export class ContainerdImages {
  private constructor(
    private readonly client: GrpcClient,
    private readonly namespace: string,
    private readonly timeoutMs: number,
  ) {}

  static async connect(endpoint: string, options: { namespace?: string; timeoutMs?: number } = {}): Promise<ContainerdImages> {
    const socketPath = criSocketPath(endpoint);
    if (socketPath === undefined) throw new Error(`containerd endpoint ${endpoint} is not a unix socket`);
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const client = unixClient(loadImagesV1(), socketPath);
    try {
      await waitForReady(client, timeoutMs);
    } catch (err) {
      client.close();
      throw new ContainerdImagesError(grpc.status.UNAVAILABLE, `connect to ${endpoint}`, (err as Error).message, err);
    }
    return new ContainerdImages(client, options.namespace ?? CRI_NAMESPACE, timeoutMs);
  }

  /** Every record pointing at one of `digests` (manifest or index digests), in one List call per chunk. */
  async recordsFor(digests: readonly string[]): Promise<ContainerdImageRecord[]> {
    const records: ContainerdImageRecord[] = [];
    const unique = [...new Set(digests)];
    for (let i = 0; i < unique.length; i += FILTERS_PER_LIST) {
      const filters = unique.slice(i, i + FILTERS_PER_LIST).map((digest) => `target.digest==${digest}`);
      const response = (await this.call('List', 'list', { filters })) as { images: WireImage[] };
      for (const image of response.images) {
        if (image.target === null) continue; // containerd always sets it; a record without one is nothing we can name
        records.push({ name: image.name, labels: image.labels, target: image.target });
      }
    }
    return records;
  }

  /**
   * Sets (value) or removes (undefined) one label of one record; the update mask names only that label, so the
   * record's other labels and its target are untouched (containerd drops a label set to ""). The target is
   * sent anyway: containerd 1.7 dereferences it before it looks at the mask (a missing one crashes it).
   */
  async setLabel(record: ContainerdImageRecord, key: string, value: string | undefined): Promise<void> {
    await this.call('Update', `update of ${record.name}`, {
      image: { name: record.name, labels: value === undefined ? {} : { [key]: value }, target: record.target },
      updateMask: { paths: [`labels.${key}`] },
    });
  }

  close(): void {
    this.client.close();
  }

  private call(method: string, operation: string, request: object): Promise<unknown> {
    const metadata = new grpc.Metadata();
    metadata.set('containerd-namespace', this.namespace);
    return unaryCall(this.client, method, request, { deadlineMs: this.timeoutMs, metadata }, (code, details, cause) =>
      new ContainerdImagesError(code, operation, details, cause),
    );
  }
}
