// Real OpenPGP release signatures for tests: a throwaway GnuPG home with a fresh key (batch generation),
// `gpg --sign` of an atomic container signature payload, and the key exported as armored and binary keyrings.

import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface TestSigner {
  readonly home: string;
  /** `gpg --export --armor` of the public key. */
  readonly armoredKeyring: string;
  /** `gpg --export` (binary) of the public key. */
  readonly binaryKeyring: string;
  sign(payload: string | Buffer): Promise<Buffer>;
  close(): Promise<void>;
}

/** The JSON a release signature signs (the shape containers/image and the OpenShift signers write). */
export function atomicPayload(digest: string, reference = 'quay.io/openshift-release-dev/ocp-release:4.16.0-x86_64', type = 'atomic container signature'): string {
  return JSON.stringify({ critical: { type, image: { 'docker-manifest-digest': digest }, identity: { 'docker-reference': reference } }, optional: { creator: 'pin-preload tests' } });
}

export async function createTestSigner(name = 'Release Signer'): Promise<TestSigner> {
  const home = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-test-gpg-'));
  const gpg = (args: string[], input?: Buffer) =>
    new Promise<Buffer>((resolve, reject) => {
      const child = execFile('gpg', ['--batch', '--homedir', home, '--pinentry-mode', 'loopback', '--passphrase', '', ...args], { encoding: 'buffer', maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`gpg ${args.join(' ')}: ${stderr.toString()}`));
        else resolve(stdout);
      });
      // gpg does not read stdin for key generation or export and may exit first: that EPIPE is not a failure.
      child.stdin?.on('error', () => undefined);
      child.stdin?.end(input ?? Buffer.alloc(0));
    });
  await gpg(['--quick-gen-key', `${name} <signer@example.com>`, 'ed25519', 'sign', 'never']);
  const armoredKeyring = path.join(home, 'keyring.asc');
  const binaryKeyring = path.join(home, 'keyring.gpg');
  await gpg(['--armor', '--output', armoredKeyring, '--export']);
  await gpg(['--output', binaryKeyring, '--export']);
  return {
    home,
    armoredKeyring,
    binaryKeyring,
    // gpg compresses a --sign'ed message by default (ZLIB or ZIP, as the release signatures are).
    sign: (payload) => gpg(['--sign'], Buffer.from(payload)),
    close: async () => {
      await run('gpgconf', ['--homedir', home, '--kill', 'all']).catch(() => undefined);
      await rm(home, { recursive: true, force: true });
    },
  };
}
