// Ed25519 signing of bundles: `keygen` writes a key pair, `bundle create --sign-key` signs the seal's exact
// bytes into NAME.sig, and verify checks it against a trusted public key.

import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { sha256Of } from '../oci/digest.js';
import { writeFileAtomic } from '../util/atomic-file.js';
import { errnoCode, UserError } from '../util/errors.js';

export const SIGNATURE_FORMAT = 'pin-preload.signature';
export const SIGNATURE_ALGORITHM = 'ed25519';

export interface BundleSignature {
  readonly format: typeof SIGNATURE_FORMAT;
  readonly algorithm: typeof SIGNATURE_ALGORITHM;
  /** "sha256:<hex>" of the public key's DER (SubjectPublicKeyInfo). */
  readonly keyId: string;
  /** base64 Ed25519 signature over the seal file's exact bytes. */
  readonly signature: string;
}

export function keyIdOf(publicKey: KeyObject): string {
  return sha256Of(publicKey.export({ type: 'spki', format: 'der' }));
}

/** Writes KEY (PKCS#8 PEM, mode 0600) and KEY.pub (SPKI PEM); refuses to overwrite an existing key. */
export async function generateSigningKey(keyPath: string): Promise<{ keyPath: string; publicKeyPath: string; keyId: string }> {
  for (const file of [keyPath, `${keyPath}.pub`]) {
    try {
      await fs.stat(file);
      throw new UserError('KEY_EXISTS', `${file} already exists; not overwriting a key`, { subject: { kind: 'path', name: file } });
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
    }
  }
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  await writeFileAtomic(keyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 0o600);
  await writeFileAtomic(`${keyPath}.pub`, publicKey.export({ type: 'spki', format: 'pem' }) as string, 0o644);
  return { keyPath, publicKeyPath: `${keyPath}.pub`, keyId: keyIdOf(publicKey) };
}

async function readKeyFile(file: string, what: string): Promise<Buffer> {
  try {
    return await fs.readFile(file);
  } catch (err) {
    throw new UserError('KEY_UNREADABLE', `cannot read ${what} ${file}: ${(err as Error).message}`, { subject: { kind: 'path', name: file } });
  }
}

export async function loadPrivateKey(file: string): Promise<KeyObject> {
  const pem = await readKeyFile(file, 'signing key');
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (err) {
    throw new UserError('KEY_INVALID', `${file} is not a PEM private key: ${(err as Error).message}`, { subject: { kind: 'path', name: file } });
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new UserError('KEY_INVALID', `${file} is a ${key.asymmetricKeyType} key; bundles are signed with Ed25519`, { subject: { kind: 'path', name: file } });
  return key;
}

export async function loadPublicKey(file: string): Promise<KeyObject> {
  const pem = await readKeyFile(file, 'public key');
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (err) {
    throw new UserError('KEY_INVALID', `${file} is not a PEM public key: ${(err as Error).message}`, { subject: { kind: 'path', name: file } });
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new UserError('KEY_INVALID', `${file} is a ${key.asymmetricKeyType} key; bundles are signed with Ed25519`, { subject: { kind: 'path', name: file } });
  return key;
}

/** The .sig file's bytes for `sealBytes`, signed with the key in `keyFile`. */
export async function signSeal(sealBytes: Buffer, keyFile: string): Promise<Buffer> {
  const privateKey = await loadPrivateKey(keyFile);
  const signature: BundleSignature = {
    format: SIGNATURE_FORMAT,
    algorithm: SIGNATURE_ALGORITHM,
    keyId: keyIdOf(createPublicKey(privateKey)),
    signature: sign(null, sealBytes, privateKey).toString('base64'),
  };
  return Buffer.from(`${JSON.stringify(signature, null, 2)}\n`, 'utf8');
}

export type SignatureCheck =
  | { readonly ok: true; readonly keyId: string }
  | { readonly ok: false; readonly reason: string };

/** Checks a .sig file's bytes over `sealBytes` against `trusted`. */
export function checkSignature(sealBytes: Buffer, signatureBytes: Buffer, trusted: KeyObject): SignatureCheck {
  let doc: Partial<BundleSignature>;
  try {
    doc = JSON.parse(signatureBytes.toString('utf8')) as Partial<BundleSignature>;
  } catch {
    return { ok: false, reason: 'the signature file is not JSON' };
  }
  if (doc.format !== SIGNATURE_FORMAT || doc.algorithm !== SIGNATURE_ALGORITHM || typeof doc.signature !== 'string') {
    return { ok: false, reason: `the signature file is not a ${SIGNATURE_FORMAT} (${SIGNATURE_ALGORITHM}) document` };
  }
  const trustedId = keyIdOf(trusted);
  if (doc.keyId !== trustedId) return { ok: false, reason: `signed by key ${String(doc.keyId)}, not by the trusted key ${trustedId}` };
  const valid = verify(null, sealBytes, trusted, Buffer.from(doc.signature, 'base64'));
  return valid ? { ok: true, keyId: trustedId } : { ok: false, reason: `the signature does not match the seal's bytes (key ${trustedId})` };
}
