// A bearer token server for docker-registry's `auth: token` in tests, with the constants the registry's
// configuration and the clients' credentials need. Every test that starts one stops it.

import { execFile } from 'node:child_process';
import { createPrivateKey, randomBytes, sign, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { startDockerRegistry, type RunningRegistry } from './docker-registry.js';

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


export interface TokenRegistry {
  readonly dir: string;
  readonly tokens: TokenServer;
  readonly registry: RunningRegistry;
  /** containers-auth.json with USER/PASSWORD for the registry. */
  readonly authfile: string;
  stop(): Promise<void>;
}

/** A docker-registry with `auth: token` trusting a fresh token server's certificate, and an authfile for it. */
export async function startTokenRegistry(options: { grantPush?: boolean } = {}): Promise<TokenRegistry> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-token-'));
  await promisify(execFile)('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'), '-days', '2', '-subj', '/CN=pin-preload test token issuer']);
  const tokens = await startTokenServer(await readFile(path.join(dir, 'key.pem'), 'utf8'), await readFile(path.join(dir, 'cert.pem'), 'utf8'), options);
  let registry: RunningRegistry;
  try {
    registry = await startDockerRegistry({
      authYaml: ['auth:', '  token:', `    realm: ${tokens.url}/token`, `    service: ${SERVICE}`, `    issuer: ${ISSUER}`, `    rootcertbundle: ${path.join(dir, 'cert.pem')}`].join('\n'),
    });
  } catch (err) {
    await tokens.stop();
    throw err;
  }
  const authfile = path.join(dir, 'auth.json');
  await writeFile(authfile, JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from(`${USER}:${PASSWORD}`).toString('base64') } } }));
  return {
    dir,
    tokens,
    registry,
    authfile,
    async stop() {
      await registry.stop();
      await tokens.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
