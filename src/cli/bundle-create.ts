// `pin-preload bundle create`: resolve a selection and write its offline bundle (resumable, optionally split
// and signed). Wiring and output only; the work is in src/plan/resolve.ts and src/bundle/writer.ts.

import type { Command } from 'commander';
import path from 'node:path';
import { DEFAULT_CREATE_CONCURRENCY, type CreateEvent } from '../bundle/writer.js';
import { createProgress } from '../util/progress.js';
import { formatBytes, parseSize } from '../util/size.js';
import { UserError } from '../util/errors.js';
import { addManifestOptions, checkManifestOptions, formatManifestsResult, runBundleManifests, warnUnexpressible, type ManifestOptionValues } from './bundle-manifests.js';
import { progressNotes } from './command-log.js';
import { SINCE_HELP } from './bundle-plan.js';
import { action } from './run-command.js';
import { addSelectionOptions, selectionFromOptions } from './selection-options.js';
import { addSignatureOptions, applySignatureOptions, checkSignatureOptions } from './signature-options.js';
import { optionSource, withSpecOptions, type SpecOptionValues } from './spec-options.js';
import { stopOnSignals } from './stop-signals.js';
import { growHeapForStreaming } from '../util/streaming-heap.js';

interface CreateOptionValues extends SpecOptionValues, ManifestOptionValues {
  readonly manifests?: string;
  readonly output?: string;
  readonly splitSize?: string;
  readonly signKey?: string;
  readonly quiet?: boolean;
}

function describeEvent(event: CreateEvent): string | undefined {
  switch (event.kind) {
    case 'start-over':
      return `note: not resuming from ${event.workDir}: ${event.reason}; starting over`;
    case 'resume':
      return `resuming: ${event.blobsDone} blobs and ${formatBytes(event.bytesDone)} already written are kept`;
    case 'blob-retry':
      return `note: blob ${event.digest}: ${event.reason}`;
    case 'publish-finished':
      return `note: finished putting in place the bundle an interrupted run had sealed at ${event.output}`;
    case 'disk':
      return undefined;
  }
}

export function registerBundleCreate(bundle: Command): void {
  const command = bundle
    .command('create')
    .description('download a release and images into an offline bundle (an OCI layout tar, resumable, optionally split and signed)')
    .option('--output <file>', 'bundle path: the tar, or the volumes\' common name with --split-size (NAME.001, NAME.002, …)')
    .option('--split-size <size>', 'cut the bundle into volumes of at most this size, e.g. 4GiB, 700MB, 25GB')
    .option('--sign-key <file>', 'Ed25519 private key (from "pin-preload keygen") to sign the bundle with: writes OUTPUT.sig')
    .option('--quiet', 'no progress output')
    .option('--since <prev>', SINCE_HELP)
    .option('--manifests <dir>', 'then write the cluster manifests of the bundle into DIR (as "bundle manifests"; with --pool, --mirror-host, --name)')
    .addHelpText('after', `\n--concurrency N also bounds blob downloads (default ${DEFAULT_CREATE_CONCURRENCY}). An interrupted or failed run resumes when run again.\nRead an OCI-typed image out of a bundle: skopeo copy oci-archive:BUNDLE:<image reference by digest> …  (see docs/bundle-format.md)`);
  addSignatureOptions(addSelectionOptions(addManifestOptions(command))).action(
    action(async (given: CreateOptionValues) => {
      growHeapForStreaming(); // before the plan's first collection: see src/util/streaming-heap.ts
      const { options, spec } = await withSpecOptions(given);
      const signatureOptions = await checkSignatureOptions(options, given);
      // PREV is read before the plan's registry round trips: a wrong --since fails at once.
      const { planSince, readPrevious } = await import('../plan/delta.js');
      const previous = options.since !== undefined ? await readPrevious(options.since, optionSource(given, 'since', 'since')) : undefined;
      const { selection, source, concurrency } = await selectionFromOptions(options, spec, given);
      const stop = stopOnSignals();
      const note = progressNotes(options.quiet);
      try {
        const output = options.output ?? spec?.output;
        if (!output) throw new UserError('USAGE', 'bundle create needs --output FILE (or "output" in the --spec file)', { subject: { kind: 'option', name: '--output' } });
        const splitSize = options.splitSize !== undefined ? parseSize(options.splitSize, '--split-size') : spec?.splitSize;
        const splitFrom = options.splitSize !== undefined ? '--split-size' : `split-size in ${options.spec}`;
        if (splitSize !== undefined && splitSize < 1024 * 1024) {
          throw new UserError('USAGE', `${splitFrom} ${formatBytes(splitSize)} is too small; use at least 1MiB`, { subject: { kind: 'option', name: splitFrom } });
        }
        const signKey = options.signKey ?? spec?.signKey;
        const manifestOptions = await checkManifestOptions(options);
        if (options.manifests === undefined && (options.pool !== undefined || options.mirrorHost !== undefined || options.name !== undefined)) {
          throw new UserError('USAGE', '--pool, --mirror-host and --name go with --manifests DIR');
        }
        note('resolving images…');
        const [{ planBundle }, { createBundle }] = await Promise.all([import('../plan/resolve.js'), import('../bundle/writer.js')]);
        const plan = planSince(await applySignatureOptions(await planBundle(source, selection, { concurrency, signatures: options.signatures === true }), signatureOptions, stop.signal), previous);
        note(`${plan.images.length} images, ${plan.blobs.length} unique blobs, ${formatBytes(plan.totals.uniqueBytes)} to bundle`);
        if (plan.delta) {
          note(`delta since ${plan.delta.since}: ${formatBytes(plan.delta.newBytes)} new, ${formatBytes(plan.delta.carriedBytes)} of manifests and configs carried, ${plan.delta.baseBlobs.length} layers (${formatBytes(plan.delta.baseBytes)}) left to base ${plan.delta.bases.map((b) => b.name).join(', ') || '(none)'}`);
        }
        const progress = createProgress({ title: 'downloading', ...(options.quiet ? { quiet: true } : {}) });
        const result = await createBundle({
          plan,
          source,
          output,
          ...(splitSize !== undefined ? { splitSize } : {}),
          ...(signKey !== undefined ? { signKey } : {}),
          concurrency: options.concurrency === undefined ? DEFAULT_CREATE_CONCURRENCY : concurrency,
          signal: stop.signal,
          onProgress: (p) => {
            if (p.phase === 'seal') progress.setTitle('sealing (hashing volumes)');
            progress.update({ bytesDone: p.bytesDone, bytesTotal: p.bytesTotal, detail: `images ${p.imagesDone}/${p.imagesTotal}` });
          },
          onEvent: (event) => {
            const text = describeEvent(event);
            if (text) {
              progress.finish();
              note(text);
            }
          },
        });
        progress.finish();
        const writeManifests = async () => {
          if (options.manifests === undefined) return;
          const written = await runBundleManifests(result.sealPath, options.manifests, manifestOptions);
          warnUnexpressible(written);
          process.stdout.write(formatManifestsResult(written));
        };
        if (result.alreadyComplete) {
          process.stdout.write(`bundle already complete: ${result.output} holds exactly these ${result.images} images, sealed${result.signaturePath ? ' and signed' : ''}; nothing to do (check its content with "pin-preload bundle verify")\n`);
          await writeManifests();
          return;
        }
        const lines = [
          `bundle written: ${result.output}${result.volumes.length > 1 ? `.001 … .${String(result.volumes.length).padStart(3, '0')}` : ''}`,
          `  ${result.images} images, ${result.blobs} blobs, ${formatBytes(result.totalSize)} in ${result.volumes.length} volume(s); fetched ${formatBytes(result.bytesFetched)}${result.resumed ? ' (resumed run)' : ''}`,
          ...result.volumes.map((v) => `  ${path.basename(v.path)}  ${formatBytes(v.size)}  sha256:${v.sha256}`),
          ...(plan.delta && plan.delta.bases.length > 0 ? [`  delta: needs base ${plan.delta.bases.map((b) => `${b.name} (${b.manifestDigest})`).join(', ')} in the same bundle dir`] : []),
          `  seal: ${result.sealPath}`,
          ...(result.signaturePath ? [`  signature: ${result.signaturePath}`] : []),
        ];
        process.stdout.write(`${lines.join('\n')}\n`);
        await writeManifests();
      } finally {
        stop.dispose();
        await source.close();
      }
    }),
  );
}
