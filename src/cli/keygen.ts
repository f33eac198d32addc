// `pin-preload keygen`: an Ed25519 key pair for signing bundles (KEY, mode 0600, and KEY.pub).

import type { Command } from 'commander';
import { generateSigningKey } from '../bundle/signing.js';
import { action } from './run-command.js';

export function registerKeygen(program: Command): void {
  program
    .command('keygen')
    .description('create an Ed25519 key pair for signing bundles: KEY (private, 0600) and KEY.pub')
    .requiredOption('--output <file>', 'private key path; the public key goes to FILE.pub')
    .action(
      action(async (options: { output: string }) => {
        const key = await generateSigningKey(options.output);
        process.stdout.write(`private key: ${key.keyPath} (keep it on the bastion)\npublic key:  ${key.publicKeyPath} (copy it to the nodes: bundle verify --trusted-key)\nkey id:      ${key.keyId}\n`);
      }),
    );
}
