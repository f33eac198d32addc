import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startDockerRegistry } from '../support/docker-registry.js';

test('docker-registry starts on loopback and answers /v2/', async () => {
  const reg = await startDockerRegistry();
  try {
    const res = await fetch(`${reg.url}/v2/`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('docker-distribution-api-version'), 'registry/2.0');
  } finally {
    await reg.stop();
  }
});
