// A MirrorStore over an OCI image layout directory (the demo's built-in upstream serving the sample).
// Everything is read once from the layout's own index.json; file paths come only from digests found
// there (hex validated by parseDigest), never from request text.

import fs from 'node:fs';
import path from 'node:path';
import { digestAlgorithm, digestHex, isDigest, type Digest } from '../oci/digest.js';
import type { Descriptor } from '../oci/manifest.js';
import { isManifestMediaType } from '../oci/media-types.js';
import { ManifestError, parseManifest } from '../oci/manifest.js';
import { parseReference, repositoryName, type Repository } from '../oci/reference.js';
import { UserError } from '../util/errors.js';
import { fileSegmentsBody } from './blob-body.js';
import { manifestFacts } from './manifest-facts.js';
import { resolveByContent, resolveRepository, type RepositoryDirectory, type RequestedName } from './names.js';
import { lexicalSort, type BlobBody, type ByteRange, type Lookup, type ManifestReference, type MirrorStore, type ReferrerRecord, type StoredBlob, type StoredManifest } from './store.js';

const REF_NAME = 'org.opencontainers.image.ref.name';
/** Index nesting deeper than this is not an image any client pulls; it also bounds the walk. */
const MAX_INDEX_DEPTH = 4;

interface LayoutManifest extends StoredManifest {
  readonly bytes: Buffer;
  readonly referrer?: ReferrerRecord;
}

interface LayoutRepository {
  readonly repository: Repository;
  readonly tags: Map<string, Digest>;
  readonly manifests: Set<Digest>;
}

export class LayoutStore implements MirrorStore, RepositoryDirectory {
  private readonly repos = new Map<string, LayoutRepository>();
  private readonly byPath = new Map<string, Repository[]>();
  private readonly manifests = new Map<Digest, Omit<LayoutManifest, 'repository'>>();
  private readonly blobs = new Map<Digest, { readonly size: number; readonly file: string }>();

  private constructor(readonly dir: string) {}

  static async open(dir: string): Promise<LayoutStore> {
    const store = new LayoutStore(path.resolve(dir));
    await store.load();
    return store;
  }

  private blobFile(digest: Digest): string {
    return path.join(this.dir, 'blobs', digestAlgorithm(digest), digestHex(digest));
  }

  private async load(): Promise<void> {
    const indexFile = path.join(this.dir, 'index.json');
    let index: { manifests?: unknown };
    try {
      index = JSON.parse(await fs.promises.readFile(indexFile, 'utf8')) as { manifests?: unknown };
    } catch (err) {
      throw new UserError('LAYOUT_INVALID', `${indexFile}: cannot read the OCI layout's index: ${(err as Error).message}`, {
        subject: { kind: 'path', name: indexFile },
      });
    }
    if (!Array.isArray(index.manifests)) throw new UserError('LAYOUT_INVALID', `${indexFile}: index.json has no manifests array`, { subject: { kind: 'path', name: indexFile } });
    for (const entry of index.manifests as Array<Partial<Descriptor>>) {
      const refName = entry.annotations?.[REF_NAME];
      if (typeof refName !== 'string' || typeof entry.digest !== 'string' || !isDigest(entry.digest) || typeof entry.mediaType !== 'string') continue;
      const ref = parseReference(refName);
      const repo = this.repository(ref);
      if (ref.tag !== undefined) repo.tags.set(ref.tag, entry.digest);
      await this.addManifest(repo, entry.digest, entry.mediaType, 0);
    }
  }

  private repository(ref: Repository): LayoutRepository {
    const key = repositoryName(ref);
    let repo = this.repos.get(key);
    if (!repo) {
      repo = { repository: { domain: ref.domain, path: ref.path }, tags: new Map(), manifests: new Set() };
      this.repos.set(key, repo);
      this.byPath.set(ref.path, [...(this.byPath.get(ref.path) ?? []), repo.repository]);
    }
    return repo;
  }

  private async addManifest(repo: LayoutRepository, digest: Digest, mediaType: string, depth: number): Promise<void> {
    if (depth > MAX_INDEX_DEPTH || !isManifestMediaType(mediaType)) return;
    repo.manifests.add(digest);
    let stored = this.manifests.get(digest);
    if (!stored) {
      const file = this.blobFile(digest);
      const bytes = await fs.promises.readFile(file);
      const facts = manifestFacts(bytes, digest, mediaType, file);
      stored = {
        digest,
        mediaType,
        size: bytes.length,
        bytes,
        ...(facts.defaultChild ? { defaultChild: facts.defaultChild } : {}),
        ...(facts.referrer ? { referrer: facts.referrer } : {}),
      };
      this.manifests.set(digest, stored);
      this.blobs.set(digest, { size: bytes.length, file });
    }
    // Children of an index belong to the same repository; an image's config and layers are its blobs.
    let manifest;
    try {
      manifest = parseManifest(stored.bytes, mediaType, digest);
    } catch (err) {
      if (err instanceof ManifestError) return; // served as stored; it just names no blobs we know of
      throw err;
    }
    if (manifest.kind === 'index') {
      for (const child of manifest.manifests) await this.addManifest(repo, child.digest, child.mediaType, depth + 1);
      return;
    }
    for (const blob of [manifest.config, ...manifest.layers]) {
      if (this.blobs.has(blob.digest)) continue;
      const file = this.blobFile(blob.digest);
      const stat = await fs.promises.stat(file).catch(() => undefined);
      if (stat?.isFile()) this.blobs.set(blob.digest, { size: stat.size, file }); // a missing layer is simply not served
    }
  }

  repositoriesAtPath(repoPath: string): readonly Repository[] {
    return this.byPath.get(repoPath) ?? [];
  }

  private holds(repository: Repository, digest: Digest): boolean {
    return this.repos.get(repositoryName(repository))?.manifests.has(digest) ?? false;
  }

  resolveManifest(name: RequestedName, reference: ManifestReference): Lookup<StoredManifest> {
    if (reference.digest !== undefined) {
      const digest = reference.digest;
      const found = resolveByContent(this, name, (repo) => this.holds(repo, digest));
      if ('miss' in found) return found;
      const stored = found.repository && this.manifests.get(digest);
      if (!found.repository || !stored) return { miss: 'MANIFEST_UNKNOWN', message: `manifest ${digest} is not in repository ${name.name}` };
      return { ...stored, repository: found.repository };
    }
    const resolved = resolveRepository(this, name);
    if ('miss' in resolved) return resolved;
    const digest = this.repos.get(repositoryName(resolved.repository))?.tags.get(reference.tag);
    const stored = digest && this.manifests.get(digest);
    if (!stored) return { miss: 'MANIFEST_UNKNOWN', message: `tag ${reference.tag} is not in repository ${repositoryName(resolved.repository)}` };
    return { ...stored, repository: resolved.repository };
  }

  async manifestBytes(manifest: StoredManifest): Promise<Buffer> {
    const stored = this.manifests.get(manifest.digest);
    if (!stored) throw new Error(`manifest ${manifest.digest} vanished from the layout index`);
    return stored.bytes;
  }

  statBlob(name: RequestedName, digest: Digest): Lookup<StoredBlob> {
    const found = resolveByContent(this, name, () => true);
    if ('miss' in found) return found;
    const blob = this.blobs.get(digest);
    if (!blob) return { miss: 'BLOB_UNKNOWN', message: `blob ${digest} is not in the layout` };
    return { digest, size: blob.size };
  }

  openBlob(blob: StoredBlob, range?: ByteRange): BlobBody {
    const stored = this.blobs.get(blob.digest);
    if (!stored) throw new Error(`blob ${blob.digest} vanished from the layout index`);
    const start = range?.start ?? 0;
    const end = range?.end ?? stored.size - 1;
    return fileSegmentsBody([{ path: stored.file, offset: start, length: end - start + 1 }]);
  }

  tags(name: RequestedName): Lookup<{ readonly tags: readonly string[] }> {
    const resolved = resolveRepository(this, name);
    if ('miss' in resolved) return resolved;
    return { tags: lexicalSort(this.repos.get(repositoryName(resolved.repository))?.tags.keys() ?? []) };
  }

  repositories(): readonly string[] {
    return lexicalSort(this.repos.keys());
  }

  referrers(name: RequestedName, digest: Digest, artifactType?: string): Lookup<{ readonly manifests: readonly Descriptor[] }> {
    const resolved = resolveRepository(this, name);
    if ('miss' in resolved) return resolved;
    const repo = this.repos.get(repositoryName(resolved.repository));
    const manifests: Descriptor[] = [];
    for (const d of repo?.manifests ?? []) {
      const referrer = this.manifests.get(d)?.referrer;
      if (referrer?.subject === digest && (artifactType === undefined || referrer.descriptor.artifactType === artifactType)) manifests.push(referrer.descriptor);
    }
    return { manifests };
  }
}
