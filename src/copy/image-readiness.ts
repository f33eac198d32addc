// Which images of a copy may have their manifests written: an image is ready once every blob it needs is in its
// destination repository. An image with a blob that never got there (a failure) never becomes ready.

import type { Digest } from '../oci/digest.js';

/** What readiness needs of an image: where its blobs go and which they are. */
export interface ImageBlobs {
  readonly repository: string;
  readonly blobs: ReadonlyArray<{ readonly digest: Digest }>;
}

export class ImageReadiness<I extends ImageBlobs> {
  /** Blobs each image still waits for, each counted once per image. */
  private readonly waitingOn = new Map<I, number>();
  /** The images waiting for each repository@digest. */
  private readonly dependents = new Map<string, I[]>();
  /** Ready images not yet taken, in the order they became ready. */
  private readonly ready: I[] = [];

  constructor(images: readonly I[]) {
    for (const image of images) {
      const keys = new Set(image.blobs.map((blob) => placeKey(image.repository, blob.digest)));
      this.waitingOn.set(image, keys.size);
      if (keys.size === 0) this.ready.push(image);
      for (const key of keys) {
        let list = this.dependents.get(key);
        if (list === undefined) this.dependents.set(key, (list = []));
        list.push(image);
      }
    }
  }

  /** Blob `digest` is now in `repository`: the images that waited for it last become ready. Repeats count once. */
  blobPlaced(repository: string, digest: Digest): void {
    const key = placeKey(repository, digest);
    const waiting = this.dependents.get(key);
    if (waiting === undefined) return;
    this.dependents.delete(key);
    for (const image of waiting) {
      const left = this.waitingOn.get(image)! - 1;
      this.waitingOn.set(image, left);
      if (left === 0) this.ready.push(image);
    }
  }

  /** The next ready image (first ready, first out), or undefined when none is ready now. */
  next(): I | undefined {
    return this.ready.shift();
  }

  get hasReady(): boolean {
    return this.ready.length > 0;
  }
}

function placeKey(repository: string, digest: Digest): string {
  return `${repository}@${digest}`;
}
