// undici's Pool without undici's index. The index loads every dispatcher, fetch, WebSocket, the cookie and
// cache code and the mocks: ~70 ms of a CLI run here, against ~25 ms for the pool and its request API alone.

import { createRequire } from 'node:module';
import { setFlagsFromString } from 'node:v8';
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

/**
 * For a command that makes a few dozen small requests and ends (`bundle plan`): V8 compiles undici's HTTP
 * parser (WebAssembly) with its baseline compiler, then again, optimised, on background threads once a
 * function has run enough. That second compile is 50–100 ms of CPU here that a plan never earns back, and on
 * a 2-core machine it is taken from the registry and the plan; at a natural exit Node also waits for it.
 * Raising the budget keeps the baseline code. Call before the first request: the budget is read when the
 * parser is compiled. A long transfer (`bundle create`) is better off optimised and does not call this.
 */
export function keepHttpParserBaseline(): void {
  setFlagsFromString('--wasm-tiering-budget=2000000000');
}
