import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { status } from '@grpc/grpc-js';
import { CriError, CriImageService, criSocketPath } from '../../src/cri/image-service.js';
import { isUserError } from '../../src/util/errors.js';
import { CRI_CALL_FAILED } from '../../src/util/error-codes.js';

test('criSocketPath accepts unix:///path, unix:/path and a bare path, and rejects tcp endpoints', () => {
  assert.equal(criSocketPath('unix:///var/run/crio/crio.sock'), '/var/run/crio/crio.sock');
  assert.equal(criSocketPath('unix:/run/containerd/containerd.sock'), '/run/containerd/containerd.sock');
  assert.equal(criSocketPath('/run/containerd/containerd.sock'), '/run/containerd/containerd.sock');
  assert.equal(criSocketPath('tcp://127.0.0.1:10010'), undefined);
});

test('CriError carries the gRPC status name as its code and the image it concerns', () => {
  const err = new CriError({ grpcCode: status.NOT_FOUND, operation: 'pull', image: 'quay.io/a/b@sha256:x', details: 'gone' });
  assert.equal(err.code, 'NOT_FOUND');
  assert.equal(err.image, 'quay.io/a/b@sha256:x');
  assert.ok(err.isNotFound);
  assert.ok(isUserError(err));
  assert.match(err.message, /pull of quay\.io\/a\/b@sha256:x failed \(NOT_FOUND\): gone/);
});

test('CriError flags "no space left on device" so the preload stops all pulls', () => {
  const full = new CriError({
    grpcCode: status.UNKNOWN,
    operation: 'pull',
    image: 'quay.io/a/b@sha256:x',
    details: 'failed to copy: write /var/lib/containerd/.../data: No space left on device',
  });
  assert.ok(full.isNoSpace);
  assert.match(full.hint, /storage is full/);
  const other = new CriError({ grpcCode: status.UNKNOWN, operation: 'pull', details: 'connection reset by peer' });
  assert.equal(other.isNoSpace, false);
  assert.equal(other.isNotFound, false);
  assert.equal(other.hint, CRI_CALL_FAILED.hint, 'without a hint of its own, the one all CRI status codes share');
});

test('connect fails with CRI_UNREACHABLE when the endpoint is not a socket, and CRI_ENDPOINT_INVALID for tcp', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-cri-unit-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'not-a-socket');
  await writeFile(file, '');
  await assert.rejects(CriImageService.connect(file, { timeoutMs: 500 }), { code: 'CRI_UNREACHABLE' });
  await assert.rejects(CriImageService.connect('tcp://127.0.0.1:1', { timeoutMs: 500 }), { code: 'CRI_ENDPOINT_INVALID' });
});
