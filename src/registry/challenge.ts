// Registry authentication: WWW-Authenticate challenges (RFC 7235) parsed into typed values, and the
// Docker token protocol (Bearer realm/service/scope → token) with a cache per realm, service and scope.

import type { Credential } from './credentials.js';
import { UserError } from '../util/errors.js';

export interface Challenge {
  /** Lowercased auth scheme: "bearer", "basic", … */
  readonly scheme: string;
  /** Parameter names lowercased; values unquoted and unescaped. */
  readonly params: Readonly<Record<string, string>>;
}

const TOKEN_CHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;

/**
 * Parses a WWW-Authenticate value (or several joined with ","): `Scheme k=v, k="q\"v", Scheme2 …`.
 * Malformed parts are skipped rather than thrown: a registry's odd header should not hide a usable challenge.
 */
export function parseChallenges(header: string | readonly string[] | undefined): Challenge[] {
  if (header === undefined) return [];
  const text = typeof header === 'string' ? header : header.join(', ');
  const challenges: Array<{ scheme: string; params: Record<string, string> }> = [];
  let i = 0;
  const skipSpace = (): void => {
    while (i < text.length && (text[i] === ' ' || text[i] === '\t')) i++;
  };
  const readToken = (): string => {
    const start = i;
    while (i < text.length && TOKEN_CHAR.test(text[i]!)) i++;
    return text.slice(start, i);
  };
  const readQuoted = (): string => {
    i++; // opening quote
    let out = '';
    while (i < text.length && text[i] !== '"') {
      if (text[i] === '\\' && i + 1 < text.length) i++;
      out += text[i];
      i++;
    }
    i++; // closing quote (or end)
    return out;
  };
  while (i < text.length) {
    skipSpace();
    if (text[i] === ',') {
      i++;
      continue;
    }
    const word = readToken();
    if (word === '') {
      i++; // stray character: skip it
      continue;
    }
    skipSpace();
    const current = challenges[challenges.length - 1];
    if (text[i] === '=' && current && text[i + 1] !== '=') {
      // an auth-param of the current challenge
      i++;
      skipSpace();
      const value = text[i] === '"' ? readQuoted() : readToken();
      current.params[word.toLowerCase()] = value;
    } else {
      // a new challenge; a token68 credential right after it ("Negotiate abc==") is read and ignored
      challenges.push({ scheme: word.toLowerCase(), params: {} });
      const token68 = /^[A-Za-z0-9\-._~+/]+=*[ \t]*(?:,|$)/.exec(text.slice(i));
      if (token68) i += token68[0].length;
    }
  }
  return challenges;
}

/** The Bearer challenge if there is one (preferred), else Basic. */
export function preferredChallenge(challenges: readonly Challenge[]): Challenge | undefined {
  return challenges.find((c) => c.scheme === 'bearer' && c.params.realm) ?? challenges.find((c) => c.scheme === 'basic');
}

export function basicAuthorization(credential: Credential): string {
  return `Basic ${Buffer.from(`${credential.username}:${credential.password ?? ''}`).toString('base64')}`;
}

export function pullScope(repositoryPath: string): string {
  return `repository:${repositoryPath}:pull`;
}

/** What the token endpoint answered, minus what we do not use. */
export interface BearerToken {
  readonly token: string;
  /** ms since epoch after which we fetch a new one (a little before the real expiry). */
  readonly refreshAfter: number;
}

/** A minimal HTTP exchange, supplied by the client so token requests share its pools and TLS settings. */
export type TokenTransport = (
  url: URL,
  init: { method: 'GET' | 'POST'; headers: Record<string, string>; body?: string },
) => Promise<{ status: number; body: string }>;

const DEFAULT_EXPIRES_IN_S = 60;
/** Refresh this long before expiry, or at half the lifetime for short-lived tokens. */
const EXPIRY_MARGIN_MS = 10_000;

export function tokenRequest(
  challenge: Challenge,
  scope: string,
  credential: Credential | undefined,
): { url: URL; init: { method: 'GET' | 'POST'; headers: Record<string, string>; body?: string } } {
  const realm = challenge.params.realm;
  if (!realm) throw new Error('bearer challenge without realm');
  const url = new URL(realm);
  const service = challenge.params.service;
  if (credential?.identityToken) {
    // OAuth2 refresh-token grant, as containers/image and docker do for identity tokens.
    const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: credential.identityToken, client_id: 'pin-preload', scope });
    if (service) form.set('service', service);
    return {
      url,
      init: { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form.toString() },
    };
  }
  if (service) url.searchParams.set('service', service);
  // Several scopes (a push that mounts from another repository) go as one `scope` parameter each, as docker sends them.
  for (const one of scope.split(' ')) url.searchParams.append('scope', one);
  const headers: Record<string, string> = {};
  if (credential) {
    url.searchParams.set('account', credential.username);
    headers.authorization = basicAuthorization(credential);
  }
  return { url, init: { method: 'GET', headers } };
}

export function parseTokenResponse(body: string, now: number, realm: string): BearerToken {
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch {
    throw new UserError('REGISTRY_ERROR', `token server ${realm} answered with something that is not JSON`);
  }
  const { token, access_token: accessToken, expires_in: expiresIn } = (doc ?? {}) as Record<string, unknown>;
  const value = typeof token === 'string' && token !== '' ? token : typeof accessToken === 'string' ? accessToken : '';
  if (value === '') throw new UserError('REGISTRY_ERROR', `token server ${realm} answered without a token`);
  const lifetimeMs = (typeof expiresIn === 'number' && expiresIn > 0 ? expiresIn : DEFAULT_EXPIRES_IN_S) * 1000;
  const margin = Math.min(EXPIRY_MARGIN_MS, lifetimeMs / 2);
  return { token: value, refreshAfter: now + lifetimeMs - margin };
}

/**
 * Bearer tokens per (realm, service, scope). Concurrent requests for the same key share one fetch, so
 * many parallel blob GETs cost one token request.
 */
export class TokenCache {
  private readonly tokens = new Map<string, BearerToken>();
  private readonly pending = new Map<string, Promise<BearerToken>>();

  constructor(private readonly transport: TokenTransport, private readonly now: () => number = Date.now) {}

  static key(challenge: Challenge, scope: string): string {
    return JSON.stringify([challenge.params.realm ?? '', challenge.params.service ?? '', scope]);
  }

  /** A still-valid cached token, if any. */
  cached(challenge: Challenge, scope: string): string | undefined {
    const key = TokenCache.key(challenge, scope);
    const token = this.tokens.get(key);
    if (token && token.refreshAfter > this.now()) return token.token;
    if (token) this.tokens.delete(key);
    return undefined;
  }

  /**
   * Forget a token the registry refused (a 401 despite it). Given the refused token, only that one is
   * dropped: a parallel request may already have cached a fresh one.
   */
  drop(challenge: Challenge, scope: string, refused?: string): void {
    const key = TokenCache.key(challenge, scope);
    if (refused === undefined || this.tokens.get(key)?.token === refused) this.tokens.delete(key);
  }

  async get(challenge: Challenge, scope: string, credential: Credential | undefined, registry: string): Promise<string> {
    const cached = this.cached(challenge, scope);
    if (cached) return cached;
    const key = TokenCache.key(challenge, scope);
    let pending = this.pending.get(key);
    if (!pending) {
      pending = this.fetch(challenge, scope, credential, registry).finally(() => this.pending.delete(key));
      this.pending.set(key, pending);
    }
    const token = await pending;
    this.tokens.set(key, token);
    return token.token;
  }

  private async fetch(challenge: Challenge, scope: string, credential: Credential | undefined, registry: string): Promise<BearerToken> {
    const { url, init } = tokenRequest(challenge, scope, credential);
    const realm = `${url.origin}${url.pathname}`;
    const response = await this.transport(url, init);
    if (response.status === 401 || response.status === 403) {
      throw new UserError(
        'REGISTRY_UNAUTHORIZED',
        `${registry}: token server ${realm} refused ${credential ? `the credentials from ${credential.source}` : 'anonymous access'} for ${scope} (HTTP ${response.status})`,
        { subject: { kind: 'registry', name: registry } },
      );
    }
    if (response.status !== 200) {
      throw new UserError('REGISTRY_ERROR', `${registry}: token server ${realm} answered HTTP ${response.status} for ${scope}: ${response.body.slice(0, 200)}`);
    }
    return parseTokenResponse(response.body, this.now(), realm);
  }
}
