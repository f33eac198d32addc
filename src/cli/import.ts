// `pin-preload import PATH`: copy a bundle from media into the bundle dir, verifying it on the way; a running
// `pin-preload run` notices it and pre-loads it. --json prints the shape in docs/json-output.md.

import type { Command } from 'commander';
import { addNodeConfigOptions, nodeConfigFromOptions, type ConfigFlags } from '../node/config.js';
import type { ImportResult } from '../node/import.js';
import { logLine } from './command-log.js';
import { action, printJson } from './run-command.js';
import { stopOnSignals } from './stop-signals.js';

/** `import --json` (and `imported` in `preload --json`), schemaVersion 1. */
export function importResultJson(result: ImportResult): { bundle: string; seal: string; alreadyImported: boolean; bytesCopied: number } {
  return { bundle: result.bundlePath, seal: result.sealPath, alreadyImported: result.alreadyImported, bytesCopied: result.bytesCopied };
}

export function registerImport(program: Command): void {
  const command = program
    .command('import')
    .description('copy a bundle (all volumes, seal and signature) into the bundle dir, verifying every byte; rejects a bad one leaving nothing behind')
    .argument('<path>', 'the bundle: its tar, any of its volumes, or its .seal.json')
    .option('--volume-checksums', "also recompute each volume's sha256 and compare it with the seal, as bundle verify --volume-checksums (hashes every byte a second time)")
    .option('--json', 'print the result as JSON (schemaVersion 1, see docs/json-output.md)');
  addNodeConfigOptions(command).action(
    action(async (source: string, options: ConfigFlags & { config?: string; json?: boolean; volumeChecksums?: boolean }) => {
      const config = await nodeConfigFromOptions(options);
      const [{ importBundle }, { describeBytes }] = await Promise.all([import('../node/import.js'), import('../node/storage-check.js')]);
      const stop = stopOnSignals();
      try {
        const result = await importBundle(config, source, { signal: stop.signal, log: logLine, ...(options.volumeChecksums ? { volumeChecksums: true } : {}) });
        if (options.json) printJson({ schemaVersion: 1, ...importResultJson(result) });
        else {
          process.stdout.write(
            result.alreadyImported
              ? `${result.bundlePath}: already imported\n`
              : `${result.bundlePath}: imported and verified (${describeBytes(result.bytesCopied)})\n`,
          );
        }
      } finally {
        stop.dispose();
      }
    }),
  );
}
