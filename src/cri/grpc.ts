// What the two gRPC clients on the runtime's socket share (the CRI, containerd's images API): finding a vendored
// .proto next to the code, loading it, and one unary call with a deadline, metadata and an abort signal.

import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/** The MCO's CRI client uses the same limit: ListImages on a node with thousands of images is large. */
const MAX_RECEIVE_MESSAGE_BYTES = 16 * 1024 * 1024;

type UnaryMethod = (
  request: object,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (err: grpc.ServiceError | null, response?: unknown) => void,
) => grpc.ClientUnaryCall;
export type GrpcClient = grpc.Client & Record<string, UnaryMethod>;
export type GrpcClientConstructor = new (address: string, credentials: grpc.ChannelCredentials, options?: object) => GrpcClient;

/** A .proto sits next to the source; the compiled file in dist/src/cri/ finds it back in src/cri/. */
function protoPath(file: string): string {
  const candidates = [`./${file}`, `../../../src/cri/${file}`].map((rel) => fileURLToPath(new URL(rel, import.meta.url)));
  const found = candidates.find((candidate) => existsSync(candidate));
  if (found === undefined) throw new Error(`${file} not found (looked at ${candidates.join(', ')})`);
  return found;
}

/** Loads a vendored .proto (camelCase fields, longs as strings, enums as names, defaults filled in). */
export function loadProto(file: string): grpc.GrpcObject {
  const definition = protoLoader.loadSync(protoPath(file), { keepCase: false, longs: String, enums: String, defaults: true });
  return grpc.loadPackageDefinition(definition);
}

/** A client on a unix socket, with the shared message size limit. */
export function unixClient(constructor: GrpcClientConstructor, socketPath: string): GrpcClient {
  return new constructor(`unix://${socketPath}`, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': MAX_RECEIVE_MESSAGE_BYTES });
}

export function waitForReady(client: grpc.Client, timeoutMs: number): Promise<void> {
  return new Promise<void>((resolve, reject) => client.waitForReady(Date.now() + timeoutMs, (err) => (err ? reject(err) : resolve())));
}

/**
 * One unary call. Failures reject with `onError(code, details, cause)`'s error, so each client names the
 * operation its own way; an aborted signal cancels the call (CANCELLED).
 */
export function unaryCall(
  client: GrpcClient,
  method: string,
  request: object,
  options: { deadlineMs: number; metadata?: grpc.Metadata; signal?: AbortSignal | undefined },
  onError: (grpcCode: number, details: string, cause?: unknown) => Error,
): Promise<unknown> {
  const { signal } = options;
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(onError(grpc.status.CANCELLED, 'cancelled before it started'));
      return;
    }
    const unary = client[method];
    if (unary === undefined) throw new Error(`gRPC client has no method ${method}`);
    const onAbort = () => activeCall.cancel();
    const activeCall = unary.call(client, request, options.metadata ?? new grpc.Metadata(), { deadline: Date.now() + options.deadlineMs }, (err, response) => {
      signal?.removeEventListener('abort', onAbort);
      if (err) reject(onError(err.code, err.details || err.message, err));
      else resolve(response);
    });
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
