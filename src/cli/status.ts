// `pin-preload status`: the node's preload status, MachineConfigNode-like (generations, conditions) plus a row
// per image; --json prints the shape documented in docs/status-json.md.

import type { Command } from 'commander';
import { addNodeConfigOptions, nodeConfigFromOptions, type ConfigFlags } from '../node/config.js';
import { existsSync } from 'node:fs';
import { UserError } from '../util/errors.js';
import { action, printJson } from './run-command.js';

export function registerStatus(program: Command): void {
  const command = program
    .command('status')
    .description("show this node's preload status: generations, conditions, bundles and every image's state")
    .option('--json', 'print JSON (schemaVersion 1, see docs/status-json.md)');
  addNodeConfigOptions(command).action(
    action(async (options: ConfigFlags & { config?: string; json?: boolean }) => {
      const config = await nodeConfigFromOptions(options);
      const [{ formatStatus, statusJson }, { openStateDatabase }, { NodeState }] = await Promise.all([
        import('../node/status.js'),
        import('../state/database.js'),
        import('../state/node-state.js'),
      ]);
      // Reading status must not create a database: a wrong --state or --config would then look like a node
      // on which nothing happened yet.
      if (!existsSync(config.paths.state)) {
        throw new UserError('STATE_MISSING', `no state database at ${config.paths.state}`, {
          subject: { kind: 'path', name: config.paths.state },
          hint: `nothing has been imported or pre-loaded on this node yet, or the path is wrong: check [paths] state in ${config.file ?? 'the config'} or --state`,
        });
      }
      const db = openStateDatabase(config.paths.state);
      try {
        const json = statusJson(config, new NodeState(db));
        if (options.json) printJson(json);
        else process.stdout.write(formatStatus(json));
      } finally {
        db.close();
      }
    }),
  );
}
