// Random free loopback ports and bounded polling for tests (shared with the demo: src/util/net.ts).

export { freePort, waitFor } from '../../src/util/net.js';
