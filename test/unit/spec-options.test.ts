// How `bundle plan` and `bundle create` name an option in an error when --spec filled it in: by the spec's key
// and file, with a hint to fix the spec, as `since` is named; a flag given on the command line by the flag.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkSignatureOptions } from '../../src/cli/signature-options.js';
import { isUserError } from '../../src/util/errors.js';

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
