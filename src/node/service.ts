// `pin-preload run`: the node service. Serves the mirror all the time and runs a preload sync at start and
// whenever the set of bundles in the bundle dir changes (fs.watch, plus a periodic rescan as a fallback).

import { watch, type FSWatcher } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { CriImageService } from '../cri/image-service.js';
import type { RunningMirror } from '../mirror/server.js';
import { listSealFiles } from './bundle-dir.js';
import type { NodeConfig } from './config.js';
import { openNodeServices, preloadOnce, startNodeMirror, type PreloadContext, type PreloadResult } from './preload.js';

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
  const debounceMs = options.debounceMs ?? 2_000;
  const rescanMs = options.rescanMs ?? 60_000;
  const retryMs = options.retryMs ?? 60_000;
  await mkdir(config.paths.bundles, { recursive: true });
  const services = await openNodeServices(config);
  let cri: CriImageService | undefined;
  let mirror: RunningMirror | undefined;
  let watcher: FSWatcher | undefined;
  const timers = new Set<NodeJS.Timeout>();
  let debounce: NodeJS.Timeout | undefined;
  try {
    cri = await CriImageService.connect(config.runtime.endpoint);
    mirror = await startNodeMirror(config, services.store);
    log(`mirror serving ${services.store.listBundles().length} bundle(s) on ${mirror.url}`);

    let snapshot = '';
    let wanted = true; // a sync is due
    let running: AbortController | undefined;
    let wake: (() => void) | undefined;
    const nudge = () => wake?.();
    const later = (ms: number, fn: () => void) => {
      const timer = setTimeout(() => {
        timers.delete(timer);
        fn();
      }, ms);
      timers.add(timer);
    };

    /** A change was seen: after the quiet time, compare snapshots; a different set cancels a running sync. */
    const onChange = () => {
      if (debounce) clearTimeout(debounce);
      debounce = setTimeout(() => {
        debounce = undefined;
        void bundleDirSnapshot(config.paths.bundles).then((now) => {
          if (now === snapshot) return;
          log('the bundle dir changed: starting a new sync');
          wanted = true;
          running?.abort(); // like the MCO: a new desired set cancels the prefetch of the old one
          nudge();
        }, (err: unknown) => log(`rescanning ${config.paths.bundles} failed: ${(err as Error).message}`));
      }, debounceMs);
    };
    try {
      watcher = watch(config.paths.bundles, { persistent: false }, onChange);
      watcher.on('error', (err) => log(`watching ${config.paths.bundles} failed (${err.message}); relying on the periodic rescan`));
    } catch (err) {
      log(`cannot watch ${config.paths.bundles} (${(err as Error).message}); relying on the periodic rescan`);
    }
    const rescan = () => {
      if (signal.aborted) return;
      onChange();
      later(rescanMs, rescan);
    };
    later(rescanMs, rescan);

    signal.addEventListener('abort', () => {
      running?.abort();
      nudge();
    }, { once: true });

    while (!signal.aborted) {
      if (!wanted) {
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
        continue;
      }
      wanted = false;
      snapshot = await bundleDirSnapshot(config.paths.bundles);
      running = new AbortController();
      const stop = running;
      const onServiceStop = () => stop.abort();
      signal.addEventListener('abort', onServiceStop, { once: true });
      try {
        const result = await preloadOnce({ config, state: services.state, store: services.store, cri, signal: stop.signal, log, ...(options.pull ? { pull: options.pull } : {}) });
        log(`generation ${result.generation}: ${result.images} image(s) in place, ${result.pulled.length} pulled, ${result.pinned.length} pinned`);
        if (result.unpinned.length > 0) log(`GC protection: ${result.pinning}`);
        options.onSync?.(result);
      } catch (err) {
        const error = err instanceof Error ? err : new Error(String(err));
        if (!stop.signal.aborted) {
          log(`sync failed: ${error.message}`);
          later(retryMs, () => {
            wanted = true;
            nudge();
          });
        }
        options.onSync?.(error);
      } finally {
        signal.removeEventListener('abort', onServiceStop);
        running = undefined;
      }
    }
  } finally {
    if (debounce) clearTimeout(debounce);
    for (const timer of timers) clearTimeout(timer);
    watcher?.close();
    await mirror?.close();
    cri?.close();
    services.close();
    log('stopped');
  }
}
