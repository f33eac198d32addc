// Brings a bundle from removable media into the bundle dir: every volume copied in one read of the media,
// checked as `bundle verify` checks it (each blob against its digest, every other byte against the layout the
// sealed manifest prescribes), then renamed into place (seal last); a bad bundle leaves nothing.

import { mkdir, mkdtemp, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { importClaimName, sealedBundlePath, SEAL_SUFFIX, SIGNATURE_SUFFIX } from '../bundle/format.js';
import { pinnableImages } from '../bundle/bundle-manifest.js';
import { readLayout, verifyBundle, type VerifyReport } from '../bundle/verify.js';
import { locateBundle, type BundleFiles } from '../bundle/reader.js';
import { VolumeSet } from '../bundle/volumes.js';
import type { BundleManifest } from '../bundle/format.js';
import { isVolumeNameOf } from '../bundle/seal.js';
import { fsyncDir, removeFileDurably, writeFileAtomic } from '../util/atomic-file.js';
import { processExists } from '../util/child-process.js';
import { killPoint } from '../util/kill-point.js';
import { UserError, errnoCode, isSystemError } from '../util/errors.js';
import { bundleFingerprint, listSealFiles, missingBases, readBundles, readNodeBundle } from './bundle-dir.js';
import { desiredSet } from './retire.js';
import type { NodeConfig } from './config.js';
import { openNodeServices } from './node-services.js';
import { freeBytes } from '../util/disk.js';
import { describeBytes } from './storage-check.js';
import { bundleReadFailure, readBundleFile } from '../bundle/volume-io-error.js';
import { checkNodeBundleSignature, verifyFailure, verifyNodeBundle } from './verify.js';

/** Room kept free beyond the bundle itself: filesystem metadata, the state database's growth. */
const IMPORT_MARGIN = 64 * 2 ** 20;
const TEMP_PREFIX = '.import-';

export interface ImportResult {
  /** dir/name in the bundle dir. */
  readonly bundlePath: string;
  readonly sealPath: string;
  readonly bytesCopied: number;
  /** The same bundle (same seal, volumes intact) was already there: nothing copied. */
  readonly alreadyImported: boolean;
}

/**
 * Why a copy checked on the way in is refused: the volumes first (missing, short, not the sealed sha256),
 * in the words of the volume check, then the verifier's blob and layout problems. Stale NAME.NNN files next
 * to the bundle on the media are not copied and do not matter.
 */
function copyRejection(source: string, files: BundleFiles, report: VerifyReport, trustedKey: string | undefined): UserError | undefined {
  const problems = report.problems.filter((p) => p.kind !== 'volume-stale');
  if (problems.length === 0) return undefined;
  for (const p of problems) {
    const name = path.basename(p.subject);
    if (p.kind === 'volume-missing') return rejected(source, `volume ${p.subject} is missing`, `copy every volume listed in ${files.sealPath}`);
    if (p.kind === 'volume-size') return rejected(source, `volume ${name} has ${p.found ?? '?'}, the seal says ${p.expected ?? '?'}`);
    if (p.kind === 'volume-sha256') return rejected(source, `volume ${name} has sha256 ${p.found ?? '?'}, the seal says ${p.expected ?? '?'}`);
  }
  // The hint of a node's sync failure would suggest re-creating the bundle: for an import, copying it again.
  const trusted = trustedKey ? ` --trusted-key ${trustedKey}` : '';
  return rejected(
    source,
    verifyFailure({ ...report, problems }, files.sealPath, trustedKey).message,
    `run "pin-preload bundle verify ${source}${trusted}" for the full report; copy damaged files again, or for a bad signature use a bundle signed with the key [paths] trusted_key names`,
  );
}

function rejected(source: string, why: string, hint?: string): UserError {
  return new UserError('IMPORT_REJECTED', `bundle ${source} rejected: ${why}; nothing was imported`, { hint, subject: { kind: 'bundle', name: source } });
}

/** What an import is renaming into place (`.NAME.importing`): its pid and NAME's files other than the seal. */
interface ImportClaim {
  readonly pid: number;
  readonly name: string;
  readonly files: readonly string[];
}

/**
 * Removes leftovers of imports whose process died (kill -9, power loss): temp dirs, and the files a dead
 * import had renamed into place before its seal (with the seal in, the bundle is complete and stays).
 * Live imports are left alone.
 */
async function removeStaleTemps(bundlesDir: string): Promise<void> {
  for (const name of await readdir(bundlesDir).catch(() => [] as string[])) {
    const m = new RegExp(`^${TEMP_PREFIX.replace('.', '\\.')}(\\d+)-`).exec(name);
    if (m && !processExists(Number(m[1]))) await rm(path.join(bundlesDir, name), { recursive: true, force: true });
    if (!name.startsWith('.') || !name.endsWith('.importing')) continue;
    const claimPath = path.join(bundlesDir, name);
    const claim = JSON.parse(await readFile(claimPath, 'utf8').catch(() => '{}')) as Partial<ImportClaim>;
    if (typeof claim.pid === 'number' && processExists(claim.pid)) continue;
    if (typeof claim.name === 'string' && name === importClaimName(claim.name) && Array.isArray(claim.files)) {
      const sealed = await stat(path.join(bundlesDir, claim.name + SEAL_SUFFIX)).then(() => true, () => false);
      // Only names of this bundle (NAME, NAME.NNN, NAME.sig): a damaged claim must not remove anything else.
      const own = (f: unknown): f is string => typeof f === 'string' && (isVolumeNameOf(claim.name!, f) || f === claim.name + SIGNATURE_SUFFIX);
      if (!sealed) for (const file of claim.files.filter(own)) await rm(path.join(bundlesDir, file), { force: true });
    }
    await removeFileDurably(claimPath);
  }
}

/** Whether the seal at `a` (one in the bundle dir) holds `b`; undefined when there is none. */
async function sameBytes(a: string, b: Buffer): Promise<boolean | undefined> {
  try {
    return (await readBundleFile(a, 'the seal')).equals(b);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  }
}

async function volumesIntact(files: BundleFiles, dir: string): Promise<boolean> {
  for (const volume of files.seal!.volumes) {
    const st = await stat(path.join(dir, volume.name)).catch(() => undefined);
    if (!st || st.size !== volume.size) return false;
  }
  return true;
}

/**
 * A delta is imported only beside its bases (and theirs, along a chain): without them its images could not be
 * served whole. Checked before anything is copied, so a refused delta leaves the bundle dir as it was.
 */
async function requireBases(source: string, files: BundleFiles, manifest: BundleManifest | undefined, bundlesDir: string): Promise<void> {
  // Without a manifest (a missing volume or a damaged manifest), the copy's verification rejects it, naming the damage.
  if (!manifest?.bases) return;
  // A bundle there that cannot be read (a volume missing) is no base: it is named when a base is missing.
  const { bundles: present, unreadable } = await readBundles((await listSealFiles(bundlesDir)).filter((seal) => seal !== files.sealPath));
  const missing = missingBases(manifest, present);
  if (missing.length === 0) return;
  const names = missing.map((b) => `${b.name} (${b.manifestDigest})`).join(', ');
  const damaged = unreadable.length > 0 ? `; unreadable there: ${unreadable.map((u) => `${path.basename(u.sealPath, SEAL_SUFFIX)} (${u.why})`).join(', ')}` : '';
  throw new UserError('IMPORT_BASE_MISSING', `bundle ${source} is a delta and its base ${names} is not in ${bundlesDir}${damaged}; nothing was imported`, {
    subject: { kind: 'bundle', name: source },
    hint: `import the base bundle first ("pin-preload import ${missing[0]!.name}"), then this delta; or bring a full bundle (made without --since)`,
  });
}

export interface ImportOptions {
  readonly signal?: AbortSignal;
  readonly log?: (line: string) => void;
  /** Also recompute each volume's sha256 and compare it with the seal, as `bundle verify --volume-checksums`. */
  readonly volumeChecksums?: boolean;
}

/**
 * Imports the bundle that `source` (its tar, any volume, or its seal) belongs to into [paths] bundles,
 * and registers it in the state database and the mirror's bundle index.
 */
export async function importBundle(
  config: NodeConfig,
  source: string,
  options: ImportOptions = {},
): Promise<ImportResult> {
  const files = await locateBundle(source);
  if (!files.seal || !files.sealBytes) {
    throw rejected(source, `it has no seal (${files.sealPath})`, 'copy the .seal.json file (and .sig) that came with the bundle next to its volumes');
  }
  // The media's volumes are opened once, and the manifest read once (checked against the seal), for the base
  // check and the copy's verification alike.
  const volumes = new VolumeSet(files.volumes);
  try {
    return await importOpened(config, source, { ...files, seal: files.seal, sealBytes: files.sealBytes }, volumes, options);
  } catch (err) {
    // Every step's system error (the media's reads, the bundle dir's writes) as the user's, in one place.
    throw importFailure(err, files.name, path.resolve(config.paths.bundles));
  } finally {
    await volumes.close();
  }
}

async function importOpened(
  config: NodeConfig,
  source: string,
  files: BundleFiles & { seal: NonNullable<BundleFiles['seal']>; sealBytes: Buffer },
  volumes: VolumeSet,
  options: ImportOptions,
): Promise<ImportResult> {
  const log = options.log ?? (() => undefined);
  const bundlesDir = path.resolve(config.paths.bundles);
  const targetSeal = path.join(bundlesDir, files.name + SEAL_SUFFIX);
  const bundlePath = path.join(bundlesDir, files.name);
  const layout = await readLayout(files, volumes);
  await requireBases(source, files, layout.manifest, bundlesDir);
  if (path.resolve(files.dir) === bundlesDir) {
    // Already in place (copied by hand, or the second half of `preload BUNDLE`): verify and register only.
    await register(config, targetSeal, true);
    return { bundlePath, sealPath: targetSeal, bytesCopied: 0, alreadyImported: true };
  }
  // A bundle dir that cannot be written (EROFS: outside the units' ReadWritePaths=) fails here or at mkdtemp.
  await mkdir(bundlesDir, { recursive: true });
  await removeStaleTemps(bundlesDir);

  const existingSeal = await sameBytes(targetSeal, files.sealBytes);
  if (existingSeal === false) {
    throw rejected(source, `a different bundle named ${files.name} is already in ${bundlesDir}`, `remove ${targetSeal} and its volumes first, or rename the bundle on the bastion`);
  }
  if (existingSeal === true && (await volumesIntact(files, bundlesDir))) {
    log(`${files.name} is already in ${bundlesDir}`);
    await register(config, targetSeal, true); // verifies unless verified with these very files
    return { bundlePath, sealPath: targetSeal, bytesCopied: 0, alreadyImported: true };
  }

  // Read once: checked against the trusted key (when there is one) and written to the copy from these bytes.
  const signatureBytes = files.signaturePath ? await readBundleFile(files.signaturePath, 'the signature') : undefined;
  const needed = files.seal.totalSize + files.sealBytes.length + (signatureBytes?.length ?? 0) + IMPORT_MARGIN;
  const available = await freeBytes(bundlesDir).catch((err: unknown) => {
    throw new UserError('IMPORT_FAILED', `importing bundle ${files.name} into ${bundlesDir} failed: cannot read the free space there (${errnoCode(err) ?? (err as Error).message}); nothing was copied`, {
      subject: { kind: 'path', name: bundlesDir },
      hint: 'check [paths] bundles names a directory this service may write (ReadWritePaths= in both units)',
    });
  });
  if (needed > available) {
    throw new UserError(
      'IMPORT_NO_SPACE',
      `not enough space in ${bundlesDir} for bundle ${files.name}: needs ${describeBytes(needed)}, available ${describeBytes(available)}`,
      { hint: 'free space there or set [paths] bundles to a larger filesystem; nothing was copied', subject: { kind: 'path', name: bundlesDir } },
    );
  }

  const temp = await mkdtemp(path.join(bundlesDir, `${TEMP_PREFIX}${process.pid}-`));
  killPoint('import:copying');
  try {
    // One read of the media: each byte is written to the copy from the buffer it is checked in (a blob's
    // bytes hashed against its digest, the rest compared with the layout), so what is checked is what was written.
    const bytesCopied = files.seal.totalSize;
    log(`copying and verifying ${files.seal.volumes.length} volume(s) from ${files.dir} (${describeBytes(bytesCopied)})`);
    const report = await verifyBundle(
      { ...files, ...(signatureBytes ? { signatureBytes } : {}) },
      {
        copyInto: temp,
        ...(options.volumeChecksums ? { volumeChecksums: true } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
        ...(config.paths.trustedKey ? { trustedKey: config.paths.trustedKey } : {}),
      },
      { volumes, read: layout },
    );
    const rejection = copyRejection(source, files, report, config.paths.trustedKey);
    if (rejection) throw rejection;
    const sealName = files.name + SEAL_SUFFIX;
    const signatureName = files.name + SIGNATURE_SUFFIX;
    await writeSmall(path.join(temp, sealName), files.sealBytes);
    if (signatureBytes) await writeSmall(path.join(temp, signatureName), signatureBytes);

    // Into place: volumes and signature first, the seal last, so a seal in the bundle dir means "complete".
    // The claim stands beside them meanwhile: `serve` takes no unsealed tar it names, and if this process
    // dies before the seal is in, the next import removes what it lists.
    killPoint('import:verified');
    const claim: ImportClaim = { pid: process.pid, name: files.name, files: [...files.seal.volumes.map((v) => v.name), ...(signatureBytes ? [signatureName] : [])] };
    await writeFileAtomic(path.join(bundlesDir, importClaimName(files.name)), `${JSON.stringify(claim)}\n`);
    killPoint('import:claimed');
    for (const [i, volume] of files.seal.volumes.entries()) {
      await rename(path.join(temp, volume.name), path.join(bundlesDir, volume.name));
      killPoint(`import:after-volume-${i + 1}`);
    }
    if (signatureBytes) await rename(path.join(temp, signatureName), path.join(bundlesDir, signatureName));
    await fsyncDir(bundlesDir);
    killPoint('import:before-seal');
    await rename(path.join(temp, sealName), targetSeal);
    await fsyncDir(bundlesDir);
    killPoint('import:after-seal');
    await removeFileDurably(path.join(bundlesDir, importClaimName(files.name)));
    killPoint('import:placed');
    log(`imported ${files.name} into ${bundlesDir} (${describeBytes(bytesCopied)})`);
    await register(config, targetSeal, false);
    return { bundlePath, sealPath: targetSeal, bytesCopied, alreadyImported: false };
  } finally {
    await rm(temp, { recursive: true, force: true });
  }
}

/**
 * A system error of the import as a user error: the pre-flight check passed but something else filled the
 * disk meanwhile (another writer, a quota), the media could not be read, or the import was cancelled.
 */
function importFailure(err: unknown, name: string, bundlesDir: string): unknown {
  if (err instanceof UserError) return err;
  const code = errnoCode(err);
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new UserError('IMPORT_NO_SPACE', `${bundlesDir} filled up while importing bundle ${name} (${code}); the import did not complete`, {
      subject: { kind: 'path', name: bundlesDir },
      cause: err,
    });
  }
  if (code === 'ABORT_ERR') return new UserError('IMPORT_CANCELLED', `the import of bundle ${name} was cancelled; nothing was imported`, { subject: { kind: 'bundle', name }, cause: err });
  const failed = (why: Error) => `importing bundle ${name} into ${bundlesDir} failed: ${why.message}; the import did not complete`;
  // A file of the media that cannot be read gets the code every reader of a bundle gives it.
  const unreadable = bundleReadFailure(err, name, failed);
  if (unreadable !== err) return unreadable;
  if (isSystemError(err)) {
    // The bundle dir's own failure (a write of the copy, EROFS): the message names the file, the subject the
    // dir (the copy's temp dir is gone by the time anyone reads this).
    return new UserError('IMPORT_FAILED', failed(err as Error), { subject: { kind: 'path', name: bundlesDir }, cause: err });
  }
  return err; // not a system error: a bug, reported with its stack
}

async function writeSmall(file: string, bytes: Buffer): Promise<void> {
  const handle = await open(file, 'wx', 0o644);
  try {
    await handle.writeFile(bytes);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Records the bundle as verified (with its in-place fingerprint) and indexes it for the mirror. The bundle is in
 * the bundle dir by then: a system error here (the state database's dir, its disk) says so, not that the import
 * failed.
 */
async function register(config: NodeConfig, sealPath: string, verifyFirst: boolean): Promise<void> {
  await recordBundle(config, sealPath, verifyFirst).catch((err: unknown) => {
    throw registrationFailure(err, sealPath, config);
  });
}

/** SQLite's codes for a database file it cannot open or write (better-sqlite3's SqliteError.code). */
const STATE_STORAGE_FAILURE = /^SQLITE_(IOERR|FULL|READONLY|CANTOPEN)/;

/**
 * An error of registering a bundle already in the bundle dir: a file of it that cannot be read is
 * BUNDLE_READ_FAILED as anywhere; the state database's dir or file that cannot be made or written says the
 * bundle is there but not registered. Anything else (ours, a bug) as it is.
 */
function registrationFailure(err: unknown, sealPath: string, config: NodeConfig): unknown {
  const bundle = sealedBundlePath(sealPath);
  const unreadable = bundleReadFailure(err, bundle);
  if (unreadable !== err) return unreadable;
  const stateUnopened = err instanceof UserError && err.code === 'STATE_OPEN_FAILED';
  const stateUnwritable = !(err instanceof UserError) && (isSystemError(err) || STATE_STORAGE_FAILURE.test(errnoCode(err) ?? ''));
  if (!stateUnopened && !stateUnwritable) return err;
  const failing = stateUnwritable ? (err as NodeJS.ErrnoException).path : undefined;
  return new UserError('IMPORT_FAILED', `bundle ${path.basename(bundle)} is in ${path.dirname(bundle)} but could not be registered: ${(err as Error).message}`, {
    subject: { kind: 'path', name: typeof failing === 'string' ? failing : config.paths.state },
    hint: 'fix what the message names ([paths] state: its directory, its disk), then import again: the bundle is not copied again',
    cause: err,
  });
}

async function recordBundle(config: NodeConfig, sealPath: string, verifyFirst: boolean): Promise<void> {
  const services = await openNodeServices(config);
  try {
    const bundle = await readNodeBundle(sealPath);
    services.state.upsertBundle({
      path: bundle.path,
      manifestDigest: bundle.manifestDigest,
      ...(bundle.manifest.release ? { release: bundle.manifest.release.version } : {}),
      imageCount: pinnableImages(bundle.manifest).length,
      fingerprint: bundle.fingerprint,
    });
    if (verifyFirst && !services.state.isBundleVerified(bundle.path, bundle.fingerprint)) await verifyNodeBundle(sealPath, { trustedKey: config.paths.trustedKey });
    if (config.paths.trustedKey) await checkNodeBundleSignature(sealPath, config.paths.trustedKey);
    // The renames kept sizes and mtimes, so the fingerprint of the verified copy is the one in place.
    services.state.markBundleVerified(bundle.path, await bundleFingerprint(sealPath));
    await services.store.registerBundle(sealPath);
    // The node's desired image set changed: a new desired generation, its images pending until a preload
    // (the service starts one as soon as it sees the bundle), as MachineConfigNode shows a new spec.
    // Of the bundles that can be read: one that cannot fails the next sync, naming it.
    const { bundles } = await readBundles(await listSealFiles(config.paths.bundles));
    const desired = desiredSet(bundles, config.pins.keepReleases, services.state);
    services.state.setDesired(desired.setKey, desired.images.map((i) => ({ name: i.name, bundle: i.bundle })));
  } finally {
    services.close();
  }
}
