// A read or write of a bundle volume (or of its copy) that failed, named by file, byte and what lies there:
// an EIO on the media says which volume, where, and which blob, not only "i/o error, read".

import { promises as fs } from 'node:fs';
import { errnoCode, isSystemError, UserError } from '../util/errors.js';

export type VolumeIo = 'read' | 'write';

/** Where an I/O error happened: the file read (a volume) or written (its copy), the byte in it, what lies there. */
export interface VolumeIoPlace {
  readonly io: VolumeIo;
  readonly path: string;
  /** The byte in the file; absent for a small file read whole (a seal, a signature), where no byte is known. */
  readonly offset?: number | undefined;
  /** What was being read or written ("blob sha256:…"), when known. */
  readonly what?: string | undefined;
  /** What the file is, when not a volume (or its copy): "the seal", "the signature". */
  readonly file?: string | undefined;
}

export class VolumeIoError extends Error implements VolumeIoPlace {
  /** The system error's code (EIO, ENOSPC, …), kept for callers that switch on it. */
  readonly code: string | undefined;
  readonly io: VolumeIo;
  readonly path: string;
  readonly offset: number | undefined;
  readonly what: string | undefined;
  readonly file: string | undefined;
  /** The system's own words ("EIO: i/o error, read"). */
  readonly reason: string;

  constructor(place: VolumeIoPlace, reason: { readonly message: string; readonly code?: string | undefined }, cause?: unknown) {
    const file = `${place.file ?? (place.io === 'read' ? 'volume' : 'the copy')} ${place.path}`;
    super(`${place.io === 'read' ? 'reading' : 'writing'} ${file}${place.offset === undefined ? '' : ` at byte ${place.offset}`}${place.what ? ` (${place.what})` : ''} failed: ${reason.message}`, cause === undefined ? undefined : { cause });
    this.name = 'VolumeIoError';
    this.code = reason.code;
    this.io = place.io;
    this.path = place.path;
    this.offset = place.offset;
    this.what = place.what;
    this.file = place.file;
    this.reason = reason.message;
  }

  /** The same error naming what lies at its byte, for a reader that knows what it read there (a tar entry). */
  naming(what: string): VolumeIoError {
    return new VolumeIoError({ io: this.io, path: this.path, offset: this.offset, what, file: this.file }, { message: this.reason, code: this.code }, this.cause);
  }
}

/** A system error (isSystemError) of an I/O at `place` as a VolumeIoError; anything else (a bug, an error already placed) as it is. */
export function placeIoError(err: unknown, place: VolumeIoPlace): unknown {
  // Only the system's errors: a bug's (ERR_OUT_OF_RANGE) or a cancellation (ABORT_ERR) keeps what it is.
  if (err instanceof VolumeIoError || !isSystemError(err) || !(err instanceof Error)) return err;
  return new VolumeIoError(place, { message: err.message, code: errnoCode(err) }, err);
}

/** `err` naming what lies at its byte when it is a VolumeIoError that names nothing yet; anything else as it is. */
export function nameIoError(err: unknown, what: string): unknown {
  return err instanceof VolumeIoError && err.what === undefined ? err.naming(what) : err;
}

/**
 * A failed read of a bundle's file (a volume, its seal, its signature) as BUNDLE_READ_FAILED, naming the file (its
 * subject), the byte and what lies there: the media's fault, not a bug. The one place every reader of a bundle
 * (verify, push, inspect, import, locating a bundle, the node's opening of one) turns it into the user's error,
 * its message "bundle B: …" unless `message` says it otherwise (import's); anything else as it is.
 */
export function bundleReadFailure(err: unknown, bundle: string, message?: (err: VolumeIoError) => string): unknown {
  if (!(err instanceof VolumeIoError) || err.io !== 'read') return err;
  return new UserError('BUNDLE_READ_FAILED', message ? message(err) : `bundle ${bundle}: ${err.message}`, { subject: { kind: 'path', name: err.path }, cause: err });
}

/** A bundle's small file read whole (its seal, its signature), a system error placed at it as a read of `file` ("the seal"). */
export async function readBundleFile(path: string, file: string): Promise<Buffer> {
  try {
    return await fs.readFile(path);
  } catch (err) {
    throw placeIoError(err, { io: 'read', path, file });
  }
}
