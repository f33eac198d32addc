// `pin-preload preload [BUNDLE]`: one sync on this node — import BUNDLE if given, verify, check storage,
// configure the runtime, serve the mirror while pulling every image through CRI, pin, record. Exit 0/1;
// --json prints the shape in docs/json-output.md.

import type { Command } from 'commander';
import { addNodeConfigOptions, type ConfigFlags } from '../node/config.js';
import { importResultJson } from './import.js';
import { logLine } from './command-log.js';
import { action, printJson } from './run-command.js';
import { stopOnSignals } from './stop-signals.js';

export function registerPreload(program: Command): void {
  const command = program
    .command('preload')
    .description('pull every image of the bundles in the bundle dir through the runtime from the local mirror, then pin them')
    .argument('[bundle]', 'a bundle (tar, volume or seal) to import into the bundle dir first')
    .option('--json', 'print the result as JSON (schemaVersion 1, see docs/json-output.md)');
  addNodeConfigOptions(command).action(
    action(async (bundle: string | undefined, options: ConfigFlags & { config?: string; json?: boolean }) => {
      // Loaded on use: `pin-preload --help` and other commands need none of the runtime machinery.
      const [{ nodeConfigFromOptions }, { importBundle }, { preload }] = await Promise.all([
        import('../node/config.js'),
        import('../node/import.js'),
        import('../node/preload.js'),
      ]);
      const config = await nodeConfigFromOptions(options);
      const stop = stopOnSignals();
      const started = Date.now();
      try {
        const imported = bundle !== undefined ? await importBundle(config, bundle, { signal: stop.signal, log: logLine }) : undefined;
        const result = await preload(config, { signal: stop.signal, log: logLine });
        const seconds = (Date.now() - started) / 1000;
        if (options.json) {
          printJson({
            schemaVersion: 1,
            imported: imported ? importResultJson(imported) : null,
            generation: result.generation,
            images: result.images,
            pulled: result.pulled,
            pinned: result.pinned,
            notPinned: result.unpinned,
            pinning: result.pinning,
            unpinned: result.released,
            retired: result.retired,
            changedFiles: result.changedFiles,
            reloads: result.reloads,
            durationSeconds: Number(seconds.toFixed(3)),
          });
          return;
        }
        process.stdout.write(
          `generation ${result.generation}: ${result.images} image(s) present, ${result.pulled.length} pulled, ` +
            `${result.pinned.length} pinned${result.unpinned.length ? `, ${result.unpinned.length} not pinned` : ''}` +
            `${result.released.length ? `, ${result.released.length} unpinned (no longer bundled or retired)` : ''}` +
            `${result.retired.releases.length ? `, ${result.retired.releases.length} release(s) retired` : ''}` +
            `${result.retired.bundles.length ? `, ${result.retired.bundles.length} bundle(s) removed` : ''}` +
            ` in ${seconds.toFixed(2)} s\n`,
        );
        // Images present but unprotected: say why, in the words status uses.
        if (result.unpinned.length > 0) process.stdout.write(`GC protection: ${result.pinning}\n`);
      } finally {
        stop.dispose();
      }
    }),
  );
}
