// Checking release signatures cryptographically against a keyring (`--release-keyring FILE`) with gpgv, the
// verify-only GnuPG tool: no key is ever imported anywhere, and each check runs in a private temp home.

import { spawn } from 'node:child_process';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { errnoCode, UserError } from '../util/errors.js';
import { flagOrigin, originFixHint, originLabel, originToCheck, type OptionOrigin } from '../util/option-origin.js';
import type { ReleaseSignature } from './release-signature.js';

/** gpgv answers in milliseconds; a hung one must not hang `bundle create`. */
const GPG_TIMEOUT_MS = 30_000;
/** Enough of gpgv's stderr to say why, not an unbounded buffer. */
const MAX_DIAGNOSTIC_BYTES = 16 * 1024;

interface RunResult {
  readonly code: number | null;
  readonly output: string;
}

/** The keyring given by the flag: what `bundle verify` has, and the default. */
const KEYRING_FLAG = flagOrigin('--release-keyring');

/** The hint of an error about the keyring's own content: the spec's fix when it came from one. */
const fixHint = (origin: OptionOrigin) => {
  const hint = originFixHint(origin);
  return hint !== undefined ? { hint } : {};
};

function run(command: string, args: readonly string[], origin: OptionOrigin): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: GPG_TIMEOUT_MS });
    let output = '';
    const keep = (chunk: Buffer) => {
      if (output.length < MAX_DIAGNOSTIC_BYTES) output += chunk.toString('utf8');
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', (err) => {
      if (errnoCode(err) === 'ENOENT') {
        const label = originLabel(origin);
        const hint = origin.kind === 'flag' ? {} : { hint: `install GnuPG (${command}), or leave out ${originToCheck(origin)}` };
        reject(new UserError('GPG_MISSING', `${label} needs ${command}, which is not installed`, { subject: { kind: 'option', name: label }, ...hint }));
      } else reject(err);
    });
    child.on('close', (code) => resolve({ code, output: output.slice(0, MAX_DIAGNOSTIC_BYTES).trim() }));
  });
}

/**
 * The keyring file's first bytes (enough to tell armor from binary): the one place an unreadable keyring is
 * refused, called early by the CLI (before any planning) and again when the keyring is opened. `origin` names
 * the keyring in the error: the flag, or the spec key that gave it (with a hint to fix the spec).
 */
export async function readKeyringHead(file: string, origin: OptionOrigin = KEYRING_FLAG): Promise<Buffer> {
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
    throw new UserError('USAGE', `${originLabel(origin)} ${file} cannot be read: ${(err as Error).message}`, { subject: { kind: 'path', name: file }, ...fixHint(origin) });
  }
}

/** A keyring that gpgv can read, in its own temp dir: binary keyrings as they are, armored exports dearmored. */
export class ReleaseKeyring {
  private constructor(
    private readonly home: string,
    private readonly keyring: string,
    /** The keyring as given, and where: errors about what it verifies name both. */
    private readonly file: string,
    private readonly origin: OptionOrigin,
  ) {}

  /** `origin` is where `file` was given (the flag, or a spec key): every later error about the keyring names it. */
  static async open(file: string, origin: OptionOrigin = KEYRING_FLAG): Promise<ReleaseKeyring> {
    const head = await readKeyringHead(file, origin);
    const home = await mkdtemp(path.join(os.tmpdir(), 'pin-preload-gpg-'));
    try {
      // Armored exports (what openshift/cluster-update-keys ships) start with the armor line; gpgv reads only binary keyrings.
      if (!head.toString('latin1').includes('-----BEGIN PGP')) return new ReleaseKeyring(home, path.resolve(file), file, origin);
      const keyring = path.join(home, 'keyring.gpg');
      const result = await run('gpg', ['--batch', '--homedir', home, '--dearmor', '--output', keyring, path.resolve(file)], origin);
      if (result.code !== 0) throw new UserError('USAGE', `${originLabel(origin)} ${file} is not an OpenPGP key export: gpg --dearmor says: ${result.output}`, { subject: { kind: 'path', name: file }, ...fixHint(origin) });
      return new ReleaseKeyring(home, keyring, file, origin);
    } catch (err) {
      await rm(home, { recursive: true, force: true });
      throw err;
    }
  }

  /** gpgv's verdict on one signed message; throws naming `where` (release and N) and the keyring when it is not good. */
  async verify(signature: ReleaseSignature, where: string): Promise<void> {
    const file = path.join(this.home, 'signature');
    await writeFile(file, signature.bytes);
    try {
      const result = await run('gpgv', ['--homedir', this.home, '--keyring', this.keyring, '--status-fd', '1', file], this.origin);
      if (result.code === 0 && /^\[GNUPG:\] GOODSIG /m.test(result.output) && /^\[GNUPG:\] VALIDSIG /m.test(result.output)) return;
      const reason = result.output.split('\n').filter((l) => !l.startsWith('[GNUPG:]')).join('; ') || `gpgv exited with ${String(result.code)}`;
      // From a spec, the keyring to fix (or override) is named in the hint; the code's own hint says which keyring is right.
      const hint = this.origin.kind === 'flag' ? {} : { hint: `use the right keyring (OpenShift: openshift/cluster-update-keys): fix ${originToCheck(this.origin)}, or give ${this.origin.flag}` };
      throw new UserError('RELEASE_SIGNATURE_UNTRUSTED', `${where} is not a good signature by a key of the release keyring (${originLabel(this.origin)} ${this.file}): ${reason}`, { subject: { kind: 'digest', name: signature.digest }, ...hint });
    } finally {
      await rm(file, { force: true });
    }
  }

  async close(): Promise<void> {
    await rm(this.home, { recursive: true, force: true });
  }
}
