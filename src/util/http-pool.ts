// undici's Pool without undici's index. The index loads every dispatcher, fetch, WebSocket, the cookie and
// cache code and the mocks: ~70 ms of a CLI run here, against ~25 ms for the pool and its request API alone.

import { createRequire } from 'node:module';
import type { Pool as UndiciPool } from 'undici';

const require = createRequire(import.meta.url);

/**
 * The Pool class from its own file (undici's package.json has no `exports`, so its files are public paths),
 * with the request API put on Dispatcher's prototype as undici's index does. A layout this does not know
 * (a later undici moving its files) falls back to the whole package: slower to load, the same behaviour.
 */
function loadPool(): typeof UndiciPool {
  try {
    const pool = require('undici/lib/dispatcher/pool.js') as typeof UndiciPool;
    const dispatcher = require('undici/lib/dispatcher/dispatcher.js') as { prototype: object };
    Object.assign(dispatcher.prototype, require('undici/lib/api/index.js') as object);
    if (dispatcher.prototype.isPrototypeOf(pool.prototype) && typeof pool.prototype.request === 'function') return pool;
  } catch {
    // fall through to the package's own entry point
  }
  return (require('undici') as typeof import('undici')).Pool;
}

export const Pool = loadPool();
export type Pool = UndiciPool;
