// A read or write of a bundle volume (or of its copy) that failed, named by file, byte and what lies there:
// an EIO on the media says which volume, where, and which blob, not only "i/o error, read".

import { errnoCode, UserError } from '../util/errors.js';

export type VolumeIo = 'read' | 'write';

/** Where an I/O error happened: the file read (a volume) or written (its copy), the byte in it, what lies there. */
export interface VolumeIoPlace {
  readonly io: VolumeIo;
  readonly path: string;
  readonly offset: number;
  /** What was being read or written ("blob sha256:…"), when known. */
  readonly what?: string | undefined;
}

export class VolumeIoError extends Error implements VolumeIoPlace {
  /** The system error's code (EIO, ENOSPC, …), kept for callers that switch on it. */
  readonly code: string | undefined;
  readonly io: VolumeIo;
  readonly path: string;
  readonly offset: number;
  readonly what: string | undefined;
  /** The system's own words ("EIO: i/o error, read"). */
  readonly reason: string;

  constructor(place: VolumeIoPlace, reason: { readonly message: string; readonly code?: string | undefined }, cause?: unknown) {
    const file = place.io === 'read' ? `volume ${place.path}` : `the copy ${place.path}`;
    super(`${place.io === 'read' ? 'reading' : 'writing'} ${file} at byte ${place.offset}${place.what ? ` (${place.what})` : ''} failed: ${reason.message}`, cause === undefined ? undefined : { cause });
    this.name = 'VolumeIoError';
    this.code = reason.code;
    this.io = place.io;
    this.path = place.path;
    this.offset = place.offset;
    this.what = place.what;
    this.reason = reason.message;
  }

  /** The same error naming what lies at its byte, for a reader that knows what it read there (a tar entry). */
  naming(what: string): VolumeIoError {
    return new VolumeIoError({ io: this.io, path: this.path, offset: this.offset, what }, { message: this.reason, code: this.code }, this.cause);
  }
}

/** A system error (one with a code) of an I/O at `place` as a VolumeIoError; anything else (a bug, an error already placed) as it is. */
export function placeIoError(err: unknown, place: VolumeIoPlace): unknown {
  const code = errnoCode(err);
  if (err instanceof VolumeIoError || code === undefined || !(err instanceof Error)) return err;
  return new VolumeIoError(place, { message: err.message, code }, err);
}

/** `err` naming what lies at its byte when it is a VolumeIoError that names nothing yet; anything else as it is. */
export function nameIoError(err: unknown, what: string): unknown {
  return err instanceof VolumeIoError && err.what === undefined ? err.naming(what) : err;
}

/**
 * A failed read of a bundle's volume as BUNDLE_READ_FAILED, naming the volume (its subject), the byte and what
 * lies there: the media's fault, not a bug. The one place every reader of a bundle (verify, push, inspect, the
 * node's opening of a bundle) turns it into the user's error; anything else as it is.
 */
export function bundleReadFailure(err: unknown, bundle: string): unknown {
  if (!(err instanceof VolumeIoError) || err.io !== 'read') return err;
  return new UserError('BUNDLE_READ_FAILED', `bundle ${bundle}: ${err.message}`, { subject: { kind: 'path', name: err.path }, cause: err });
}
