// `pin-preload run`: the node service. Serves the mirror all the time and runs a preload sync at start and
// whenever the set of bundles in the bundle dir changes (fs.watch, plus a periodic rescan as a fallback);
// when is SyncScheduler's to decide.

import { watch, type FSWatcher } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { CriImageService } from '../cri/image-service.js';
import type { RunningMirror } from '../mirror/server.js';
import { listSealFiles } from './bundle-dir.js';
import type { NodeConfig } from './config.js';
import { openNodeServices } from './node-services.js';
import { preloadOnce, startNodeMirror, type PreloadContext, type PreloadResult } from './preload.js';
import { SyncScheduler } from './sync-scheduler.js';

export interface ServiceOptions {
  readonly signal: AbortSignal;
  readonly log: (line: string) => void;
  /** Quiet time after the last change in the bundle dir before a sync starts (a copy is many writes). */
  readonly debounceMs?: number;
  /** How often the bundle dir is rescanned when fs.watch misses something (network filesystems). */
  readonly rescanMs?: number;
  /** After a failed sync, the next attempt comes this much later (unless the bundles change first). */
  readonly retryMs?: number;
  /** Called after every sync, for tests and logs. */
  readonly onSync?: (result: PreloadResult | Error) => void;
  readonly pull?: PreloadContext['pull'];
}

/** What the bundle dir holds, as a comparable string: seal names, sizes and mtimes. */
async function bundleDirSnapshot(dir: string): Promise<string> {
  const parts: string[] = [];
  for (const seal of await listSealFiles(dir)) {
    const st = await stat(seal).catch(() => undefined);
    if (st) parts.push(`${seal}:${st.size}:${Math.trunc(st.mtimeMs)}`);
  }
  return parts.join('\n');
}

/** Runs until `signal` aborts; then stops pulls, closes the mirror, the CRI connection and the database. */
export async function runService(config: NodeConfig, options: ServiceOptions): Promise<void> {
  const { signal, log } = options;
  const dir = config.paths.bundles;
  await mkdir(dir, { recursive: true });
  const services = await openNodeServices(config);
  const scheduler = new SyncScheduler({
    signal,
    log,
    dir,
    debounceMs: options.debounceMs ?? 2_000,
    rescanMs: options.rescanMs ?? 60_000,
    retryMs: options.retryMs ?? 60_000,
    snapshot: () => bundleDirSnapshot(dir),
  });
  let cri: CriImageService | undefined;
  let mirror: RunningMirror | undefined;
  let watcher: FSWatcher | undefined;
  try {
    const runtime = await CriImageService.connect(config.runtime.endpoint);
    cri = runtime;
    mirror = await startNodeMirror(config, services.store);
    log(`mirror serving ${services.store.listBundles().length} bundle(s) on ${mirror.url}`);
    try {
      watcher = watch(dir, { persistent: false }, () => scheduler.changed());
      watcher.on('error', (err) => log(`watching ${dir} failed (${err.message}); relying on the periodic rescan`));
    } catch (err) {
      log(`cannot watch ${dir} (${(err as Error).message}); relying on the periodic rescan`);
    }
    await scheduler.run(async (stop) => {
      try {
        const result = await preloadOnce({ config, state: services.state, store: services.store, cri: runtime, signal: stop, log, ...(options.pull ? { pull: options.pull } : {}) });
        log(`generation ${result.generation}: ${result.images} image(s) in place, ${result.pulled.length} pulled, ${result.pinned.length} pinned`);
        if (result.unpinned.length > 0) log(`GC protection: ${result.pinning}`);
        options.onSync?.(result);
      } catch (err) {
        const error = err instanceof Error ? err : new Error(String(err));
        if (!stop.aborted) log(`sync failed: ${error.message}`);
        options.onSync?.(error);
        throw error; // the scheduler tries again later unless the sync was cancelled
      }
    });
  } finally {
    scheduler.dispose();
    watcher?.close();
    await mirror?.close();
    cri?.close();
    services.close();
    log('stopped');
  }
}
