// The resume journal of `bundle create`, kept in the work dir next to the output: the frozen layout key,
// per-blob bytes written so far (fixed 8-byte slots), and an fsynced log of blobs verified and on disk.

import fs from 'node:fs';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { isDigest, type Digest } from '../oci/digest.js';
import { writeFileAtomic } from '../util/atomic-file.js';
import { errnoCode } from '../util/errors.js';
import type { UncompressedSize } from './bundle-manifest.js';

const pwrite = promisify(fs.write);
const JOURNAL_VERSION = 1;
const JOURNAL_FILE = 'journal.json';
const PROGRESS_FILE = 'progress.bin';
const DONE_FILE = 'done.log';
const SLOT = 8;

export interface JournalHeader {
  readonly journalVersion: number;
  /** sha256 over the layout (and everything of the manifest but `created`): a different plan → start over. */
  readonly layoutKey: string;
  /** The first run's timestamp, kept so that a resumed bundle is the one the first run would have made. */
  readonly created: string;
  readonly blobCount: number;
}

export interface BlobDone {
  readonly digest: Digest;
  readonly uncompressed: UncompressedSize;
}

/** What an earlier run left: why it cannot be resumed, or what it finished. */
export type JournalState =
  | { readonly kind: 'absent' }
  | { readonly kind: 'different-plan'; readonly header: JournalHeader }
  | { readonly kind: 'resumable'; readonly header: JournalHeader; readonly done: ReadonlyMap<Digest, UncompressedSize>; readonly progress: readonly number[] };

/** Reads the journal in `workDir` against the current plan's layout key. */
export async function readJournal(workDir: string, layoutKey: string): Promise<JournalState> {
  let header: JournalHeader;
  try {
    header = JSON.parse(await fsp.readFile(path.join(workDir, JOURNAL_FILE), 'utf8')) as JournalHeader;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return { kind: 'absent' };
    // An unreadable journal cannot be trusted: treat the work as belonging to another plan.
    return { kind: 'different-plan', header: { journalVersion: 0, layoutKey: '', created: '', blobCount: 0 } };
  }
  if (header.journalVersion !== JOURNAL_VERSION || header.layoutKey !== layoutKey) return { kind: 'different-plan', header };
  const progress = new Array<number>(header.blobCount).fill(0);
  try {
    const slots = await fsp.readFile(path.join(workDir, PROGRESS_FILE));
    for (let i = 0; i < header.blobCount && (i + 1) * SLOT <= slots.length; i++) progress[i] = Number(slots.readBigUInt64LE(i * SLOT));
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw err;
  }
  const done = new Map<Digest, UncompressedSize>();
  try {
    const log = await fsp.readFile(path.join(workDir, DONE_FILE), 'utf8');
    // Only whole lines count: a line cut by a crash was never acknowledged.
    for (const line of log.split('\n').slice(0, -1)) {
      const [digest, size, kind] = line.split(' ');
      if (digest && isDigest(digest) && size && /^\d+$/.test(size) && (kind === 'exact' || kind === 'estimated')) {
        done.set(digest, { size: Number(size), estimated: kind === 'estimated' });
      }
    }
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw err;
  }
  return { kind: 'resumable', header, done, progress };
}

/** The open journal of a running `bundle create`. */
export class Journal {
  private constructor(
    readonly workDir: string,
    private readonly progressFd: number,
    private readonly doneFd: number,
  ) {}

  /** Starts a fresh journal (the work dir must be empty) or reopens the one readJournal found resumable. */
  static async open(workDir: string, header: JournalHeader, fresh: boolean): Promise<Journal> {
    await fsp.mkdir(workDir, { recursive: true });
    if (fresh) await writeFileAtomic(path.join(workDir, JOURNAL_FILE), `${JSON.stringify(header, null, 2)}\n`);
    const progressPath = path.join(workDir, PROGRESS_FILE);
    const progressFd = fs.openSync(progressPath, fs.existsSync(progressPath) ? 'r+' : 'w+');
    fs.ftruncateSync(progressFd, header.blobCount * SLOT);
    const doneFd = fs.openSync(path.join(workDir, DONE_FILE), 'a');
    return new Journal(workDir, progressFd, doneFd);
  }

  /** Records that blob `index` has its first `bytes` bytes written (not yet fsynced: a crash re-checks them). */
  async recordProgress(index: number, bytes: number): Promise<void> {
    const slot = Buffer.alloc(SLOT);
    slot.writeBigUInt64LE(BigInt(bytes));
    await pwrite(this.progressFd, slot, 0, SLOT, index * SLOT);
  }

  /** Appends verified blobs whose bytes are already fsynced, in one write; durable when this returns. */
  async recordDone(done: readonly BlobDone[]): Promise<void> {
    if (done.length === 0) return;
    const lines = done.map((d) => `${d.digest} ${d.uncompressed.size} ${d.uncompressed.estimated ? 'estimated' : 'exact'}\n`).join('');
    await promisify(fs.write)(this.doneFd, lines);
    await promisify(fs.fdatasync)(this.doneFd);
  }

  private closed = false;

  /** Idempotent: closing a number twice could close a file opened meanwhile under the same fd. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    fs.closeSync(this.progressFd);
    fs.closeSync(this.doneFd);
  }
}
