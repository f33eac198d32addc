import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { loadCredentials, lookupKeys, normaliseAuthKey } from '../../src/registry/credentials.js';
import { UserError } from '../../src/util/errors.js';
import { credentialHelperOnPath, HELPER_NAME } from '../support/credential-helper.js';
import { withTempDir } from '../support/temp-dir.js';

const b64 = (s: string): string => Buffer.from(s).toString('base64');

const withDir = (fn: (dir: string) => Promise<void>): Promise<void> => withTempDir('pin-preload-creds-', fn);

async function writeJson(file: string, value: unknown): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, typeof value === 'string' ? value : JSON.stringify(value));
}

test('keys are tried most specific first, ending with the host', () => {
  assert.deepEqual(lookupKeys({ domain: 'quay.io', path: 'a/b/img' }), ['quay.io/a/b/img', 'quay.io/a/b', 'quay.io/a', 'quay.io']);
});

const keyCases: Array<[string, string]> = [
  ['quay.io', 'quay.io'],
  ['https://index.docker.io/v1/', 'docker.io'],
  ['index.docker.io', 'docker.io'],
  ['http://registry.example:5000', 'registry.example:5000'],
  ['quay.io/ns/', 'quay.io/ns'],
];
for (const [key, expected] of keyCases) {
  test(`auth key "${key}" normalises to "${expected}"`, () => assert.equal(normaliseAuthKey(key), expected));
}

test('a namespace entry beats the host entry, and the host entry covers other repositories', async () => {
  await withDir(async (dir) => {
    const file = path.join(dir, 'auth.json');
    await writeJson(file, { auths: { 'quay.io': { auth: b64('host:pw1') }, 'quay.io/team': { auth: b64('team:pw2') } } });
    const store = await loadCredentials({ authfile: file, env: {} });
    assert.equal((await store.lookup({ domain: 'quay.io', path: 'team/app' }))?.username, 'team');
    assert.equal((await store.lookup({ domain: 'quay.io', path: 'other/app' }))?.username, 'host');
    assert.equal((await store.lookup({ domain: 'quay.io', path: 'other/app' }))?.password, 'pw1');
    assert.equal((await store.lookup({ domain: 'registry.example', path: 'app' })), undefined);
  });
});

test('docker.io, index.docker.io and registry-1.docker.io are one registry', async () => {
  await withDir(async (dir) => {
    const file = path.join(dir, 'config.json');
    await writeJson(file, { auths: { 'https://index.docker.io/v1/': { auth: b64('hub:pw') } } });
    const store = await loadCredentials({ authfile: file, env: {} });
    assert.equal((await store.lookup({ domain: 'docker.io', path: 'library/busybox' }))?.username, 'hub');
    assert.equal((await store.lookup({ domain: 'registry-1.docker.io', path: 'library/busybox' }))?.username, 'hub');
  });
});

test('an identitytoken is returned as such, with the user from auth', async () => {
  await withDir(async (dir) => {
    const file = path.join(dir, 'auth.json');
    await writeJson(file, { auths: { 'acr.example': { auth: b64('00000000-0000-0000-0000-000000000000:'), identitytoken: 'refresh-me' } } });
    const cred = await (await loadCredentials({ authfile: file, env: {} })).lookup({ domain: 'acr.example', path: 'x' });
    assert.equal(cred?.identityToken, 'refresh-me');
    assert.equal(cred?.password, undefined);
  });
});

test('REGISTRY_AUTH_FILE is used alone when no --authfile is given', async () => {
  await withDir(async (dir) => {
    const file = path.join(dir, 'env-auth.json');
    await writeJson(file, { auths: { 'quay.io': { auth: b64('fromenv:pw') } } });
    await writeJson(path.join(dir, 'home', '.config', 'containers', 'auth.json'), { auths: { 'quay.io': { auth: b64('fromhome:pw') } } });
    const store = await loadCredentials({ env: { REGISTRY_AUTH_FILE: file }, home: path.join(dir, 'home') });
    assert.deepEqual(store.files, [file]);
    assert.equal((await store.lookup({ domain: 'quay.io', path: 'a' }))?.username, 'fromenv');
  });
});

test('default files are read in order: XDG_RUNTIME_DIR, ~/.config, then DOCKER_CONFIG', async () => {
  await withDir(async (dir) => {
    const home = path.join(dir, 'home');
    const runtime = path.join(dir, 'run');
    const dockerConfig = path.join(dir, 'docker');
    await writeJson(path.join(runtime, 'containers', 'auth.json'), { auths: { 'a.io': { auth: b64('runtime:pw') } } });
    await writeJson(path.join(home, '.config', 'containers', 'auth.json'), { auths: { 'a.io/ns': { auth: b64('config:pw') }, 'b.io': { auth: b64('config:pw') } } });
    await writeJson(path.join(dockerConfig, 'config.json'), { auths: { 'c.io': { auth: b64('docker:pw') } } });
    const store = await loadCredentials({ env: { XDG_RUNTIME_DIR: runtime, DOCKER_CONFIG: dockerConfig }, home });
    // The first file with any match wins, even over a more specific key in a later file (containers/image).
    assert.equal((await store.lookup({ domain: 'a.io', path: 'ns/app' }))?.username, 'runtime');
    assert.equal((await store.lookup({ domain: 'b.io', path: 'app' }))?.username, 'config');
    assert.equal((await store.lookup({ domain: 'c.io', path: 'app' }))?.username, 'docker');
  });
});

test('missing default files are skipped', async () => {
  await withDir(async (dir) => {
    const store = await loadCredentials({ env: {}, home: dir });
    assert.equal((await store.lookup({ domain: 'quay.io', path: 'a' })), undefined);
    assert.equal(store.files.length, 2);
  });
});

const malformed: Array<[string, string]> = [
  ['not JSON', '{"auths":'],
  ['auths not an object', '{"auths":[]}'],
  ['auth not base64 of user:password', JSON.stringify({ auths: { 'q.io': { auth: b64('nocolon') } } })],
  ['auth not a string', JSON.stringify({ auths: { 'q.io': { auth: 5 } } })],
];
for (const [what, text] of malformed) {
  test(`a file with ${what} is a UserError naming the file`, async () => {
    await withDir(async (dir) => {
      const file = path.join(dir, 'bad.json');
      await writeJson(file, text);
      await assert.rejects(loadCredentials({ authfile: file, env: {} }), (err: unknown) => err instanceof UserError && err.code === 'AUTHFILE_INVALID' && err.message.includes(file));
    });
  });
}

test('a missing --authfile is an error, not silently anonymous', async () => {
  await withDir(async (dir) => {
    const file = path.join(dir, 'nope.json');
    await assert.rejects(loadCredentials({ authfile: file, env: {} }), (err: unknown) => err instanceof UserError && err.message.includes(file));
  });
});

test('credHelpers: the helper named for the host answers (docker-credential-NAME get), once per host, before auths', async (t) => {
  await withDir(async (dir) => {
    const helper = await credentialHelperOnPath(t, dir, [['quay.io', 'alice', 's3cret'], ['acr.example', '<token>', 'refresh-me']]);
    const file = path.join(dir, 'auth.json');
    await writeJson(file, {
      auths: { 'quay.io': { auth: b64('fromfile:pw') }, 'b.io': { auth: b64('bob:pw') } },
      credHelpers: { 'quay.io': HELPER_NAME, 'acr.example': HELPER_NAME },
    });
    const store = await loadCredentials({ authfile: file, env: {} });
    const quay = await store.lookup({ domain: 'quay.io', path: 'team/app' });
    assert.deepEqual([quay?.username, quay?.password], ['alice', 's3cret']);
    assert.match(quay?.source ?? '', /credHelpers\["quay.io"\].*docker-credential-pin-test/);
    await store.lookup({ domain: 'quay.io', path: 'other/app' });
    const acr = await store.lookup({ domain: 'acr.example', path: 'x' });
    assert.equal(acr?.identityToken, 'refresh-me', 'the user "<token>" means an identity token');
    assert.equal(acr?.password, undefined);
    assert.equal((await store.lookup({ domain: 'b.io', path: 'x' }))?.username, 'bob', 'hosts without a helper use auths');
    assert.deepEqual(await helper.calls(), ['quay.io', 'acr.example'], 'the helper was asked once per host, with the host on stdin');
  });
});

test('credsStore: the default helper serves hosts without an entry; "not found" means anonymous', async (t) => {
  await withDir(async (dir) => {
    await credentialHelperOnPath(t, dir, [['registry.example', 'carol', 'pw']]);
    const file = path.join(dir, 'config.json');
    await writeJson(file, { auths: { 'registry.example': {}, 'd.io': { auth: b64('dave:pw') } }, credsStore: HELPER_NAME });
    const store = await loadCredentials({ authfile: file, env: {} });
    assert.equal((await store.lookup({ domain: 'registry.example', path: 'app' }))?.username, 'carol');
    assert.equal((await store.lookup({ domain: 'd.io', path: 'app' }))?.username, 'dave');
    assert.equal(await store.lookup({ domain: 'unknown.example', path: 'app' }), undefined);
  });
});

test('a missing or failing credential helper is CREDENTIAL_HELPER_FAILED naming the helper and the registry', async (t) => {
  await withDir(async (dir) => {
    await credentialHelperOnPath(t, dir, [['locked.example', 'x', '!fail']]);
    const file = path.join(dir, 'auth.json');
    await writeJson(file, { credHelpers: { 'missing.example': 'pin-test-absent', 'locked.example': HELPER_NAME } });
    const store = await loadCredentials({ authfile: file, env: {} });
    await assert.rejects(store.lookup({ domain: 'missing.example', path: 'a' }), (err: unknown) =>
      err instanceof UserError && err.code === 'CREDENTIAL_HELPER_FAILED' && err.message.includes('docker-credential-pin-test-absent') &&
      err.message.includes('missing.example') && err.message.includes('not on PATH'));
    await assert.rejects(store.lookup({ domain: 'locked.example', path: 'a' }), (err: unknown) =>
      err instanceof UserError && err.code === 'CREDENTIAL_HELPER_FAILED' && err.message.includes('docker-credential-pin-test') &&
      err.message.includes('locked.example') && err.message.includes('exit code 3: the keychain is locked'));
  });
});

test('a credHelpers value that is not a helper name is AUTHFILE_INVALID', async () => {
  await withDir(async (dir) => {
    const file = path.join(dir, 'auth.json');
    await writeJson(file, { credHelpers: { 'quay.io': '../../bin/sh' } });
    await assert.rejects(loadCredentials({ authfile: file, env: {} }), (err: unknown) => err instanceof UserError && err.code === 'AUTHFILE_INVALID' && err.message.includes('credHelpers["quay.io"]'));
  });
});
