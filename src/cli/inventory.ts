// `pin-preload inventory --output FILE`: writes what this node holds (its bundles, every blob across them, the
// images in the runtime) as the JSON file docs/inventory.md describes, to carry back to the bastion.

import type { Command } from 'commander';
import { addNodeConfigOptions, type ConfigFlags } from '../node/config.js';
import { action, printJson } from './run-command.js';

export function registerInventory(program: Command): void {
  const command = program
    .command('inventory')
    .description("write this node's inventory (bundles, their blob digests, the runtime's images) to a JSON file for the bastion")
    .requiredOption('--output <file>', 'the inventory file to write (atomically; docs/inventory.md)')
    .option('--node-name <name>', "the node's name in the inventory (default: the hostname)")
    .option('--json', 'print the result as JSON (schemaVersion 1, see docs/json-output.md)');
  addNodeConfigOptions(command).action(
    action(async (options: ConfigFlags & { config?: string; json?: boolean; output: string; nodeName?: string }) => {
      const [{ nodeConfigFromOptions }, { CriImageService }, { collectInventory, writeInventory }] = await Promise.all([
        import('../node/config.js'),
        import('../cri/image-service.js'),
        import('../node/inventory.js'),
      ]);
      const config = await nodeConfigFromOptions(options);
      const cri = await CriImageService.connect(config.runtime.endpoint);
      try {
        const inventory = await collectInventory(config.paths.bundles, cri, options.nodeName);
        await writeInventory(options.output, inventory);
        const counts = { bundles: inventory.bundles.length, blobs: inventory.blobs.length, runtimeImages: inventory.runtime.images.length };
        if (options.json) printJson({ schemaVersion: 1, output: options.output, node: inventory.node.name, generatedAt: inventory.generatedAt, ...counts });
        else process.stdout.write(`wrote ${options.output}: node ${inventory.node.name}, ${counts.bundles} bundle(s), ${counts.blobs} blob(s), ${counts.runtimeImages} image(s) in the runtime\n`);
      } finally {
        cri.close();
      }
    }),
  );
}
