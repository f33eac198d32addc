// `pin-preload bundle verify`: check a bundle against its seal (and signature); exit 1 naming every problem.

import type { Command } from 'commander';
import { formatVerifyReport, verifyBundle } from '../bundle/verify.js';
import { createProgress } from '../util/progress.js';
import { action } from './run-command.js';

export function registerBundleVerify(bundle: Command): void {
  bundle
    .command('verify <path>')
    .description('check every volume, blob, manifest and the signature of a bundle (PATH: the tar, any volume, or the .seal.json)')
    .option('--trusted-key <file>', 'Ed25519 public key (KEY.pub from "pin-preload keygen"): require a valid signature by it')
    .option('--json', 'print the report as JSON')
    .option('--quiet', 'no progress output')
    .action(
      action(async (file: string, options: { trustedKey?: string; json?: boolean; quiet?: boolean }) => {
        const progress = createProgress({ title: 'verifying', ...(options.quiet || options.json ? { quiet: true } : {}) });
        const report = await verifyBundle(file, {
          ...(options.trustedKey !== undefined ? { trustedKey: options.trustedKey } : {}),
          onBytes: (done, total) => progress.update({ bytesDone: done, bytesTotal: total }),
        });
        progress.finish();
        process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatVerifyReport(report).join('\n')}\n`);
        if (!report.ok) process.exitCode = 1;
      }),
    );
}
