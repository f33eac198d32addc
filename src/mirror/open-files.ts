// Read-only file descriptors kept open across blob downloads, so a download does not pay an open() and a
// close() on libuv's thread pool (two round trips, one of them before the first byte). An fd is leased to a
// download and closed only once it is out of the cache (retired) and no download holds it any more.

import fs from 'node:fs';

/** An open fd lent to one download: read through it, then release it once (no read may be in flight). */
export interface FileLease {
  readonly fd: number;
  release(): void;
}

interface Entry {
  readonly fd: number;
  /** Leases out now. */
  users: number;
  /** Out of the cache: closed when the last lease is released. */
  retired: boolean;
}

const openRead = (file: string): Promise<number> =>
  new Promise((resolve, reject) => fs.open(file, 'r', (err, fd) => (err ? reject(err) : resolve(fd))));

const closeQuietly = (fd: number): void => fs.close(fd, () => undefined);

/**
 * Opens a file for one copy only, outside any cache: closed on release (not awaited: no read is in flight
 * then, and the response need not wait for it).
 */
export async function openOnce(file: string): Promise<FileLease> {
  const fd = await openRead(file);
  return { fd, release: () => closeQuietly(fd) };
}

/**
 * Whether the file behind `fd` is still linked (fstat on an open fd reads the inode the kernel holds: no
 * I/O). A bundle deleted or replaced (a rename over it) leaves the fd on an unlinked inode: the cached fd is
 * dropped and the path opened again, so a vanished bundle is still answered BLOB_UNKNOWN.
 */
function stillLinked(fd: number): boolean {
  try {
    return fs.fstatSync(fd).nlink > 0;
  } catch {
    return false;
  }
}

export class OpenFiles {
  private readonly entries = new Map<string, Entry>();

  /** @param limit files kept open at most (least recently used retired first) */
  constructor(private readonly limit = 64) {}

  /** An fd for `file`, from the cache when it is still the file at that path, else newly opened. */
  async acquire(file: string): Promise<FileLease> {
    let entry = this.entries.get(file);
    if (entry && !stillLinked(entry.fd)) {
      this.retire(file, entry);
      entry = undefined;
    }
    if (entry) {
      // Most recently used last: the Map's order is the eviction order.
      this.entries.delete(file);
      this.entries.set(file, entry);
    } else {
      const fd = await openRead(file);
      const raced = this.entries.get(file);
      if (raced) {
        // Another download opened it meanwhile (an entry in the map is never retired): keep one fd.
        closeQuietly(fd);
        entry = raced;
      } else {
        entry = { fd, users: 0, retired: false };
        while (this.entries.size >= this.limit) {
          const [oldest, old] = this.entries.entries().next().value as [string, Entry];
          this.retire(oldest, old);
        }
        this.entries.set(file, entry);
      }
    }
    const leased = entry;
    leased.users++;
    let released = false;
    return {
      fd: leased.fd,
      release: () => {
        if (released) return;
        released = true;
        leased.users--;
        if (leased.retired && leased.users === 0) closeQuietly(leased.fd);
      },
    };
  }

  /** Retires every cached fd (a bundle was unregistered or re-indexed, or the store closes): each is closed once no download holds it. */
  retireAll(): void {
    for (const [file, entry] of [...this.entries]) this.retire(file, entry);
  }

  /** Files kept open for reuse (not counting retired fds still leased). */
  get size(): number {
    return this.entries.size;
  }

  private retire(file: string, entry: Entry): void {
    if (this.entries.get(file) === entry) this.entries.delete(file);
    if (entry.retired) return;
    entry.retired = true;
    if (entry.users === 0) closeQuietly(entry.fd);
  }
}
