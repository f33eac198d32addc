// `pin-preload bundle push BUNDLE --to HOST[:PORT][/PREFIX] | oci:DIR`: a bundle into an existing registry
// (disk to mirror) or an OCI layout directory, its structure checked first and every blob while it streams. Wiring and output only; the work is in src/bundle/push.ts and src/copy/copy.ts.

import type { Command } from 'commander';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { parsePushTarget, pushBundle, type BundlePushResult, type PushTarget } from '../bundle/push.js';
import { loadCredentials, RegistryClient } from '../registry/index.js';
import { errnoCode, isUserError, UserError } from '../util/errors.js';
import { createProgress } from '../util/progress.js';
import { formatBytes } from '../util/size.js';
import { growHeapForStreaming } from '../util/streaming-heap.js';
import { progressNotes } from './command-log.js';
import { action, printJson } from './run-command.js';
import { stopOnSignals } from './stop-signals.js';

interface PushOptionValues {
  readonly to: string;
  readonly destTlsVerify?: string;
  readonly destCertDir?: string;
  readonly authfile?: string;
  readonly trustedKey?: string;
  readonly verifyFirst?: boolean;
  readonly concurrency?: string;
  readonly json?: boolean;
  readonly quiet?: boolean;
}

const DEFAULT_PUSH_CONCURRENCY = 8;

function parseBoolean(text: string, option: string): boolean {
  if (text === 'true') return true;
  if (text === 'false') return false;
  throw new UserError('USAGE', `${option}=${text}: write true or false`, { subject: { kind: 'option', name: option } });
}

/**
 * `--dest-cert-dir DIR` as containers-certs.d(5) reads it: *.crt are CAs to trust, NAME.cert with NAME.key
 * a client certificate.
 */
async function readCertDir(dir: string): Promise<{ ca: string[]; cert?: string; key?: string }> {
  let names: string[];
  try {
    names = (await fs.readdir(dir)).sort();
  } catch (err) {
    throw new UserError('USAGE', `--dest-cert-dir ${dir}: cannot read it (${errnoCode(err) ?? (err as Error).message})`, { subject: { kind: 'option', name: '--dest-cert-dir' } });
  }
  const read = (name: string): Promise<string> => fs.readFile(path.join(dir, name), 'utf8');
  const ca = await Promise.all(names.filter((n) => n.endsWith('.crt')).map(read));
  const certName = names.find((n) => n.endsWith('.cert') && names.includes(`${n.slice(0, -'.cert'.length)}.key`));
  if (certName === undefined) return { ca };
  return { ca, cert: await read(certName), key: await read(`${certName.slice(0, -'.cert'.length)}.key`) };
}

/** The options that only a registry target takes: with oci:DIR they would silently do nothing. */
const REGISTRY_ONLY_OPTIONS = [
  ['destTlsVerify', '--dest-tls-verify'],
  ['destCertDir', '--dest-cert-dir'],
  ['authfile', '--authfile'],
] as const;

function refuseRegistryOptions(target: PushTarget, options: PushOptionValues): void {
  if (target.kind !== 'layout') return;
  const given = REGISTRY_ONLY_OPTIONS.find(([key]) => options[key] !== undefined);
  if (given === undefined) return;
  throw new UserError('USAGE', `${given[1]} applies to a registry target only, not to --to ${options.to}`, { subject: { kind: 'option', name: given[1] } });
}

function summaryLines(result: BundlePushResult): string[] {
  // In a layout every repository shares one blob store: a blob "mounted" there was written for another repository in this run.
  const layout = result.targetKind === 'layout';
  const written = layout ? 'written' : 'uploaded';
  const mounted = layout ? 'shared with another repository' : 'mounted from another repository';
  return [
    `pushed ${result.bundle} to ${result.target}: ${result.images} images`,
    `  blobs: ${result.blobsSent} ${written} (${formatBytes(result.bytesSent)}), ${result.blobsMounted} ${mounted}, ${result.blobsPresent} already there`,
    `  manifests: ${result.manifestsPut} put, ${result.manifestsPresent} already there; tags: ${result.tagsPut} set, ${result.tagsPresent} already right`,
    ...(result.sparseIndexesRefused.length > 0
      ? [
          `  note: ${result.target} refused the index of ${result.sparseIndexesRefused.length} image(s) because the bundle holds only some of its platforms; their platform manifests are there by digest, the index is not:`,
          ...result.sparseIndexesRefused.map((name) => `    ${name}`),
        ]
      : []),
  ];
}

async function registryClient(options: PushOptionValues, concurrency: number): Promise<RegistryClient> {
  const [credentials, tls] = await Promise.all([
    loadCredentials(options.authfile !== undefined ? { authfile: options.authfile } : {}),
    options.destCertDir !== undefined ? readCertDir(options.destCertDir) : Promise.resolve(undefined),
  ]);
  // With --dest-cert-dir the target's certificate is checked against it even on a loopback address,
  // which otherwise may answer plain HTTP or any certificate (as for pulls).
  return new RegistryClient({ credentials, maxConcurrentRequests: concurrency, ...(tls !== undefined ? { tls, loopbackIsInsecure: false } : {}) });
}

export function registerBundlePush(bundle: Command): void {
  bundle
    .command('push <bundle>')
    .description('push every image of a bundle (BUNDLE: the tar, any volume, or the .seal.json) into a registry or an OCI layout directory, each blob checked against its digest as it streams (a damaged one is never committed); a re-run goes on where a failed one stopped')
    .requiredOption('--to <host[:port][/prefix] | oci:dir>', 'the target registry, and a repository prefix: quay.example.com/ocp puts quay.io/ns/app at quay.example.com/ocp/ns/app; or oci:DIR, an OCI image layout naming each image by its source reference (read back with skopeo oci:DIR:quay.io/ns/app@sha256:…)')
    .option('--dest-tls-verify <bool>', 'false: allow plain HTTP or a certificate that does not verify (loopback targets may always use HTTP)')
    .option('--dest-cert-dir <dir>', 'CA certificates (*.crt) to trust for the target, and a client certificate (NAME.cert + NAME.key)')
    .option('--authfile <file>', 'containers-auth.json(5) credentials for the target (default: REGISTRY_AUTH_FILE, then the usual auth.json locations)')
    .option('--trusted-key <file>', 'Ed25519 public key (KEY.pub from "pin-preload keygen"): push only a bundle with a valid signature by it')
    .option('--verify-first', 'verify every blob of the bundle before the first request (a second read of every byte): a damaged bundle then sends nothing at all')
    .option('--concurrency <n>', `blob uploads in flight at once (default ${DEFAULT_PUSH_CONCURRENCY})`)
    .option('--json', 'print the summary as JSON (schemaVersion 1, see docs/json-output.md)')
    .option('--quiet', 'no progress output')
    .action(
      action(async (file: string, options: PushOptionValues) => {
        growHeapForStreaming(); // the upload streams gigabytes through small buffers: see src/util/streaming-heap.ts
        const target = parsePushTarget(options.to);
        refuseRegistryOptions(target, options);
        const insecure = options.destTlsVerify !== undefined && !parseBoolean(options.destTlsVerify, '--dest-tls-verify');
        const concurrency = options.concurrency !== undefined ? Number(options.concurrency) : DEFAULT_PUSH_CONCURRENCY;
        if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) {
          throw new UserError('USAGE', `--concurrency ${options.concurrency ?? ''}: give a whole number from 1 to 64`, { subject: { kind: 'option', name: '--concurrency' } });
        }
        const client = target.kind === 'registry' ? await registryClient(options, concurrency) : undefined;
        const quiet = options.quiet === true || options.json === true;
        const note = progressNotes(quiet);
        const progress = createProgress({ title: 'verifying', ...(quiet ? { quiet: true } : {}) });
        const stop = stopOnSignals();
        let phase: 'verify' | 'push' = 'verify';
        try {
          const result = await pushBundle({
            bundle: file,
            target,
            client,
            insecure,
            concurrency,
            signal: stop.signal,
            ...(options.trustedKey !== undefined ? { trustedKey: options.trustedKey } : {}),
            ...(options.verifyFirst === true ? { verifyFirst: true } : {}),
            onProgress: (now, p) => {
              if (now !== phase) {
                phase = now;
                progress.setTitle('pushing');
              }
              progress.update({ bytesDone: p.bytesDone, bytesTotal: p.bytesTotal, ...(now === 'push' ? { detail: `blobs ${p.blobsDone}/${p.blobsTotal}` } : {}) });
            },
          });
          progress.finish();
          if (options.json) printJson({ schemaVersion: 1, ...result });
          else process.stdout.write(`${summaryLines(result).join('\n')}\n`);
        } catch (err) {
          progress.finish();
          if (isUserError(err) && err.code.startsWith('PUSH_')) note('a re-run of the same command goes on where this one stopped');
          throw err;
        } finally {
          stop.dispose();
          await client?.close();
        }
      }),
    );
}
