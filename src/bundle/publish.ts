// Puts a finished bundle in place at --output so that a crash at any point leaves, to every reader, the old
// complete bundle, nothing, or the new complete one; a re-run of `bundle create` finishes what was started.
//
// Several files cannot be renamed at once, so publishing is a commit record plus roll-forward: the new seal
// and signature are first written into the work dir, then the marker NAME.partial/publishing (the commit);
// from then on a reader refuses the output (BUNDLE_PUBLISH_INTERRUPTED) until every file is in place and the
// marker is gone. At the output the new seal goes in before any new volume, so no volume ever sits there
// without a seal. docs/bundle-format.md ("Publishing") has the order and what each crash leaves.

import { promises as fs } from 'node:fs';
import path from 'node:path';
import { SEAL_SUFFIX, SIGNATURE_SUFFIX, type BundleSeal } from './format.js';
import { isVolumeNameOf, parseSeal } from './seal.js';
import { LOCK_FILE } from './work-lock.js';
import { fsyncDir, removeFileDurably, writeFileAtomic } from '../util/atomic-file.js';
import { sizeIfPresent } from '../util/disk.js';
import { errnoCode, UserError } from '../util/errors.js';
import { killPoint } from '../util/kill-point.js';

/** The work dir of `bundle create` for a bundle: NAME.partial next to it. */
export const WORK_DIR_SUFFIX = '.partial';
/** In the work dir: present from the commit of a publish until every file is in place. */
const PUBLISH_MARKER = 'publishing';

export interface Published {
  readonly seal: BundleSeal;
  readonly sealPath: string;
  readonly signaturePath?: string;
}

async function readIfPresent(file: string): Promise<Buffer | undefined> {
  try {
    return await fs.readFile(file);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  }
}

/** Whether a publish of bundle `name` in `dir` was committed and has not finished (readers must refuse it). */
export async function publishInterrupted(dir: string, name: string): Promise<boolean> {
  return (await sizeIfPresent(path.join(dir, name + WORK_DIR_SUFFIX, PUBLISH_MARKER))) !== undefined;
}

/**
 * Writes the new seal (and signature, or removes a stale one) into the work dir, then the commit marker.
 * A crash before the marker leaves the output untouched; after it, finishPublish rolls forward.
 */
export async function commitPublish(workDir: string, name: string, seal: BundleSeal, sealBytes: Buffer, signature: Buffer | undefined): Promise<void> {
  const staged = path.join(workDir, name + SIGNATURE_SUFFIX);
  if (signature !== undefined) await writeFileAtomic(staged, signature);
  else await removeFileDurably(staged);
  await writeFileAtomic(path.join(workDir, name + SEAL_SUFFIX), sealBytes);
  killPoint('publish:prepared');
  await writeFileAtomic(path.join(workDir, PUBLISH_MARKER), `${seal.manifestDigest}\n`);
  killPoint('publish:committed');
}

/** Files at the output that are not part of the bundle the seal describes: other NAME/NAME.NNN, crashed temp files. */
async function strayOutputs(dir: string, name: string, seal: BundleSeal): Promise<string[]> {
  const keep = new Set(seal.volumes.map((v) => v.name));
  const tempOf = (file: string) => (e: string) => e.startsWith(`.${file}.`) && e.endsWith('.tmp');
  return (await fs.readdir(dir)).filter(
    (e) => (isVolumeNameOf(name, e) && !keep.has(e)) || tempOf(name + SEAL_SUFFIX)(e) || tempOf(name + SIGNATURE_SUFFIX)(e),
  );
}

/**
 * Finishes a committed publish (this run's, or one a crash interrupted): stale volumes out, the signature and
 * the seal in, then the volumes, then the marker away. Every step is idempotent, so it can be cut anywhere and
 * run again. Returns undefined when no publish is pending.
 */
export async function finishPublish(dir: string, name: string, workDir: string): Promise<Published | undefined> {
  const marker = path.join(workDir, PUBLISH_MARKER);
  if ((await sizeIfPresent(marker)) === undefined) return undefined;
  const stagedSeal = path.join(workDir, name + SEAL_SUFFIX);
  const stagedSignature = path.join(workDir, name + SIGNATURE_SUFFIX);
  const sealBytes = await fs.readFile(stagedSeal);
  const seal = parseSeal(sealBytes, name, stagedSeal);
  const signature = await readIfPresent(stagedSignature);
  const sealPath = path.join(dir, name + SEAL_SUFFIX);
  const signaturePath = path.join(dir, name + SIGNATURE_SUFFIX);

  // The old bundle's extra volumes go while a seal is still there (the old one), before the new seal lists fewer.
  for (const stray of await strayOutputs(dir, name, seal)) await fs.rm(path.join(dir, stray), { force: true });
  await fsyncDir(dir);
  killPoint('publish:after-stale');
  if (signature) await writeFileAtomic(signaturePath, signature);
  else await removeFileDurably(signaturePath);
  killPoint('publish:after-signature');
  await writeFileAtomic(sealPath, sealBytes);
  killPoint('publish:after-seal');
  for (const [i, volume] of seal.volumes.entries()) {
    const target = path.join(dir, volume.name);
    try {
      await fs.rename(path.join(workDir, volume.name), target);
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
      // Moved by the interrupted run already; anything else means someone removed it meanwhile.
      if ((await sizeIfPresent(target)) !== volume.size) {
        throw new UserError('BUNDLE_VOLUME_MISSING', `bundle volume ${target} is missing: it was removed while bundle create was putting the bundle in place`, {
          subject: { kind: 'path', name: target },
          hint: `remove ${workDir}, ${sealPath} and the bundle's volumes, then run the same command again`,
        });
      }
    }
    killPoint(`publish:after-volume-${i + 1}`);
  }
  await fsyncDir(dir);
  killPoint('publish:after-volumes');

  // The journal goes before the marker: a crash in between rolls forward again instead of resuming a download.
  const staged = new Set([LOCK_FILE, PUBLISH_MARKER, name + SEAL_SUFFIX, name + SIGNATURE_SUFFIX]);
  for (const entry of await fs.readdir(workDir)) if (!staged.has(entry)) await fs.rm(path.join(workDir, entry), { recursive: true, force: true });
  await fsyncDir(workDir);
  await removeFileDurably(marker);
  killPoint('publish:done');
  await fs.rm(stagedSeal, { force: true });
  await fs.rm(stagedSignature, { force: true });
  return { seal, sealPath, ...(signature ? { signaturePath } : {}) };
}
