// Checking release signatures cryptographically against a keyring (`--release-keyring FILE`) with gpgv, the
// verify-only GnuPG tool: no key is ever imported anywhere, and each check runs in a private temp home.

import { spawn } from 'node:child_process';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { errnoCode, UserError } from '../util/errors.js';
import type { ReleaseSignature } from './release-signature.js';

/** gpgv answers in milliseconds; a hung one must not hang `bundle create`. */
const GPG_TIMEOUT_MS = 30_000;
/** Enough of gpgv's stderr to say why, not an unbounded buffer. */
const MAX_DIAGNOSTIC_BYTES = 16 * 1024;

interface RunResult {
  readonly code: number | null;
  readonly output: string;
}

function run(command: string, args: readonly string[]): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: GPG_TIMEOUT_MS });
    let output = '';
    const keep = (chunk: Buffer) => {
      if (output.length < MAX_DIAGNOSTIC_BYTES) output += chunk.toString('utf8');
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', (err) => {
      if (errnoCode(err) === 'ENOENT') reject(new UserError('GPG_MISSING', `--release-keyring needs ${command}, which is not installed`, { subject: { kind: 'option', name: '--release-keyring' } }));
      else reject(err);
    });
    child.on('close', (code) => resolve({ code, output: output.slice(0, MAX_DIAGNOSTIC_BYTES).trim() }));
  });
}

/**
 * The keyring file's first bytes (enough to tell armor from binary): the one place an unreadable keyring is
 * refused, called early by the CLI (before any planning) and again when the keyring is opened.
 */
/** `source` names the keyring in the error: the flag, or the spec key that gave it (with a hint to fix the spec). */
export async function readKeyringHead(file: string, source: { readonly label: string; readonly hint?: string | undefined } = { label: '--release-keyring' }): Promise<Buffer> {
  try {
    const handle = await open(file, 'r');
    try {
      const head = Buffer.alloc(64);
      const { bytesRead } = await handle.read(head, 0, 64, 0);
      return head.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  } catch (err) {
    throw new UserError('USAGE', `${source.label} ${file} cannot be read: ${(err as Error).message}`, { subject: { kind: 'path', name: file }, ...(source.hint !== undefined ? { hint: source.hint } : {}) });
  }
}

/** A keyring that gpgv can read, in its own temp dir: binary keyrings as they are, armored exports dearmored. */
export class ReleaseKeyring {
  private constructor(
    private readonly home: string,
    private readonly keyring: string,
  ) {}

  static async open(file: string): Promise<ReleaseKeyring> {
    const head = await readKeyringHead(file);
    const home = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-gpg-'));
    try {
      // Armored exports (what openshift/cluster-update-keys ships) start with the armor line; gpgv reads only binary keyrings.
      if (!head.toString('latin1').includes('-----BEGIN PGP')) return new ReleaseKeyring(home, path.resolve(file));
      const keyring = path.join(home, 'keyring.gpg');
      const result = await run('gpg', ['--batch', '--homedir', home, '--dearmor', '--output', keyring, path.resolve(file)]);
      if (result.code !== 0) throw new UserError('USAGE', `--release-keyring ${file} is not an OpenPGP key export: gpg --dearmor says: ${result.output}`, { subject: { kind: 'path', name: file } });
      return new ReleaseKeyring(home, keyring);
    } catch (err) {
      await rm(home, { recursive: true, force: true });
      throw err;
    }
  }

  /** gpgv's verdict on one signed message; throws naming `where` (release and N) when it is not good. */
  async verify(signature: ReleaseSignature, where: string): Promise<void> {
    const file = path.join(this.home, 'signature');
    await writeFile(file, signature.bytes);
    try {
      const result = await run('gpgv', ['--homedir', this.home, '--keyring', this.keyring, '--status-fd', '1', file]);
      if (result.code === 0 && /^\[GNUPG:\] GOODSIG /m.test(result.output) && /^\[GNUPG:\] VALIDSIG /m.test(result.output)) return;
      const reason = result.output.split('\n').filter((l) => !l.startsWith('[GNUPG:]')).join('; ') || `gpgv exited with ${String(result.code)}`;
      throw new UserError('RELEASE_SIGNATURE_UNTRUSTED', `${where} is not a good signature by a key of the release keyring: ${reason}`, { subject: { kind: 'digest', name: signature.digest } });
    } finally {
      await rm(file, { force: true });
    }
  }

  async close(): Promise<void> {
    await rm(this.home, { recursive: true, force: true });
  }
}
