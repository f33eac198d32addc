// What a push has learnt about its target from the answers so far: which repositories answered only
// "absent", whether the target mounts, and which blobs this run placed where. It lets the push skip
// questions already answered.

import type { Digest } from '../oci/digest.js';

interface RepositoryAnswers {
  absent: boolean;
  present: boolean;
}

/** Answers about blobs, per repository, and which blobs this run put where (mount sources). */
export class TargetKnowledge {
  private readonly repositories = new Map<string, RepositoryAnswers>();
  private readonly placed = new Set<string>();
  private anyAbsent = false;
  private anyPresent = false;
  private mounts = false;
  private ownMountsSayNothing = false;

  private answers(repository: string): RepositoryAnswers {
    let answers = this.repositories.get(repository);
    if (answers === undefined) {
      answers = { absent: false, present: false };
      this.repositories.set(repository, answers);
    }
    return answers;
  }

  blobAbsent(repository: string): void {
    this.answers(repository).absent = true;
    this.anyAbsent = true;
  }

  blobPresent(repository: string): void {
    this.answers(repository).present = true;
    this.anyPresent = true;
  }

  /**
   * The target answered a mount with 201: it mounts, so its 202 to a mount says "absent". Before that a 202
   * says nothing: a registry that ignores `mount`, or cannot mount this blob (ECR for a blob no manifest
   * references yet), answers 202 for a blob it holds.
   */
  mountLinked(): void {
    this.mounts = true;
  }

  /**
   * A mount of a blob from the repository that holds it answered 202: this target does not link a blob to
   * its own repository, so its 202 to such a mount is no "absent", even after a cross-repository 201.
   */
  ownMountsUninformative(): void {
    this.ownMountsSayNothing = true;
  }

  /** Whether some mount has answered 201. */
  mountsProven(): boolean {
    return this.mounts;
  }

  /** This run uploaded the blob into the repository, or mounted it there from another repository. */
  blobPlaced(repository: string, digest: Digest): void {
    this.placed.add(`${repository}@${digest}`);
  }

  placedIn(repository: string, digest: Digest): boolean {
    return this.placed.has(`${repository}@${digest}`);
  }

  /**
   * Whether a mount from the repository itself may stand for a HEAD: the target has proved that it mounts,
   * has not answered such a mount of a blob it holds with 202, and the repository looks empty of this push's blobs.
   */
  asksByOwnMount(repository: string): boolean {
    return this.mounts && !this.ownMountsSayNothing && this.looksEmpty(repository);
  }

  /**
   * Whether the repository looks empty of this push's blobs: it answered absent and never present, or it
   * was not asked yet and the whole target answered so. A re-run of a finished push finds blobs present
   * from its first answer on, so it never looks empty.
   */
  looksEmpty(repository: string): boolean {
    const answers = this.repositories.get(repository);
    if (answers?.present === true) return false;
    if (answers?.absent === true) return true;
    return this.anyAbsent && !this.anyPresent;
  }
}
