// The push side of the registry client: an ImageDestination over the distribution push API (HEAD, mount,
// monolithic PUT or PATCH with resume, manifests and tags by PUT), authenticated as the client pulls.

import type { Readable } from 'node:stream';
import type { BlobReuse, BlobRef, ImageDestination, ManifestBytes } from '../copy/destination.js';
import { isDigest, type Digest } from '../oci/digest.js';
import { MANIFEST_ACCEPT } from '../oci/media-types.js';
import { UserError } from '../util/errors.js';
import type { RegistryClient, TargetRequest, TargetResponse } from './client.js';
import type { Endpoint } from './registries-conf.js';
import { StatusFailure } from './retry.js';
import { TargetKnowledge } from './target-knowledge.js';

/** Blobs up to this size go in one PUT; larger ones in a PATCH that a later try resumes where it broke. */
export const DEFAULT_MONOLITHIC_LIMIT = 32 * 1024 * 1024;

/** Answers to a mount POST that say "not this way" rather than 202 (the spec's answer of a registry that does not mount). */
const MOUNT_REFUSALS = [400, 404, 405, 501];

/** Whether a mount request failed because the target refuses mount requests (then none is asked again). */
function refusesMounts(error: unknown): boolean {
  return MOUNT_REFUSALS.some((status) => isStatus(error, status));
}

export interface RegistryTarget {
  /** "HOST[:PORT]" */
  readonly host: string;
  /** Plain HTTP or unverified TLS allowed (`--dest-tls-verify=false`; loopback hosts are anyway). */
  readonly insecure: boolean;
}

function header(res: TargetResponse, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function isStatus(error: unknown, status: number): boolean {
  return error instanceof StatusFailure && error.status === status;
}

export class RegistryDestination implements ImageDestination {
  readonly name: string;
  /**
   * Uploads started and not finished, per repository and blob: a retry GETs its offset and goes on; one
   * `fresh` from a mount's 202 has had no byte sent yet.
   */
  private readonly uploads = new Map<string, { readonly location: string; readonly fresh: boolean }>();
  private readonly knowledge = new TargetKnowledge();
  /** Off once the target refused a mount request (MOUNT_REFUSALS). */
  private mounts = true;
  /** Whether this push has asked the target once whether it mounts (probeMounts). */
  private probed = false;

  constructor(
    private readonly client: RegistryClient,
    private readonly target: RegistryTarget,
    private readonly monolithicLimit = DEFAULT_MONOLITHIC_LIMIT,
  ) {
    this.name = target.host;
  }

  private endpoint(repository: string): Endpoint {
    return { host: this.target.host, path: repository, insecure: this.target.insecure, mirror: false };
  }

  private request(repository: string, request: Omit<TargetRequest, 'scope'> & { scope?: string }): Promise<TargetResponse> {
    return this.client.targetRequest(this.endpoint(repository), { scope: `repository:${repository}:pull,push`, ...request });
  }

  /** A request whose answer has no body we need; the body is drained so the connection is reused. */
  private async exchange(repository: string, request: Omit<TargetRequest, 'scope'> & { scope?: string }): Promise<TargetResponse> {
    const res = await this.request(repository, request);
    await res.body.dump();
    return res;
  }

  async reuseBlob(repository: string, blob: BlobRef, mountFrom: string | undefined, signal?: AbortSignal): Promise<BlobReuse> {
    if (this.uploads.has(uploadKey(repository, blob.digest))) return 'absent'; // an upload of it started already (a retried step): putBlob goes on with it
    // A blob this run put into another repository, on a target that has answered some mount with 201: the
    // mount answers whether it is here too, one request for two. 201 then cannot tell "was here" from
    // "mounted"; either way no byte moves. Without that 201 a 202 could come from a registry that does not
    // mount and holds the blob here: HEAD first.
    if (mountFrom !== undefined && this.knowledge.mountsProven() && this.knowledge.placedIn(mountFrom, blob.digest)) {
      const reuse = await this.tryMount(repository, blob, mountFrom, signal);
      if (reuse !== undefined) return reuse;
    }
    // A repository that has answered only "absent" so far (or, not asked yet, in a target that has), on a
    // target that has answered some mount with 201: a mount from the repository itself answers the same
    // question and, when the blob is absent, starts its upload (distribution links a blob the repository
    // holds and answers 201, else 202 with the upload). A HEAD and a POST become one POST. Without that 201
    // a 202 could be a registry that does not mount, holding the blob: HEAD first.
    if (this.knowledge.asksByOwnMount(repository)) {
      const reuse = await this.tryMount(repository, blob, repository, signal);
      if (reuse !== undefined) return reuse;
    }
    try {
      await this.exchange(repository, { method: 'HEAD', path: `/v2/${repository}/blobs/${blob.digest}`, headers: {}, keepAlive: true, signal });
      this.knowledge.blobPresent(repository);
      return 'present';
    } catch (error) {
      if (!isStatus(error, 404)) throw error;
    }
    this.knowledge.blobAbsent(repository);
    if (mountFrom === undefined) return 'absent';
    return (await this.tryMount(repository, blob, mountFrom, signal)) ?? 'absent';
  }

  /** A mount, or undefined when this target refuses mount requests (then never asked one again: HEAD and a plain POST instead). */
  private async tryMount(repository: string, blob: BlobRef, from: string, signal: AbortSignal | undefined): Promise<BlobReuse | undefined> {
    if (!this.mounts) return undefined;
    try {
      return await this.mount(repository, blob, from, signal);
    } catch (error) {
      if (!refusesMounts(error)) throw error;
      this.mounts = false;
      return undefined;
    }
  }

  /**
   * POST …/uploads/?mount=&from=: 201 when the registry linked the blob (from another repository, or the
   * repository already held it), 202 with a started upload otherwise (no mounting, or nothing to mount):
   * putBlob then sends into that upload.
   */
  private async mount(repository: string, blob: BlobRef, from: string, signal: AbortSignal | undefined): Promise<BlobReuse> {
    const self = from === repository;
    const res = await this.exchange(repository, {
      method: 'POST',
      path: mountPath(repository, blob.digest, from),
      headers: { 'content-length': '0' },
      scope: self ? `repository:${repository}:pull,push` : `repository:${repository}:pull,push repository:${from}:pull`,
      signal,
    });
    if (res.statusCode === 201) {
      this.knowledge.mountLinked();
      // Linked from the repository itself: it was there before this run, not placed by it.
      if (self) this.knowledge.blobPresent(repository);
      else this.knowledge.blobPlaced(repository, blob.digest);
      return self ? 'present' : 'mounted';
    }
    if (self) this.knowledge.blobAbsent(repository);
    const location = header(res, 'location');
    if (location !== undefined) this.uploads.set(uploadKey(repository, blob.digest), { location: this.locationOf(repository, res), fresh: true });
    return 'absent';
  }

  async putBlob(repository: string, blob: BlobRef, open: (offset: number) => Readable, signal?: AbortSignal): Promise<number> {
    const key = uploadKey(repository, blob.digest);
    const started = this.uploads.get(key);
    let location = started?.location;
    let offset = 0;
    // An upload that may hold bytes of an earlier try: ask where it stands. One just started holds none.
    if (started !== undefined && !started.fresh) {
      const known = await this.uploadOffset(repository, started.location, signal);
      if (known === undefined) location = undefined;
      else offset = known;
    }
    if (location === undefined) {
      const res = await this.exchange(repository, { method: 'POST', path: `/v2/${repository}/blobs/uploads/`, headers: { 'content-length': '0' }, signal });
      location = this.locationOf(repository, res);
    }
    // From here bytes may reach the upload: a retry asks for its offset first.
    this.uploads.set(key, { location, fresh: false });
    const sent = blob.size - offset;
    if (blob.size <= this.monolithicLimit && offset === 0) {
      await this.exchange(repository, {
        method: 'PUT',
        path: withDigest(location, blob.digest),
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(blob.size) },
        body: () => open(0),
        signal,
      });
    } else {
      if (offset < blob.size) {
        const res = await this.exchange(repository, {
          method: 'PATCH',
          path: location,
          headers: { 'content-type': 'application/octet-stream', 'content-length': String(sent), 'content-range': `${offset}-${blob.size - 1}` },
          body: () => open(offset),
          signal,
        });
        location = this.locationOf(repository, res);
        this.uploads.set(key, { location, fresh: false });
      }
      await this.exchange(repository, { method: 'PUT', path: withDigest(location, blob.digest), headers: { 'content-length': '0' }, signal });
    }
    this.uploads.delete(key);
    this.knowledge.blobPlaced(repository, blob.digest);
    await this.probeMounts(repository, blob.digest, signal);
    return sent;
  }

  /**
   * Once per push, after its first upload, unless a mount answered already: a mount of that blob from its
   * own repository. A registry that mounts links it (201), and from then on its 202 means "absent" (reuseBlob
   * asks by mount). One that ignores `mount` or cannot mount the blob (ECR: no manifest references it yet)
   * starts an upload (202), deleted at once; the push goes on with HEAD + POST. Without it the first 201 comes
   * from a cross-repository mount, late in a push (docs/benchmarks.md, Push).
   */
  private async probeMounts(repository: string, digest: Digest, signal: AbortSignal | undefined): Promise<void> {
    if (this.probed || !this.mounts || this.knowledge.mountsProven()) return;
    this.probed = true;
    let res: TargetResponse;
    try {
      res = await this.exchange(repository, { method: 'POST', path: mountPath(repository, digest, repository), headers: { 'content-length': '0' }, signal });
    } catch (error) {
      if (refusesMounts(error)) this.mounts = false;
      // Otherwise the answer only decides how later blobs are asked: HEAD + POST, as before a 201. The blob
      // is in; the next request meets any real trouble of the target.
      return;
    }
    if (res.statusCode === 201) {
      this.knowledge.mountLinked();
      return;
    }
    // A 202 for a blob the repository holds: this target's own-repository mounts say nothing, whatever a
    // later cross-repository 201 shows.
    this.knowledge.ownMountsUninformative();
    if (header(res, 'location') !== undefined) await this.cancelUpload(repository, this.locationOf(repository, res), signal);
  }

  /**
   * Cancels an upload the probe started. distribution wants the `delete` action for it, which a token server
   * may not grant: asked with its own scope, so a refusal leaves the push's pull,push token alone. A refusal
   * or any failure is ignored: the upload is left to the registry's purge of stale uploads, and says nothing
   * about mounting.
   */
  private async cancelUpload(repository: string, location: string, signal: AbortSignal | undefined): Promise<void> {
    await this.exchange(repository, { method: 'DELETE', path: location, headers: {}, scope: `repository:${repository}:delete`, signal }).catch(() => undefined);
  }

  /** Where an interrupted upload stands (GET of its URL: `Range: 0-N`), or undefined to start a new one (forgotten, or nothing usable kept). */
  private async uploadOffset(repository: string, location: string, signal: AbortSignal | undefined): Promise<number | undefined> {
    try {
      const res = await this.exchange(repository, { method: 'GET', path: location, headers: {}, signal });
      const range = /^(?:bytes=)?0-(\d+)$/.exec(header(res, 'range') ?? '');
      // distribution answers "0-0" for an empty upload and for one of one byte: start a new upload then.
      const end = range ? Number(range[1]) : 0;
      return end > 0 ? end + 1 : undefined;
    } catch (error) {
      if (isStatus(error, 404)) return undefined;
      throw error;
    }
  }

  /** The upload URL from a Location header as a path on the target (registries answer absolute URLs too). */
  private locationOf(repository: string, res: TargetResponse): string {
    const location = header(res, 'location');
    if (location === undefined) {
      throw new UserError('PUSH_FAILED', `${this.target.host} started an upload to ${repository} without a Location header`, { subject: { kind: 'registry', name: this.target.host } });
    }
    const url = new URL(location, `http://${this.target.host}`);
    if (url.host !== this.target.host) {
      throw new UserError('PUSH_FAILED', `${this.target.host} sent the upload to ${repository} to another host ${url.host}, which pin-preload does not follow`, { subject: { kind: 'registry', name: this.target.host } });
    }
    return `${url.pathname}${url.search}`;
  }

  async hasManifest(repository: string, digest: Digest, signal?: AbortSignal): Promise<boolean> {
    return (await this.manifestDigest(repository, digest, signal)) !== undefined;
  }

  async putManifest(repository: string, manifest: ManifestBytes, signal?: AbortSignal): Promise<void> {
    await this.putManifestAs(repository, manifest.digest, manifest, signal);
  }

  tagDigest(repository: string, tag: string, signal?: AbortSignal): Promise<Digest | undefined> {
    return this.manifestDigest(repository, tag, signal);
  }

  async putTag(repository: string, tag: string, manifest: ManifestBytes, signal?: AbortSignal): Promise<void> {
    await this.putManifestAs(repository, tag, manifest, signal);
  }

  async commit(): Promise<void> {
    // A registry makes each manifest visible as it is PUT: nothing is left to do.
  }

  async close(): Promise<void> {
    // The client is the caller's, as is closing it.
  }

  private async manifestDigest(repository: string, selector: string, signal: AbortSignal | undefined): Promise<Digest | undefined> {
    try {
      const res = await this.exchange(repository, { method: 'HEAD', path: `/v2/${repository}/manifests/${selector}`, headers: { accept: MANIFEST_ACCEPT }, keepAlive: true, signal });
      const served = header(res, 'docker-content-digest');
      if (served !== undefined && isDigest(served)) return served;
      return isDigest(selector) ? selector : undefined;
    } catch (error) {
      if (isStatus(error, 404)) return undefined;
      throw error;
    }
  }

  private async putManifestAs(repository: string, selector: string, manifest: ManifestBytes, signal: AbortSignal | undefined): Promise<void> {
    await this.exchange(repository, {
      method: 'PUT',
      path: `/v2/${repository}/manifests/${selector}`,
      headers: { 'content-type': manifest.mediaType, 'content-length': String(manifest.bytes.length) },
      body: () => manifest.bytes,
      signal,
    });
  }
}

/** The key of a blob's upload to one repository in `uploads`. */
function uploadKey(repository: string, digest: Digest): string {
  return `${repository}@${digest}`;
}

/** POST …/uploads/?mount=&from=: link the blob from another repository (or find it in this one). */
function mountPath(repository: string, digest: Digest, from: string): string {
  return `/v2/${repository}/blobs/uploads/?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(from)}`;
}

function withDigest(location: string, digest: Digest): string {
  return `${location}${location.includes('?') ? '&' : '?'}digest=${encodeURIComponent(digest)}`;
}
