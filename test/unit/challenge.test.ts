import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseChallenges, parseTokenResponse, preferredChallenge, TokenCache, tokenRequest, type TokenTransport } from '../../src/registry/challenge.js';
import { UserError } from '../../src/util/errors.js';

const parseCases: Array<{ name: string; header: string; expected: Array<{ scheme: string; params: Record<string, string> }> }> = [
  {
    name: 'a Bearer challenge with realm, service and scope',
    header: 'Bearer realm="https://quay.io/v2/auth",service="quay.io",scope="repository:a/b:pull"',
    expected: [{ scheme: 'bearer', params: { realm: 'https://quay.io/v2/auth', service: 'quay.io', scope: 'repository:a/b:pull' } }],
  },
  {
    name: 'Basic with a realm',
    header: 'Basic realm="Registry Realm"',
    expected: [{ scheme: 'basic', params: { realm: 'Registry Realm' } }],
  },
  {
    name: 'quoted strings with escapes and commas inside',
    header: 'Bearer realm="https://a/t?x=1,2",error="insufficient_scope",error_description="say \\"hi\\""',
    expected: [{ scheme: 'bearer', params: { realm: 'https://a/t?x=1,2', error: 'insufficient_scope', error_description: 'say "hi"' } }],
  },
  {
    name: 'several challenges in one header, spaces around separators',
    header: 'Basic realm="r1" , Bearer realm="https://t", service = "s"',
    expected: [
      { scheme: 'basic', params: { realm: 'r1' } },
      { scheme: 'bearer', params: { realm: 'https://t', service: 's' } },
    ],
  },
  {
    name: 'case-insensitive scheme and parameter names, unquoted token values',
    header: 'BEARER Realm="https://t",Service=registry.example',
    expected: [{ scheme: 'bearer', params: { realm: 'https://t', service: 'registry.example' } }],
  },
  {
    name: 'a token68 challenge followed by another',
    header: 'Negotiate abc123==, Basic realm="x"',
    expected: [
      { scheme: 'negotiate', params: {} },
      { scheme: 'basic', params: { realm: 'x' } },
    ],
  },
  { name: 'a bare scheme', header: 'Basic', expected: [{ scheme: 'basic', params: {} }] },
  { name: 'an empty header', header: '', expected: [] },
];

for (const c of parseCases) {
  test(`parses ${c.name}`, () => {
    assert.deepEqual(parseChallenges(c.header), c.expected);
  });
}

test('several WWW-Authenticate headers are read as one list, Bearer preferred', () => {
  const challenges = parseChallenges(['Basic realm="x"', 'Bearer realm="https://t",service="s"']);
  assert.equal(challenges.length, 2);
  assert.equal(preferredChallenge(challenges)?.scheme, 'bearer');
});

const bearer = { scheme: 'bearer', params: { realm: 'https://auth.example/token', service: 'registry.example' } };

test('a token request with a password sends Basic auth and account', () => {
  const { url, init } = tokenRequest(bearer, 'repository:a/b:pull', { username: 'alice', password: 's3cret', source: 't' });
  assert.equal(init.method, 'GET');
  assert.equal(url.searchParams.get('service'), 'registry.example');
  assert.equal(url.searchParams.get('scope'), 'repository:a/b:pull');
  assert.equal(url.searchParams.get('account'), 'alice');
  assert.equal(init.headers.authorization, `Basic ${Buffer.from('alice:s3cret').toString('base64')}`);
});

test('an anonymous token request has no Authorization and no account', () => {
  const { url, init } = tokenRequest(bearer, 'repository:a/b:pull', undefined);
  assert.equal(init.headers.authorization, undefined);
  assert.equal(url.searchParams.has('account'), false);
});

test('an identity token is exchanged with a refresh_token grant (POST form)', () => {
  const { init } = tokenRequest(bearer, 'repository:a/b:pull', { username: '', identityToken: 'rt', source: 't' });
  assert.equal(init.method, 'POST');
  const form = new URLSearchParams(init.body);
  assert.equal(form.get('grant_type'), 'refresh_token');
  assert.equal(form.get('refresh_token'), 'rt');
  assert.equal(form.get('service'), 'registry.example');
  assert.equal(form.get('scope'), 'repository:a/b:pull');
});

const responseCases: Array<{ body: string; token: string; lifetimeMs: number }> = [
  { body: '{"token":"t1","expires_in":300}', token: 't1', lifetimeMs: 290_000 },
  { body: '{"access_token":"t2"}', token: 't2', lifetimeMs: 50_000 },
  { body: '{"token":"","access_token":"t3","expires_in":10}', token: 't3', lifetimeMs: 5_000 },
];
for (const c of responseCases) {
  test(`token response ${c.body} gives ${c.token}, refreshed ${c.lifetimeMs} ms later`, () => {
    const parsed = parseTokenResponse(c.body, 1000, 'realm');
    assert.equal(parsed.token, c.token);
    assert.equal(parsed.refreshAfter, 1000 + c.lifetimeMs);
  });
}

test('a token response without a token is an error', () => {
  assert.throws(() => parseTokenResponse('{"expires_in":5}', 0, 'realm'), UserError);
});

function fakeTransport(): { transport: TokenTransport; hits: () => number; status: { value: number } } {
  let hits = 0;
  const status = { value: 200 };
  const transport: TokenTransport = async () => {
    hits++;
    return { status: status.value, body: JSON.stringify({ token: `token-${hits}`, expires_in: 60 }) };
  };
  return { transport, hits: () => hits, status };
}

test('tokens are cached per realm, service and scope until shortly before expiry', async () => {
  let now = 0;
  const fake = fakeTransport();
  const cache = new TokenCache(fake.transport, () => now);
  const results = await Promise.all(Array.from({ length: 10 }, () => cache.get(bearer, 'repository:a:pull', undefined, 'r')));
  assert.deepEqual(new Set(results), new Set(['token-1']));
  assert.equal(fake.hits(), 1);
  assert.equal(await cache.get(bearer, 'repository:other:pull', undefined, 'r'), 'token-2');
  now = 49_000;
  assert.equal(await cache.get(bearer, 'repository:a:pull', undefined, 'r'), 'token-1');
  now = 51_000; // 60 s lifetime less the 10 s margin
  assert.equal(await cache.get(bearer, 'repository:a:pull', undefined, 'r'), 'token-3');
});

test('a dropped token is fetched anew', async () => {
  const fake = fakeTransport();
  const cache = new TokenCache(fake.transport);
  await cache.get(bearer, 's', undefined, 'r');
  cache.drop(bearer, 's');
  assert.equal(await cache.get(bearer, 's', undefined, 'r'), 'token-2');
});

test('dropping a refused token keeps a fresher one that a parallel request cached', async () => {
  const fake = fakeTransport();
  const cache = new TokenCache(fake.transport);
  const first = await cache.get(bearer, 's', undefined, 'r');
  cache.drop(bearer, 's', first);
  const second = await cache.get(bearer, 's', undefined, 'r');
  cache.drop(bearer, 's', first); // a late 401 for the old token
  assert.equal(await cache.get(bearer, 's', undefined, 'r'), second);
  assert.equal(fake.hits(), 2);
});

test('a token server refusing the credentials gives REGISTRY_UNAUTHORIZED naming the credential source', async () => {
  const fake = fakeTransport();
  fake.status.value = 401;
  const cache = new TokenCache(fake.transport);
  await assert.rejects(
    cache.get(bearer, 'repository:a:pull', { username: 'u', password: 'p', source: '/tmp/auth.json (quay.io)' }, 'quay.io'),
    (err: unknown) => err instanceof UserError && err.code === 'REGISTRY_UNAUTHORIZED' && err.message.includes('/tmp/auth.json') && err.hint !== undefined && err.hint.includes('--authfile'),
  );
});
