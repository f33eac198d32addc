// `pin-preload preload [BUNDLE]`: one sync on this node — import BUNDLE if given, verify, check storage,
// configure the runtime, serve the mirror while pulling every image through CRI, pin, record. Exit 0/1.

import type { Command } from 'commander';
import { addNodeConfigOptions, type ConfigFlags } from '../node/config.js';
import { action } from './run-command.js';

function log(line: string): void {
  process.stderr.write(`pin-preload: ${line}\n`);
}

export function registerPreload(program: Command): void {
  const command = program
    .command('preload')
    .description('pull every image of the bundles in the bundle dir through the runtime from the local mirror, then pin them')
    .argument('[bundle]', 'a bundle (tar, volume or seal) to import into the bundle dir first');
  addNodeConfigOptions(command).action(
    action(async (bundle: string | undefined, options: ConfigFlags & { config?: string }) => {
      // Loaded on use: `pin-preload --help` and other commands need none of the runtime machinery.
      const [{ nodeConfigFromOptions }, { importBundle }, { preload }] = await Promise.all([
        import('../node/config.js'),
        import('../node/import.js'),
        import('../node/preload.js'),
      ]);
      const config = await nodeConfigFromOptions(options);
      const stop = new AbortController();
      const onSignal = () => stop.abort();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      const started = Date.now();
      try {
        if (bundle !== undefined) await importBundle(config, bundle, { signal: stop.signal, log });
        const result = await preload(config, { signal: stop.signal, log });
        process.stdout.write(
          `generation ${result.generation}: ${result.images} image(s) present, ${result.pulled.length} pulled, ` +
            `${result.pinned.length} pinned${result.unpinned.length ? `, ${result.unpinned.length} not pinned` : ''}` +
            `${result.released.length ? `, ${result.released.length} unpinned (no longer bundled)` : ''}` +
            ` in ${((Date.now() - started) / 1000).toFixed(2)} s\n`,
        );
        // Images present but unprotected: say why, in the words status uses.
        if (result.unpinned.length > 0) process.stdout.write(`GC protection: ${result.pinning}\n`);
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    }),
  );
}
