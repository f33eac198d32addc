// How `bundle plan` and `bundle create` name an option in an error when --spec filled it in: by the spec's key
// and file, with a hint to fix the spec, as `since` is named; a flag given on the command line by the flag.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { checkSignatureOptions } from '../../src/cli/signature-options.js';
import { optionOrigin } from '../../src/cli/spec-options.js';
import type { Digest } from '../../src/oci/digest.js';
import { ReleaseKeyring } from '../../src/release/release-keyring.js';
import { releaseSignature } from '../../src/release/release-signature.js';
import { fetchReleaseSignatures, parseSignatureStore } from '../../src/release/signature-store.js';
import { fetchUpdateGraph } from '../../src/release/update-graph.js';
import { isUserError } from '../../src/util/errors.js';
import { originLabel } from '../../src/util/option-origin.js';
import { atomicPayload, createTestSigner, type TestSigner } from '../support/gpg.js';
import { freePort } from '../support/ports.js';

const STORE = 'https://mirror.example.com/signatures/openshift/release';
const ABSENT = '/nonexistent/release.gpg';

test('a release-keyring from the spec that cannot be read is named "release-keyring (ocp.toml)" with a hint to fix the spec, not --help', async () => {
  const given = { spec: 'ocp.toml' };
  const failure = await checkSignatureOptions({ ...given, signatureStore: STORE, releaseKeyring: ABSENT }, given).then(() => undefined, (e: unknown) => e);
  assert.ok(isUserError(failure) && failure.code === 'USAGE', `got ${String(failure)}`);
  assert.match(failure.message, /^release-keyring \(ocp\.toml\) \/nonexistent\/release\.gpg cannot be read/);
  assert.equal(failure.hint, 'fix release-keyring in ocp.toml, or give --release-keyring (the command line wins over the spec)');
});

test('a --release-keyring given on the command line beside a spec is named by the flag', async () => {
  const given = { spec: 'ocp.toml', releaseKeyring: ABSENT };
  const failure = await checkSignatureOptions({ ...given, signatureStore: STORE }, given).then(() => undefined, (e: unknown) => e);
  assert.ok(isUserError(failure) && failure.code === 'USAGE', `got ${String(failure)}`);
  assert.match(failure.message, /^--release-keyring \/nonexistent\/release\.gpg cannot be read/);
  assert.doesNotMatch(failure.hint ?? '', /ocp\.toml/);
});

// Errors raised later, while planning, name the value's origin the same way: the keyring's signature check, the
// store's failures, the update graph's endpoint. Each is tried with the value from the spec and from the flag.

const fromSpec = { spec: 'ocp.toml' };

test('checkSignatureOptions hands on where the store and the keyring came from, for errors raised while planning', async () => {
  const keyring = path.join(os.tmpdir(), `pin-preload-keyring-${process.pid}.gpg`);
  await writeFile(keyring, 'not read here');
  try {
    const bySpec = await checkSignatureOptions({ ...fromSpec, signatureStore: STORE, releaseKeyring: keyring }, fromSpec);
    assert.equal(bySpec && originLabel(bySpec.keyringOrigin!), 'release-keyring (ocp.toml)');
    assert.equal(bySpec && originLabel(bySpec.storeOrigin!), 'signature-store (ocp.toml)');
    const given = { ...fromSpec, signatureStore: STORE, releaseKeyring: keyring };
    const byFlags = await checkSignatureOptions(given, given);
    assert.equal(byFlags && originLabel(byFlags.keyringOrigin!), '--release-keyring');
    assert.equal(byFlags && originLabel(byFlags.storeOrigin!), '--signature-store');
  } finally {
    await rm(keyring, { force: true });
  }
});

describe('with gpg', () => {
  let signer: TestSigner;
  let other: TestSigner;
  before(async () => {
    [signer, other] = await Promise.all([createTestSigner(), createTestSigner('Someone Else')]);
  });
  after(async () => {
    await Promise.all([signer?.close(), other?.close()]);
  });

  test('a keyring that parses but does not verify the release signature is named with its origin: "release-keyring (ocp.toml)" and a hint to fix the spec, or "--release-keyring"', async () => {
    const digest = `sha256:${'d'.repeat(64)}` as Digest;
    const signature = releaseSignature(1, await signer.sign(atomicPayload(digest)));
    for (const [origin, label, hint] of [
      [optionOrigin(fromSpec, 'releaseKeyring', 'release-keyring'), 'release-keyring (ocp.toml)', /fix release-keyring in ocp\.toml, or give --release-keyring/],
      [optionOrigin({ ...fromSpec, releaseKeyring: other.binaryKeyring }, 'releaseKeyring', 'release-keyring'), '--release-keyring', /^use the right keyring \(OpenShift: openshift\/cluster-update-keys\)$/],
    ] as const) {
      const keyring = await ReleaseKeyring.open(other.binaryKeyring, origin);
      try {
        const failure = await keyring.verify(signature, 'signature-1 of release 4.16.0').then(() => undefined, (e: unknown) => e);
        assert.ok(isUserError(failure) && failure.code === 'RELEASE_SIGNATURE_UNTRUSTED', `got ${String(failure)}`);
        assert.ok(failure.message.startsWith(`signature-1 of release 4.16.0 is not a good signature by a key of the release keyring (${label} ${other.binaryKeyring}): `), failure.message);
        assert.match(failure.hint, hint);
      } finally {
        await keyring.close();
      }
    }
  });

  test('an armored keyring that is no key export is named with its origin', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-keyring-'));
    const broken = path.join(dir, 'broken.asc');
    await writeFile(broken, '-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n!!!! not base64 !!!!\n-----END PGP PUBLIC KEY BLOCK-----\n');
    try {
      for (const [given, label] of [[fromSpec, 'release-keyring (ocp.toml)'], [{ ...fromSpec, releaseKeyring: broken }, '--release-keyring']] as const) {
        const failure = await ReleaseKeyring.open(broken, optionOrigin(given, 'releaseKeyring', 'release-keyring')).then(() => undefined, (e: unknown) => e);
        assert.ok(isUserError(failure) && failure.code === 'USAGE', `got ${String(failure)}`);
        assert.ok(failure.message.startsWith(`${label} ${broken} is not an OpenPGP key export`), failure.message);
        assert.equal(/ocp\.toml/.test(failure.hint), label !== '--release-keyring');
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

test('a signature store from the spec that refuses or cannot be reached is named by its key in the hint; from the flag by the flag', async () => {
  const server = http.createServer((_req, res) => void res.writeHead(401).end());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const dead = await freePort();
  const FAST = { attempts: 1, baseDelayMs: 1, maxDelayMs: 1, maxRetryAfterMs: 1 };
  const digest = `sha256:${'e'.repeat(64)}` as Digest;
  try {
    for (const [given, check] of [[fromSpec, 'signature-store in ocp.toml'], [{ ...fromSpec, signatureStore: STORE }, '--signature-store']] as const) {
      const storeOrigin = optionOrigin(given, 'signatureStore', 'signature-store');
      for (const url of [`http://127.0.0.1:${(server.address() as AddressInfo).port}/sigs/`, `http://127.0.0.1:${dead}/sigs/`]) {
        const failure = await fetchReleaseSignatures(parseSignatureStore(url, storeOrigin), digest, { release: 'release 4.16.0', storeOrigin, retry: FAST }).then(() => undefined, (e: unknown) => e);
        assert.ok(isUserError(failure) && failure.code === 'SIGNATURE_STORE_FAILED', `got ${String(failure)}`);
        assert.ok(failure.hint.startsWith(`check ${check} `), `${url}: ${failure.hint}`);
      }
    }
    assert.throws(() => parseSignatureStore('ftp://example.com/sigs', optionOrigin(fromSpec, 'signatureStore', 'signature-store')), /^UserError: signature-store \(ocp\.toml\) "ftp:\/\/example\.com\/sigs" is not an http\(s\) URL/);
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

test('an update graph endpoint from the spec or UPDATE_URL_OVERRIDE is named there in its errors; from the flag, --graph-url', async () => {
  const dead = await freePort();
  const cases = [
    [optionOrigin(fromSpec, 'graphUrl', 'graph-url'), /^check graph-url in ocp\.toml and the network/],
    [{ kind: 'env', flag: '--graph-url', variable: 'UPDATE_URL_OVERRIDE' } as const, /^check UPDATE_URL_OVERRIDE and the network/],
    [optionOrigin({ ...fromSpec, graphUrl: 'x' }, 'graphUrl', 'graph-url'), /^check --graph-url and the network/],
  ] as const;
  for (const [origin, hint] of cases) {
    const failure = await fetchUpdateGraph(`http://127.0.0.1:${dead}/graph`, 'stable-4.16', 'amd64', { origin }).then(() => undefined, (e: unknown) => e);
    assert.ok(isUserError(failure) && failure.code === 'GRAPH_UNREACHABLE', `got ${String(failure)}`);
    assert.match(failure.hint, hint);
  }
  const notUrl = await fetchUpdateGraph('not a url', 'stable-4.16', 'amd64', { origin: cases[1][0] }).then(() => undefined, (e: unknown) => e);
  assert.ok(isUserError(notUrl) && notUrl.code === 'USAGE', `got ${String(notUrl)}`);
  assert.equal(notUrl.message, 'UPDATE_URL_OVERRIDE (environment) "not a url" is not a URL');
  assert.match(notUrl.hint, /^fix or unset UPDATE_URL_OVERRIDE, or give --graph-url/);
});

test('--min-version newer than --max-version beside a spec that gives the channel is refused naming the flags, before the graph is fetched', async () => {
  const { selectionFromOptions } = await import('../../src/cli/selection-options.js');
  // The spec's channel (merged in), the versions from the flags. The graph is fetched later, while planning:
  // a selection made means the range was not checked here.
  const given = { spec: 'ocp.toml', minVersion: '4.16.4', maxVersion: '4.16.1' };
  const merged = { ...given, channel: 'stable-4.16' };
  const made = (context: { source: { close(): Promise<void> } }) => context.source.close();
  const failure = await selectionFromOptions(merged, undefined, given).then(made, (e: unknown) => e);
  assert.ok(isUserError(failure) && failure.code === 'USAGE', `got ${String(failure)}`);
  assert.equal(failure.message, '--min-version 4.16.4 is newer than --max-version 4.16.1');
  assert.deepEqual(failure.subject, { kind: 'option', name: '--min-version' });
  // Both from the spec: named by its keys.
  const fromKeys = await selectionFromOptions(merged, undefined, fromSpec).then(made, (e: unknown) => e);
  assert.ok(isUserError(fromKeys) && fromKeys.code === 'USAGE', `got ${String(fromKeys)}`);
  assert.equal(fromKeys.message, 'min-version (ocp.toml) 4.16.4 is newer than max-version (ocp.toml) 4.16.1');
});
