// One preload sync, in the MCO's order: Progressing → the mirror forgets vanished bundles → unpin what left the
// set → verify bundles → storage check → mirror config → pull everything through CRI from the in-process
// mirror → ImageStatus again → pin (CRI-O's pinned file + reload, or containerd's pinned label) → ImageStatus
// `pinned` → record.

import { readFile } from 'node:fs/promises';
import { CriImageService, type CriImage } from '../cri/image-service.js';
import { BundleStore } from '../mirror/bundle-store.js';
import { pinnableImages } from '../bundle/bundle-manifest.js';
import { startMirror, type RunningMirror } from '../mirror/server.js';
import { openNodeServices } from './node-services.js';
import { NodeState, type FailureReason } from '../state/node-state.js';
import { UserError, errnoCode, type UserErrorOptions } from '../util/errors.js';
import { layersForPlatform, listSealFiles, missingBases, nodePlatform, OpenBundles, type DesiredImage, type NodeBundleOpener, type OpenNodeBundle } from './bundle-dir.js';
import type { NodeConfig } from './config.js';
import { pullImages, type PullOptions } from './pull.js';
import { applyMirrorConfig, reloadAfterChange } from './runtime-files.js';
import { pinImages, pinMethod, pinningDescription, reportsPinsSoon, unpinImages, type PinMethod } from './pinning.js';
import { checkStorage, StorageInsufficientError } from './storage-check.js';
import { mapBounded } from '../util/concurrency.js';
import { checkNodeBundleSignature, verifyNodeBundle } from './verify.js';
import { applyRetirement, desiredSet, type RetirementResult } from './retire.js';

/** ImageStatus calls at once: cheap local lookups, but a node may have hundreds of images. */
const STATUS_CONCURRENCY = 16;
/**
 * How long to wait for the runtime to report `pinned` after we pinned: CRI-O handles the reload's SIGHUP, and
 * containerd's CRI the image-update event, asynchronously.
 */
const PINNED_REPORT_WAIT_MS = 10_000;

export interface PreloadResult {
  readonly generation: number;
  readonly images: number;
  readonly pulled: readonly string[];
  readonly pinned: readonly string[];
  /** Present but not protected from GC by the runtime (e.g. containerd 1.6). */
  readonly unpinned: readonly string[];
  /** How the images are protected, or why not (what status shows as "GC protection"). */
  readonly pinning: string;
  /** Images that left the desired set and whose pin this sync removed. */
  readonly released: readonly string[];
  /** What [pins] keep_releases retired in this sync (releases, bundles removed); empty when nothing. */
  readonly retired: RetirementResult;
  readonly changedFiles: readonly string[];
  readonly reloads: number;
}

/** Everything a sync uses; `run` keeps these open across syncs, `preload` opens them for one. */
export interface PreloadContext {
  readonly config: NodeConfig;
  readonly state: NodeState;
  readonly store: BundleStore;
  readonly cri: CriImageService;
  readonly signal?: AbortSignal;
  readonly log: (line: string) => void;
  /** Overrides for tests (backoff). */
  readonly pull?: Partial<Pick<PullOptions, 'backoffMs'>>;
  /** Opens one bundle of the bundle dir; openNodeBundle unless a test counts the opens. */
  readonly openBundle?: NodeBundleOpener;
}

/** A failed sync, already recorded in the state as Degraded with `reason`. */
export class PreloadFailedError extends UserError {
  constructor(readonly reason: FailureReason, message: string, options: UserErrorOptions = {}) {
    super(reason === 'StorageInsufficient' ? 'STORAGE_INSUFFICIENT' : 'PREFETCH_FAILED', message, options);
    this.name = 'PreloadFailedError';
  }
}

function describeError(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * What a sync does with the error that ended it, decided here alone:
 * - `passed-on`: thrown as it is and not recorded here (a failure recorded where it was raised, or a
 *   cancellation, which is not a failure of the generation: the next run resumes it);
 * - `failed`: recorded as Degraded with `reason` (and the storage numbers) and thrown as a PreloadFailedError;
 * - `bug`: recorded, and thrown as it is so that it is reported with its stack.
 */
export type SyncFailure =
  | { readonly outcome: 'passed-on' }
  | { readonly outcome: 'failed'; readonly reason: FailureReason; readonly storage?: StorageNumbers }
  | { readonly outcome: 'bug'; readonly reason: FailureReason };

type StorageNumbers = { readonly requiredBytes: number; readonly availableBytes: number };

export function classifySyncFailure(err: unknown): SyncFailure {
  if (err instanceof PreloadFailedError) return { outcome: 'passed-on' };
  if (err instanceof UserError && err.code === 'PRELOAD_CANCELLED') return { outcome: 'passed-on' };
  if (err instanceof StorageInsufficientError) return { outcome: 'failed', reason: 'StorageInsufficient', storage: err.report };
  // An error the operator can act on: ours, or the system's (a path, a permission, a full disk).
  if (err instanceof UserError || errnoCode(err) !== undefined) return { outcome: 'failed', reason: 'PrefetchFailed' };
  return { outcome: 'bug', reason: 'PrefetchFailed' };
}

/** Records the sync failed for `reason` and throws the failure as a PreloadFailedError. */
function fail(state: NodeState, reason: FailureReason, err: unknown, storage?: StorageNumbers): never {
  const message = describeError(err);
  state.recordFailure(reason, message, storage);
  // The hint and the object the error names (a bundle, an image) carry over: --json reports them.
  const own = err instanceof UserError ? { hint: err.hint, subject: err.subject } : {};
  throw new PreloadFailedError(reason, message, { ...own, cause: err });
}

/** Ends a sync with `err` as classifySyncFailure decides. */
function endSync(state: NodeState, err: unknown): never {
  const failure = classifySyncFailure(err);
  if (failure.outcome === 'failed') fail(state, failure.reason, err, failure.storage);
  if (failure.outcome === 'bug') state.recordFailure(failure.reason, describeError(err));
  throw err;
}

async function imageStatuses(cri: CriImageService, images: readonly DesiredImage[]): Promise<Map<string, CriImage | undefined>> {
  const statuses = await mapBounded(images, STATUS_CONCURRENCY, (image) => cri.imageStatus(image.name));
  return new Map(images.map((image, i) => [image.name, statuses[i]]));
}

function checkAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new UserError('PRELOAD_CANCELLED', 'preload was cancelled');
}

/** What the steps of one sync share; `changes` gathers the files they changed and the reloads they made. */
interface Sync {
  readonly ctx: PreloadContext;
  readonly bundles: readonly OpenNodeBundle[];
  readonly images: readonly DesiredImage[];
  readonly method: PinMethod;
  readonly changes: { readonly changedFiles: string[]; reloads: number };
}

/** Opens every bundle in the bundle dir (once per preload) and records them in the state. */
async function loadBundles(ctx: PreloadContext, opened: OpenBundles): Promise<OpenNodeBundle[]> {
  const bundles: OpenNodeBundle[] = [];
  for (const sealPath of await listSealFiles(ctx.config.paths.bundles)) bundles.push(await opened.open(sealPath));
  for (const bundle of bundles) {
    ctx.state.upsertBundle({
      path: bundle.path,
      manifestDigest: bundle.manifestDigest,
      ...(bundle.manifest.release ? { release: bundle.manifest.release.version } : {}),
      imageCount: pinnableImages(bundle.manifest).length,
      fingerprint: bundle.fingerprint,
    });
  }
  ctx.state.retainBundles(bundles.map((b) => b.path));
  return bundles;
}

/** Checks each bundle's signature (every sync) and verifies those not verified with their current files. */
async function verifyBundles(ctx: PreloadContext, bundles: readonly OpenNodeBundle[]): Promise<void> {
  for (const bundle of bundles) {
    // A delta without its base would have its manifests served and its layers missing: refuse it by name.
    const missing = missingBases(bundle.manifest, bundles);
    if (missing.length > 0) {
      throw new UserError('BUNDLE_BASE_MISSING', `bundle ${bundle.path} is a delta and its base ${missing.map((b) => `${b.name} (${b.manifestDigest})`).join(', ')} is not in ${ctx.config.paths.bundles}`, {
        subject: { kind: 'bundle', name: bundle.path },
      });
    }
  }
  for (const bundle of bundles) {
    const trustedKey = ctx.config.paths.trustedKey;
    if (trustedKey) await checkNodeBundleSignature(bundle.sealPath, trustedKey, bundle.opened.sealBytes);
    if (ctx.state.isBundleVerified(bundle.path, bundle.fingerprint)) continue;
    checkAborted(ctx.signal);
    ctx.log(`verifying bundle ${bundle.path}`);
    await verifyNodeBundle(bundle.sealPath, { signal: ctx.signal, trustedKey, files: bundle.opened });
    ctx.state.markBundleVerified(bundle.path, bundle.fingerprint);
  }
  checkAborted(ctx.signal);
}

/**
 * The mirror stops serving bundles that left the bundle dir, first thing in a sync: unregistering re-checks
 * the deltas' bases, so a delta whose base an admin removed stops being served even though this sync then
 * fails on that base (otherwise the running service's mirror would keep serving its manifests, and answer
 * 404 for the layers the base held).
 */
async function forgetVanished(ctx: PreloadContext, bundles: readonly OpenNodeBundle[]): Promise<void> {
  const present = new Set(bundles.map((b) => b.path));
  for (const registered of ctx.store.listBundles()) if (!present.has(registered.path)) await ctx.store.unregisterBundle(registered.path);
}

/** The mirror must serve every bundle before the runtime is told to use it; registered only once verified. */
async function registerWithMirror(ctx: PreloadContext, bundles: readonly OpenNodeBundle[]): Promise<void> {
  for (const bundle of bundles) await ctx.store.registerBundle(bundle.opened);
}

/**
 * The final ImageStatus of each image. Right after we pinned, the runtime may still be taking it in (CRI-O's
 * reload, containerd's image event), so we wait (bounded) for it to report `pinned`; otherwise one pass.
 */
async function finalStatuses(ctx: PreloadContext, images: readonly DesiredImage[], waitForPins: boolean): Promise<Map<string, CriImage | undefined>> {
  const deadline = Date.now() + (waitForPins ? PINNED_REPORT_WAIT_MS : 0);
  for (;;) {
    const statuses = await imageStatuses(ctx.cri, images);
    const waiting = [...statuses.values()].some((s) => s !== undefined && !s.pinned);
    if (!waiting || Date.now() >= deadline || ctx.signal?.aborted) return statuses;
    await new Promise((r) => setTimeout(r, 500));
  }
}

/**
 * Removes the pin of every image that left the desired set (this sync or an earlier one that stopped before
 * doing it) and records them unpinned; the images themselves stay in the runtime for its GC to decide.
 */
async function releaseLeaving(sync: Sync): Promise<string[]> {
  const { ctx, method, images, changes } = sync;
  const leaving = ctx.state.leavingImages();
  if (leaving.length === 0) return [];
  const outcome = await unpinImages(ctx, method, leaving, images.map((i) => i.name));
  ctx.state.markUnpinned(leaving);
  ctx.log(`unpinned ${leaving.length} image(s) no longer in any bundle (kept in the runtime; its garbage collection may remove them)`);
  changes.changedFiles.push(...outcome.changedFiles);
  changes.reloads += outcome.reloads;
  return leaving;
}

/** ImageStatus of every desired image before pulling: which are present, which missing (both recorded). */
async function takeStock(sync: Sync): Promise<{ present: string[]; missing: DesiredImage[] }> {
  const { ctx, images } = sync;
  const before = await imageStatuses(ctx.cri, images);
  const present = images.filter((i) => before.get(i.name) !== undefined).map((i) => i.name);
  ctx.state.markPresent(present);
  ctx.state.markMissing(images.filter((i) => before.get(i.name) === undefined).map((i) => i.name));
  const missing = images.filter((i) => before.get(i.name) === undefined);
  return { present, missing };
}

/** Refuses the sync (StorageInsufficientError) before any pull when the missing images would not fit. */
async function checkSpace(sync: Sync, present: readonly string[], missing: readonly DesiredImage[]): Promise<void> {
  const { ctx, images, bundles } = sync;
  const { config } = ctx;
  const report = await checkStorage({
    cri: ctx.cri,
    imageFs: config.runtime.imageFs,
    // The present images' layers too: those already on disk are not counted again. Nothing missing,
    // nothing to read (a sync with everything in place stays fast).
    images: missing.length === 0 ? [] : await layersForPlatform(images, bundles, nodePlatform()),
    present: new Set(present),
    reserveBytes: config.storage.reserveBytes,
    runtime: config.runtime.kind,
  });
  if (missing.length > 0) ctx.log(`storage: ${report.mountpoint} has ${report.availableBytes} bytes available, ${report.requiredBytes} required`);
}

/** Serves every bundle from the mirror and points the runtime at it (its configuration, and a reload). */
async function serveBundles(sync: Sync): Promise<void> {
  const { ctx, images, bundles, changes } = sync;
  await registerWithMirror(ctx, bundles);
  const mirrorFiles = await applyMirrorConfig(ctx.config, images.map((i) => i.repository), images.filter((i) => i.servedByTag).map((i) => i.repository));
  changes.changedFiles.push(...mirrorFiles);
  changes.reloads += await reloadAfterChange(ctx, mirrorFiles, 'mirror configuration');
}

/** Pulls the missing images through CRI; any that cannot be pulled fails the sync. Returns those pulled. */
async function pullMissing(sync: Sync, missing: readonly DesiredImage[]): Promise<string[]> {
  const { ctx, images } = sync;
  const { config, state, log } = ctx;
  if (missing.length === 0) return [];
  log(`pulling ${missing.length} of ${images.length} image(s), ${config.pull.concurrency} at a time`);
  const outcome = await pullImages(ctx.cri, missing.map((i) => ({ name: i.name, bytes: i.bytes })), {
    concurrency: config.pull.concurrency,
    retries: config.pull.retries,
    baseTimeoutMs: config.pull.timeoutMs,
    ...(ctx.signal ? { signal: ctx.signal } : {}),
    ...(ctx.pull?.backoffMs ? { backoffMs: ctx.pull.backoffMs } : {}),
    onAttempt: (name, attempt, error) => {
      state.recordAttempt(name, error?.message);
      if (error) log(`pull ${name} attempt ${attempt} failed: ${error.message}`);
      else state.markPresent([name]);
    },
  });
  checkAborted(ctx.signal);
  if (outcome.noSpace) {
    for (const [name, error] of outcome.failed) state.markFailed(name, error.message);
    fail(state, 'StorageInsufficient', new UserError('STORAGE_INSUFFICIENT', `the image filesystem filled up while pulling: ${outcome.noSpace.message}; all remaining pulls were stopped`));
  }
  if (outcome.failed.size > 0) {
    for (const [name, error] of outcome.failed) state.markFailed(name, error.message);
    const first = [...outcome.failed][0]!;
    fail(state, 'PrefetchFailed', new UserError('PREFETCH_FAILED', `${outcome.failed.size} of ${missing.length} image(s) could not be pulled after ${config.pull.retries} attempt(s); first: ${first[0]}: ${first[1].message}`));
  }
  return outcome.pulled;
}

/** The MCO re-checks every image before pinning: a vanished one (GC, manual removal) fails the sync. */
async function recheckPresent(sync: Sync): Promise<void> {
  const { ctx, images } = sync;
  const after = await imageStatuses(ctx.cri, images);
  const vanished = images.filter((i) => after.get(i.name) === undefined).map((i) => i.name);
  if (vanished.length > 0) {
    ctx.state.markMissing(vanished);
    fail(ctx.state, 'PrefetchFailed', new UserError('PREFETCH_FAILED', `${vanished.length} image(s) are not in the runtime after pulling: ${vanished.slice(0, 5).join(', ')}`));
  }
}

/**
 * Pins every image (only now, with every image present: last, like the MCO, leaving GC a window before),
 * then records what the runtime reports pinned.
 */
async function pinAll(sync: Sync): Promise<{ pinned: string[]; unpinned: string[]; pinning: string }> {
  const { ctx, images, method, changes } = sync;
  const names = images.map((i) => i.name);
  const pins = await pinImages(ctx, method, names);
  changes.changedFiles.push(...pins.changedFiles);
  changes.reloads += pins.reloads;

  // Wait for the runtime to report pins only where it will (a CRI-O file on containerd 1.6 never does).
  const final = await finalStatuses(ctx, images, pins.changed && reportsPinsSoon(method));
  const gone = images.filter((i) => final.get(i.name) === undefined).map((i) => i.name);
  if (gone.length > 0) {
    ctx.state.markMissing(gone);
    fail(ctx.state, 'PrefetchFailed', new UserError('PREFETCH_FAILED', `${gone.length} image(s) vanished from the runtime while pinning: ${gone.slice(0, 5).join(', ')}`));
  }
  const pinned = names.filter((n) => final.get(n)?.pinned === true);
  const unpinned = names.filter((n) => final.get(n)?.pinned !== true);
  const pinning = pinningDescription(method, ctx.config, unpinned.length);
  ctx.state.recordSynced(names, pinned, pinning);
  return { pinned, unpinned, pinning };
}

/**
 * Runs one sync over the bundles in the bundle dir, each opened once. Throws PreloadFailedError (recorded) on
 * failure. When the sync ends with the newest release all pinned and [pins] keep_releases retires something,
 * a second sync (`retire` false) takes the retired images out through the usual unpinning, as if an admin
 * removed them; it reuses the bundles this one opened.
 */
export async function preloadOnce(ctx: PreloadContext, retire = true): Promise<PreloadResult> {
  const opened = new OpenBundles(ctx.openBundle);
  try {
    return await syncOnce(ctx, opened, retire);
  } finally {
    await opened.close();
  }
}

/**
 * The steps, in the MCO's order. Failures before Progressing is recorded (the bundle dir cannot be read) are
 * thrown as they are; after it, endSync decides.
 */
async function syncOnce(ctx: PreloadContext, opened: OpenBundles, retire: boolean): Promise<PreloadResult> {
  const { config, state, cri, log } = ctx;
  const bundles = await loadBundles(ctx, opened);
  const { setKey, images, retirement, applied } = desiredSet(bundles, config.pins.keepReleases, state);
  const generation = state.setDesired(setKey, images.map((i) => ({ name: i.name, bundle: i.bundle })));
  state.startProgressing(`generation ${generation}: ${images.length} image(s) from ${bundles.length} bundle(s)`);
  const changes = { changedFiles: [] as string[], reloads: 0 };
  try {
    const method = pinMethod(config, await cri.version());
    state.recordRuntime(method.runtime);
    const sync: Sync = { ctx, bundles, images, method, changes };
    await forgetVanished(ctx, bundles);
    const released = await releaseLeaving(sync);
    await verifyBundles(ctx, bundles);
    const { present, missing } = await takeStock(sync);
    await checkSpace(sync, present, missing);
    await serveBundles(sync);
    const pulled = await pullMissing(sync, missing);
    await recheckPresent(sync);
    const { pinned, unpinned, pinning } = await pinAll(sync);
    const { changedFiles, reloads } = changes;
    const result: PreloadResult = { generation, images: images.length, pulled, pinned, unpinned, pinning, released, retired: { releases: [], bundles: [] }, changedFiles, reloads };
    const retired = retire
      ? await applyRetirement(retirement, applied, new Set(pinned), {
          recordReleases: (releases) => state.recordRetiredReleases(releases),
          recordRemovedBundle: (bundle) => state.recordRemovedBundle(bundle.path, bundle.manifestDigest),
          log,
        })
      : undefined;
    if (!retired) return result;
    const next = await syncOnce(ctx, opened, false);
    return {
      ...next,
      pulled: [...pulled, ...next.pulled],
      released: [...released, ...next.released],
      retired,
      changedFiles: [...changedFiles, ...next.changedFiles],
      reloads: reloads + next.reloads,
    };
  } catch (err) {
    return endSync(state, err);
  }
}

/** Starts the mirror on [mirror] listen with the configured TLS files. */
export async function startNodeMirror(config: NodeConfig, store: BundleStore): Promise<RunningMirror> {
  const tls =
    config.mirror.tlsCert !== undefined && config.mirror.tlsKey !== undefined
      ? { cert: await readFile(config.mirror.tlsCert), key: await readFile(config.mirror.tlsKey) }
      : undefined;
  return startMirror({ store, listen: config.mirror.listen, ...(tls ? { tls } : {}), accessLog: false });
}

/**
 * `pin-preload preload`: opens everything, serves the mirror for the duration of the sync, runs it, and
 * closes everything again.
 */
export async function preload(config: NodeConfig, options: { signal?: AbortSignal; log?: (line: string) => void; pull?: PreloadContext['pull'] } = {}): Promise<PreloadResult> {
  const services = await openNodeServices(config);
  try {
    const cri = await CriImageService.connect(config.runtime.endpoint);
    try {
      const mirror = await startNodeMirror(config, services.store).catch((err: unknown) => {
        if (err instanceof UserError && err.code === 'LISTEN_FAILED' && errnoCode(err.cause) === 'EADDRINUSE') {
          throw new UserError('LISTEN_FAILED', `${err.message}: is pin-preload.service (pin-preload run) serving there?`, {
            hint: 'with the service running, just `pin-preload import BUNDLE`: the service pre-loads it; or stop the service first',
            cause: err,
          });
        }
        throw err;
      });
      try {
        return await preloadOnce({
          config,
          state: services.state,
          store: services.store,
          cri,
          log: options.log ?? (() => undefined),
          ...(options.signal ? { signal: options.signal } : {}),
          ...(options.pull ? { pull: options.pull } : {}),
        });
      } finally {
        await mirror.close();
      }
    } finally {
      cri.close();
    }
  } finally {
    services.close();
  }
}
