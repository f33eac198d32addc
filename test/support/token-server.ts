// A bearer token server for docker-registry's `auth: token` in tests, with the constants the registry's
// configuration and the clients' credentials need. Every test that starts one stops it.

import { createPrivateKey, randomBytes, sign, X509Certificate } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface TokenServer {
  readonly url: string;
  hits: number;
  /** Seconds from now to the JWT's `exp` claim (the registry's view); expires_in stays 300. */
  jwtLifetimeS: number;
  mint(scope: { name: string; actions: string[] }[]): string;
  stop(): Promise<void>;
}

export const SERVICE = 'pin-preload-test-registry';
export const ISSUER = 'pin-preload-test-issuer';
export const USER = 'alice';
export const PASSWORD = 'correct horse';

function base64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

/**
 * A token server for docker-registry's `auth: token`: RS256 JWTs signed with `keyPem` (the registry trusts
 * `certPem`), for USER/PASSWORD only. It grants pull, and push too when `grantPush`; anonymous users get a
 * token with no access, as public token servers do. Several `scope` parameters each get their access.
 */
export async function startTokenServer(keyPem: string, certPem: string, options: { grantPush?: boolean } = {}): Promise<TokenServer> {
  const key = createPrivateKey(keyPem);
  const certDer = new X509Certificate(certPem).raw;
  const state = { hits: 0, jwtLifetimeS: 300 };
  const mint = (access: { name: string; actions: string[] }[]): string => {
    const now = Math.floor(Date.now() / 1000);
    const headerPart = base64url(JSON.stringify({ typ: 'JWT', alg: 'RS256', x5c: [certDer.toString('base64')] }));
    const claims = { iss: ISSUER, sub: USER, aud: SERVICE, iat: now, nbf: now - 5, exp: now + state.jwtLifetimeS, jti: randomBytes(8).toString('hex'), access: access.map((a) => ({ type: 'repository', ...a })) };
    const payload = base64url(JSON.stringify(claims));
    const signature = sign('sha256', Buffer.from(`${headerPart}.${payload}`), key);
    return `${headerPart}.${payload}.${base64url(signature)}`;
  };
  const server = http.createServer((req, res) => {
    state.hits++;
    const url = new URL(req.url ?? '/', 'http://x');
    const auth = req.headers.authorization;
    let access: { name: string; actions: string[] }[] = [];
    if (auth !== undefined) {
      if (auth !== `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}` || url.searchParams.get('account') !== USER) {
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end('{"details":"wrong credentials"}');
        return;
      }
      const granted = options.grantPush ? ['pull', 'push'] : ['pull'];
      for (const asked of url.searchParams.getAll('scope')) {
        const scope = /^repository:([^:]+):(.+)$/.exec(asked);
        if (scope && url.searchParams.get('service') === SERVICE) access.push({ name: scope[1]!, actions: scope[2]!.split(',').filter((a) => granted.includes(a)) });
      }
    }
    // Anonymous users get a token with no access, as public token servers do.
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token: mint(access), expires_in: 300 }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get hits() {
      return state.hits;
    },
    set hits(v: number) {
      state.hits = v;
    },
    get jwtLifetimeS() {
      return state.jwtLifetimeS;
    },
    set jwtLifetimeS(v: number) {
      state.jwtLifetimeS = v;
    },
    mint,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

