// `pin-preload run`: the node service (systemd's pin-preload.service) — serve the mirror, preload at start and
// whenever a bundle lands in the bundle dir, until SIGTERM/SIGINT.

import type { Command } from 'commander';
import { addNodeConfigOptions, nodeConfigFromOptions, type ConfigFlags } from '../node/config.js';
import { logLine } from './command-log.js';
import { action } from './run-command.js';
import { stopOnSignals } from './stop-signals.js';

export function registerRun(program: Command): void {
  const command = program
    .command('run')
    .description('node service: serve the bundles as a local mirror and pre-load and pin their images, at start and on every new bundle');
  addNodeConfigOptions(command).action(
    action(async (options: ConfigFlags & { config?: string }) => {
      const config = await nodeConfigFromOptions(options);
      const { runService } = await import('../node/service.js'); // loaded on use, like every node command
      const stop = stopOnSignals((name) => logLine(`${name}: stopping`));
      await runService(config, { signal: stop.signal, log: logLine });
    }),
  );
}
