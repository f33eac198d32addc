// `pin-preload run`: the node service (systemd's pin-preload.service) — serve the mirror, preload at start and
// whenever a bundle lands in the bundle dir, until SIGTERM/SIGINT.

import type { Command } from 'commander';
import { addNodeConfigOptions, nodeConfigFromOptions, type ConfigFlags } from '../node/config.js';
import { action } from './run-command.js';

export function registerRun(program: Command): void {
  const command = program
    .command('run')
    .description('node service: serve the bundles as a local mirror and pre-load and pin their images, at start and on every new bundle');
  addNodeConfigOptions(command).action(
    action(async (options: ConfigFlags & { config?: string }) => {
      const config = await nodeConfigFromOptions(options);
      const { runService } = await import('../node/service.js'); // loaded on use, like every node command
      const stop = new AbortController();
      const onSignal = (name: string) => {
        process.stderr.write(`pin-preload: ${name}: stopping\n`);
        stop.abort();
      };
      process.once('SIGINT', () => onSignal('SIGINT'));
      process.once('SIGTERM', () => onSignal('SIGTERM'));
      await runService(config, { signal: stop.signal, log: (line) => process.stderr.write(`pin-preload: ${line}\n`) });
    }),
  );
}
