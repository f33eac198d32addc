// A typed client for the CRI ImageService (runtime.v1) that CRI-O and containerd serve on a unix socket:
// pull, status, list, remove and image-filesystem usage, with gRPC failures turned into CriError/UserError.

import { stat } from 'node:fs/promises';
import * as grpc from '@grpc/grpc-js';
import { UserError } from '../util/errors.js';
import type { CriStatusCode } from '../util/error-codes.js';
import { loadProto, unaryCall, unixClient, waitForReady, type GrpcClient, type GrpcClientConstructor } from './grpc.js';

const DEFAULT_TIMEOUT_MS = 30_000;
/** What kubelet sends in VersionRequest; runtimes ignore it but it documents which API we speak. */
const KUBELET_API_VERSION = '0.1.0';

export interface CriImage {
  readonly id: string;
  readonly repoTags: readonly string[];
  readonly repoDigests: readonly string[];
  readonly size: number;
  /** Whether the runtime exempts the image from garbage collection (CRI-O pinned_images; containerd 1.6: never). */
  readonly pinned: boolean;
}

export interface CriRuntimeVersion {
  readonly runtimeName: string;
  readonly runtimeVersion: string;
  readonly runtimeApiVersion: string;
}

export interface ImageFilesystem {
  readonly mountpoint: string;
  readonly usedBytes?: number;
  readonly inodesUsed?: number;
}

/** grpc.status's name for a status number (its enum maps both ways), `GRPC_<n>` for one it lacks. */
function criStatusCode(grpcCode: number): CriStatusCode {
  return (grpc.status[grpcCode] as CriStatusCode | undefined) ?? `GRPC_${grpcCode}`;
}

/** A gRPC failure of one CRI call; `code` is the gRPC status name (NOT_FOUND, UNKNOWN, DEADLINE_EXCEEDED, ...). */
export class CriError extends UserError {
  readonly grpcCode: number;
  /** The image reference the call was about, when it was about one. */
  readonly image: string | undefined;
  /** The runtime ran out of disk while pulling: every further pull would fail too, so callers stop. */
  readonly isNoSpace: boolean;

  constructor(options: { grpcCode: number; operation: string; image?: string; details: string; cause?: unknown }) {
    const codeName = criStatusCode(options.grpcCode);
    const subject = options.image === undefined ? '' : ` of ${options.image}`;
    const isNoSpace = /no space left on device/i.test(options.details);
    super(codeName, `CRI ${options.operation}${subject} failed (${codeName}): ${options.details}`, {
      hint: isNoSpace ? 'the container storage is full: free space or grow it, then run preload again' : undefined,
      cause: options.cause,
    });
    this.name = 'CriError';
    this.grpcCode = options.grpcCode;
    this.image = options.image;
    this.isNoSpace = isNoSpace;
  }

  /** containerd answers a missing manifest with UNKNOWN "...: not found"; CRI-O with NOT_FOUND or "manifest unknown". */
  get isNotFound(): boolean {
    return this.grpcCode === grpc.status.NOT_FOUND || /not found|manifest unknown/i.test(this.message);
  }
}

// Wire shapes as @grpc/proto-loader hands them over (camelCase, longs as strings, defaults filled in).
interface WireUInt64 {
  value: string;
}
interface WireImage {
  id: string;
  repoTags: string[];
  repoDigests: string[];
  size: string;
  pinned: boolean;
}
interface WireFilesystemUsage {
  fsId: { mountpoint: string } | null;
  usedBytes: WireUInt64 | null;
  inodesUsed: WireUInt64 | null;
}

let runtimeV1: { imageService: GrpcClientConstructor; runtimeService: GrpcClientConstructor } | undefined;

function loadRuntimeV1(): NonNullable<typeof runtimeV1> {
  if (runtimeV1 === undefined) {
    const loaded = loadProto('runtime-v1.proto') as unknown as {
      runtime: { v1: { ImageService: GrpcClientConstructor; RuntimeService: GrpcClientConstructor } };
    };
    runtimeV1 = { imageService: loaded.runtime.v1.ImageService, runtimeService: loaded.runtime.v1.RuntimeService };
  }
  return runtimeV1;
}

/** Accepts "unix:///run/crio/crio.sock", "unix:/path" or a bare socket path. */
export function criSocketPath(endpoint: string): string | undefined {
  if (endpoint.startsWith('unix://')) return endpoint.slice('unix://'.length);
  if (endpoint.startsWith('unix:')) return endpoint.slice('unix:'.length);
  if (endpoint.startsWith('/')) return endpoint;
  return undefined;
}

function unreachable(endpoint: string, reason: string, cause?: unknown): UserError {
  return new UserError('CRI_UNREACHABLE', `cannot reach the container runtime's CRI socket ${endpoint}: ${reason}`, {
    subject: { kind: 'url', name: endpoint },
    cause,
  });
}

function toNumber(text: string | undefined): number | undefined {
  if (text === undefined || text === '') return undefined;
  return Number(text);
}

function toCriImage(wire: WireImage): CriImage {
  return {
    id: wire.id,
    repoTags: wire.repoTags,
    repoDigests: wire.repoDigests,
    size: Number(wire.size),
    pinned: wire.pinned,
  };
}

export class CriImageService {
  private constructor(
    readonly endpoint: string,
    private readonly images: GrpcClient,
    private readonly runtime: GrpcClient,
    private readonly callTimeoutMs: number,
  ) {}

  /** Connects and waits until the socket answers, or fails with CRI_UNREACHABLE within `timeoutMs`. */
  static async connect(endpoint: string, options: { timeoutMs?: number } = {}): Promise<CriImageService> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const socketPath = criSocketPath(endpoint);
    if (socketPath === undefined) {
      throw new UserError('CRI_ENDPOINT_INVALID', `CRI endpoint ${endpoint} is not a unix socket`, {
        subject: { kind: 'url', name: endpoint },
      });
    }
    // Fail at once on a missing socket instead of letting gRPC retry until the deadline.
    const socket = await stat(socketPath).catch((err: unknown) => err as Error);
    if (socket instanceof Error) throw unreachable(endpoint, socket.message, socket);
    if (!socket.isSocket()) throw unreachable(endpoint, `${socketPath} is not a socket`);

    const { imageService, runtimeService } = loadRuntimeV1();
    const images = unixClient(imageService, socketPath);
    const runtime = unixClient(runtimeService, socketPath);
    try {
      await waitForReady(images, timeoutMs);
    } catch (err) {
      images.close();
      runtime.close();
      throw unreachable(endpoint, (err as Error).message, err);
    }
    return new CriImageService(endpoint, images, runtime, timeoutMs);
  }

  async version(): Promise<CriRuntimeVersion> {
    const response = (await this.call(this.runtime, 'Version', 'version', { version: KUBELET_API_VERSION })) as {
      runtimeName: string;
      runtimeVersion: string;
      runtimeApiVersion: string;
    };
    return {
      runtimeName: response.runtimeName,
      runtimeVersion: response.runtimeVersion,
      runtimeApiVersion: response.runtimeApiVersion,
    };
  }

  /** The image as the runtime knows it, or undefined when it is not in the runtime's storage. */
  async imageStatus(ref: string): Promise<CriImage | undefined> {
    try {
      const response = (await this.call(this.images, 'ImageStatus', 'image status', { image: { image: ref } }, { image: ref })) as {
        image: WireImage | null;
      };
      return response.image === null ? undefined : toCriImage(response.image);
    } catch (err) {
      // The spec says "absent → nil image", but some runtime versions answer NOT_FOUND instead.
      if (err instanceof CriError && err.grpcCode === grpc.status.NOT_FOUND) return undefined;
      throw err;
    }
  }

  /** Pulls `ref` and returns the runtime's image_ref (an image ID or digest reference). */
  async pullImage(ref: string, options: { timeoutMs: number; signal?: AbortSignal }): Promise<string> {
    const response = (await this.call(
      this.images,
      'PullImage',
      'pull',
      { image: { image: ref } },
      { image: ref, timeoutMs: options.timeoutMs, signal: options.signal },
    )) as { imageRef: string };
    return response.imageRef;
  }

  async listImages(): Promise<CriImage[]> {
    const response = (await this.call(this.images, 'ListImages', 'list images', {})) as { images: WireImage[] };
    return response.images.map(toCriImage);
  }

  /** Removing an image that is already gone succeeds (the CRI makes RemoveImage idempotent). */
  async removeImage(ref: string): Promise<void> {
    await this.call(this.images, 'RemoveImage', 'remove image', { image: { image: ref } }, { image: ref });
  }

  async imageFsInfo(): Promise<ImageFilesystem[]> {
    const response = (await this.call(this.images, 'ImageFsInfo', 'image filesystem info', {})) as {
      imageFilesystems: WireFilesystemUsage[];
    };
    return response.imageFilesystems.map((usage) => {
      const filesystem: { mountpoint: string; usedBytes?: number; inodesUsed?: number } = {
        mountpoint: usage.fsId?.mountpoint ?? '',
      };
      const usedBytes = toNumber(usage.usedBytes?.value);
      const inodesUsed = toNumber(usage.inodesUsed?.value);
      if (usedBytes !== undefined) filesystem.usedBytes = usedBytes;
      if (inodesUsed !== undefined) filesystem.inodesUsed = inodesUsed;
      return filesystem;
    });
  }

  close(): void {
    this.images.close();
    this.runtime.close();
  }

  private call(
    client: GrpcClient,
    method: string,
    operation: string,
    request: object,
    options: { image?: string; timeoutMs?: number; signal?: AbortSignal | undefined } = {},
  ): Promise<unknown> {
    const { image } = options;
    return unaryCall(client, method, request, { deadlineMs: options.timeoutMs ?? this.callTimeoutMs, signal: options.signal }, (grpcCode, details, cause) =>
      new CriError({ grpcCode, operation, details, cause, ...(image === undefined ? {} : { image }) }),
    );
  }
}
