// `serve` as a function: open the bundle index, register the bundles of a directory and any named ones,
// and start the mirror on them. The CLI (src/cli/serve.ts) adds only flags, output and signals.

import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { importClaimName, SEAL_SUFFIX } from '../bundle/format.js';
import { errnoCode, UserError } from '../util/errors.js';
import { BundleStore, type RegisteredBundle } from './bundle-store.js';
import { startMirror, type RunningMirror } from './server.js';

/**
 * The bundles in `dir`: every NAME.seal.json (a sealed bundle, maybe split), and every .tar with no seal
 * next to it (an unsealed single-file bundle) unless an import claims it (its seal is yet to come, or the import
 * died before it). Hidden files (imports in progress) are skipped.
 */
export async function findBundlesInDirectory(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    throw new UserError('BUNDLE_DIR_UNREADABLE', `cannot read bundle directory ${dir}: ${errnoCode(err) ?? (err as Error).message}`, { subject: { kind: 'path', name: dir } });
  }
  const visible = new Set(names.filter((n) => !n.startsWith('.')));
  const claimed = new Set(names.filter((n) => n.startsWith('.')));
  const unsealedTar = (n: string) => n.endsWith('.tar') && !visible.has(n + SEAL_SUFFIX) && !claimed.has(importClaimName(n));
  const bundles = [...visible].filter((n) => n.endsWith(SEAL_SUFFIX) || unsealedTar(n));
  return bundles.sort().map((n) => path.join(dir, n));
}

export interface ServeBundlesOptions {
  /** The state database file (the bundle index lives there). */
  readonly state: string;
  readonly bundleDir?: string;
  /** Bundles named explicitly: one that cannot be registered is an error (one in the directory is only logged). */
  readonly bundles?: readonly string[];
  readonly listen?: string;
  readonly tls?: { readonly certFile: string; readonly keyFile: string };
  readonly accessLog?: boolean | Writable;
  readonly log?: (line: string) => void;
}

export interface ServingBundles {
  readonly mirror: RunningMirror;
  readonly store: BundleStore;
  readonly registered: readonly RegisteredBundle[];
  close(): Promise<void>;
}

async function readPem(file: string, what: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    throw new UserError('TLS_FILE_UNREADABLE', `cannot read the mirror's TLS ${what} ${file}: ${errnoCode(err) ?? (err as Error).message}`, { subject: { kind: 'path', name: file } });
  }
}

export async function serveBundles(options: ServeBundlesOptions): Promise<ServingBundles> {
  const log = options.log ?? (() => undefined);
  const tls = options.tls ? { cert: await readPem(options.tls.certFile, 'certificate'), key: await readPem(options.tls.keyFile, 'key') } : undefined;
  const store = await BundleStore.open(options.state);
  try {
    for (const file of options.bundleDir !== undefined ? await findBundlesInDirectory(options.bundleDir) : []) {
      try {
        await store.registerBundle(file);
      } catch (err) {
        log(`skipping ${file}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    for (const file of options.bundles ?? []) await store.registerBundle(file);
    const registered = store.listBundles();
    for (const b of registered) if (b.problem !== undefined) log(`not serving ${b.path}: ${b.problem}`);
    const mirror = await startMirror({
      store,
      ...(options.listen !== undefined ? { listen: options.listen } : {}),
      ...(tls ? { tls } : {}),
      ...(options.accessLog !== undefined ? { accessLog: options.accessLog } : {}),
    });
    return {
      mirror,
      store,
      registered,
      async close() {
        await mirror.close();
        store.close();
      },
    };
  } catch (err) {
    store.close();
    throw err;
  }
}
