import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { Pool as PackagePool } from 'undici';
import { Pool } from '../../src/util/http-pool.js';

test("the registry client's Pool is undici's own class, with its request API", async () => {
  assert.equal(Pool, PackagePool);
  const server = createServer((req, res) => res.end(`you asked for ${req.url}`));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const pool = new Pool(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, { connections: 1 });
  try {
    const res = await pool.request({ method: 'GET', path: '/v2/' });
    assert.equal(res.statusCode, 200);
    assert.equal(await res.body.text(), 'you asked for /v2/');
  } finally {
    await pool.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

test("loading the registry client leaves undici's index (fetch, WebSocket, mocks, every dispatcher) unloaded", async () => {
  // A fresh process: this test file itself has loaded the whole package to compare classes.
  const client = new URL('../../src/registry/client.js', import.meta.url).href;
  const script = `import { createRequire } from 'node:module';
await import(${JSON.stringify(client)});
const loaded = Object.keys(createRequire(import.meta.url).cache).filter((f) => f.includes('/node_modules/undici/'));
console.log(JSON.stringify({ pool: loaded.some((f) => f.endsWith('/lib/dispatcher/pool.js')), index: loaded.some((f) => f.endsWith('/undici/index.js')), fetch: loaded.some((f) => f.includes('/lib/web/')) }));`;
  const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], { cwd: new URL('.', import.meta.url).pathname, timeout: 30_000 });
  assert.deepEqual(JSON.parse(stdout), { pool: true, index: false, fetch: false });
});
