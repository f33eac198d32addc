// The seal (NAME.seal.json): volume names, sizes and sha256, and the manifest's digest, next to the volumes.
// Written last and atomically by the writer, so a bundle without a seal is never mistaken for a complete one.

import { BUNDLE_FORMAT, isReadableFormatVersion, MAX_VOLUMES, READABLE_FORMAT_VERSIONS, type BundleSeal, type SealVolume } from './format.js';
import { isDigest, type Digest } from '../oci/digest.js';
import { UserError } from '../util/errors.js';

const SHA256_HEX = /^[a-f0-9]{64}$/;

function invalid(where: string, why: string): UserError {
  return new UserError('BUNDLE_SEAL_INVALID', `${where}: invalid bundle seal: ${why}`, {
    subject: { kind: 'path', name: where },
  });
}

/** The volume names a seal may list for a bundle named `name`: NAME itself, or NAME.001 … NAME.999. */
export function isVolumeNameOf(name: string, volumeName: string): boolean {
  return volumeName === name || (volumeName.startsWith(`${name}.`) && /^\d{3}$/.test(volumeName.slice(name.length + 1)));
}

/** Parses and checks a seal; volume names must belong to `name` so a seal can never point elsewhere. */
export function parseSeal(bytes: Buffer, name: string, where: string): BundleSeal {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw invalid(where, `not JSON (${(err as Error).message})`);
  }
  if (typeof doc !== 'object' || doc === null) throw invalid(where, 'not a JSON object');
  const seal = doc as Record<string, unknown>;
  if (seal.format !== BUNDLE_FORMAT) throw invalid(where, `format is ${JSON.stringify(seal.format)}, expected "${BUNDLE_FORMAT}"`);
  if (!isReadableFormatVersion(seal.formatVersion)) {
    throw new UserError('BUNDLE_FORMAT_UNSUPPORTED', `${where}: bundle format version ${String(seal.formatVersion)} is not supported (this pin-preload reads versions ${READABLE_FORMAT_VERSIONS.join(', ')})`, {
      subject: { kind: 'path', name: where },
    });
  }
  if (typeof seal.manifestDigest !== 'string' || !isDigest(seal.manifestDigest)) throw invalid(where, 'bad manifestDigest');
  if (!Array.isArray(seal.volumes) || seal.volumes.length === 0 || seal.volumes.length > MAX_VOLUMES) throw invalid(where, `volumes must list 1 to ${MAX_VOLUMES} volumes`);
  const volumes: SealVolume[] = seal.volumes.map((v: unknown, i: number) => {
    const vol = (typeof v === 'object' && v !== null ? v : {}) as Record<string, unknown>;
    if (typeof vol.name !== 'string' || !isVolumeNameOf(name, vol.name)) throw invalid(where, `volume ${i + 1} has name ${JSON.stringify(vol.name)}, not ${name} or ${name}.NNN`);
    if (typeof vol.size !== 'number' || !Number.isSafeInteger(vol.size) || vol.size < 0) throw invalid(where, `volume ${vol.name} has a bad size`);
    if (typeof vol.sha256 !== 'string' || !SHA256_HEX.test(vol.sha256)) throw invalid(where, `volume ${vol.name} has a bad sha256`);
    return { name: vol.name, size: vol.size, sha256: vol.sha256 };
  });
  const total = volumes.reduce((sum, v) => sum + v.size, 0);
  if (seal.totalSize !== total) throw invalid(where, `totalSize ${String(seal.totalSize)} is not the sum of the volume sizes (${total})`);
  return {
    format: BUNDLE_FORMAT,
    formatVersion: seal.formatVersion,
    manifestDigest: seal.manifestDigest as Digest,
    totalSize: total,
    volumes,
  };
}

/** The seal's canonical bytes (the signature is over exactly these). */
export function serializeSeal(seal: BundleSeal): Buffer {
  return Buffer.from(`${JSON.stringify(seal, null, 2)}\n`, 'utf8');
}
