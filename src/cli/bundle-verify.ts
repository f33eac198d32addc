// `pin-preload bundle verify`: check every byte of a bundle against its seal (and signature); exit 1 naming every problem.

import type { Command } from 'commander';
import { prestartVerifyWorkers } from '../bundle/verify-hashing.js';
import { createProgress } from '../util/progress.js';
import { action, printJson } from './run-command.js';

export function registerBundleVerify(bundle: Command): void {
  bundle
    .command('verify <path>')
    .description(
      'check every byte of a bundle (PATH: the tar, any volume, or the .seal.json): volumes present with their sealed sizes, ' +
        'pin-preload.json against the seal, every blob against its digest, and every other byte (tar headers, oci-layout, ' +
        'index.json, padding, end blocks) equal to what pin-preload.json prescribes; each byte is hashed once, on two cores',
    )
    .option('--trusted-key <file>', 'Ed25519 public key (KEY.pub from "pin-preload keygen"): require a valid signature by it')
    .option('--release-keyring <file>', 'also verify the release signatures the bundle carries with gpgv against this keyring (binary or armored); a release carrying none fails')
    .option('--volume-checksums', "also recompute each volume's sha256 and compare it with the seal (hashes every byte a second time)")
    .option('--json', 'print the report as JSON (schemaVersion 1, see docs/json-output.md)')
    .option('--quiet', 'no progress output')
    .action(
      action(async (file: string, options: { trustedKey?: string; releaseKeyring?: string; volumeChecksums?: boolean; json?: boolean; quiet?: boolean }) => {
        // First, so that the workers' start overlaps loading verify's modules (verify-hashing.ts loads none of them).
        prestartVerifyWorkers(options);
        const { formatVerifyReport, verifyBundle } = await import('../bundle/verify.js');
        const progress = createProgress({ title: 'verifying', ...(options.quiet || options.json ? { quiet: true } : {}) });
        const report = await verifyBundle(file, {
          ...(options.trustedKey !== undefined ? { trustedKey: options.trustedKey } : {}),
          ...(options.volumeChecksums ? { volumeChecksums: true } : {}),
          ...(options.releaseKeyring !== undefined ? { releaseKeyring: options.releaseKeyring } : {}),
          onBytes: (done, total) => progress.update({ bytesDone: done, bytesTotal: total }),
        });
        progress.finish();
        if (options.json) printJson({ schemaVersion: 1, ...report });
        else process.stdout.write(`${formatVerifyReport(report).join('\n')}\n`);
        if (!report.ok) process.exitCode = 1;
      }),
    );
}
