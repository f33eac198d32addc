// A bounded reader of OpenPGP messages (RFC 4880 / 9580 packet framing) that finds the signed literal data of
// a release signature; it checks the framing only — the cryptography is gpgv's job (release-keyring.ts).

import { inflateRawSync, inflateSync } from 'node:zlib';

/** Release signatures are about 600 bytes; their payload JSON well under 1 KiB. Anything far bigger is not one. */
export const MAX_SIGNATURE_BYTES = 1024 * 1024;
/**
 * What all the compressed packets of one message may inflate to together (a payload is under 1 KiB). One budget
 * for the whole walk, not one per packet: packets that each stay under a per-packet limit could still fan out
 * into thousands of synchronous inflations, blocking the event loop for minutes (Ctrl-C included).
 */
const MAX_INFLATED_BYTES = 1024 * 1024;
/** Compressed data inside compressed data is legal but a signature never nests more than once. */
const MAX_NESTING = 4;
/** A signed message is a handful of packets (one-pass signature, literal data, signature, maybe a marker). */
const MAX_PACKETS = 64;
/** New-format partial body lengths chain chunks; cap them so a crafted stream cannot loop for long. */
const MAX_PARTIAL_CHUNKS = 4096;

/** The packet types a signed message is made of (RFC 4880 §4.3). */
export const PacketTag = { Signature: 2, OnePassSignature: 4, CompressedData: 8, Marker: 10, LiteralData: 11 } as const;

export interface OpenPgpPacket {
  readonly tag: number;
  readonly body: Buffer;
}

/** A message that is not a well-formed OpenPGP signed message; `offset` is where reading stopped. */
export class OpenPgpFormatError extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(`${message} (at byte ${offset})`);
    this.name = 'OpenPgpFormatError';
  }
}

/** Splits `bytes` into packets (old and new headers, partial body lengths joined), never reading past its end. */
export function parsePackets(bytes: Buffer): OpenPgpPacket[] {
  const packets: OpenPgpPacket[] = [];
  let at = 0;
  const need = (n: number, what: string) => {
    if (at + n > bytes.length) throw new OpenPgpFormatError(`truncated ${what}: needs ${n} more bytes, ${bytes.length - at} left`, at);
  };
  while (at < bytes.length) {
    if (packets.length >= MAX_PACKETS) throw new OpenPgpFormatError(`more than ${MAX_PACKETS} packets`, at);
    const ctb = bytes[at]!;
    if ((ctb & 0x80) === 0) throw new OpenPgpFormatError(`byte 0x${ctb.toString(16).padStart(2, '0')} is not a packet header`, at);
    at += 1;
    if ((ctb & 0x40) === 0) {
      // Old format: tag in bits 5–2, length type in bits 1–0 (3 = to the end of the input).
      const tag = (ctb >> 2) & 0x0f;
      const lengthType = ctb & 0x03;
      let length: number;
      if (lengthType === 3) length = bytes.length - at;
      else {
        const width = 1 << lengthType;
        need(width, 'packet length');
        length = bytes.readUIntBE(at, width);
        at += width;
      }
      need(length, `packet ${tag} body`);
      packets.push({ tag, body: bytes.subarray(at, at + length) });
      at += length;
      continue;
    }
    const tag = ctb & 0x3f;
    const chunks: Buffer[] = [];
    for (let chunk = 0; ; chunk++) {
      if (chunk >= MAX_PARTIAL_CHUNKS) throw new OpenPgpFormatError(`packet ${tag} has more than ${MAX_PARTIAL_CHUNKS} partial body chunks`, at);
      need(1, 'packet length');
      const first = bytes[at]!;
      let length: number;
      let partial = false;
      if (first < 192) {
        length = first;
        at += 1;
      } else if (first < 224) {
        need(2, 'packet length');
        length = ((first - 192) << 8) + bytes[at + 1]! + 192;
        at += 2;
      } else if (first === 255) {
        need(5, 'packet length');
        length = bytes.readUInt32BE(at + 1);
        at += 5;
      } else {
        length = 1 << (first & 0x1f);
        partial = true;
        at += 1;
      }
      need(length, `packet ${tag} body`);
      chunks.push(bytes.subarray(at, at + length));
      at += length;
      if (!partial) break;
    }
    packets.push({ tag, body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks) });
  }
  return packets;
}

/** `allowed`: the bytes left of the message's inflation budget (MAX_INFLATED_BYTES). */
function inflate(packet: OpenPgpPacket, offset: number, allowed: number): Buffer {
  const algorithm = packet.body[0];
  const data = packet.body.subarray(1);
  const tooLarge = () => new OpenPgpFormatError(`compressed data inflates to more than the ${MAX_INFLATED_BYTES} bytes a whole signed message may inflate to`, offset);
  if ((algorithm === 1 || algorithm === 2) && allowed < 1) throw tooLarge();
  try {
    switch (algorithm) {
      case 0:
        return data;
      case 1:
        return inflateRawSync(data, { maxOutputLength: allowed });
      case 2:
        return inflateSync(data, { maxOutputLength: allowed });
      case undefined:
        throw new OpenPgpFormatError('empty compressed data packet', offset);
      default:
        throw new OpenPgpFormatError(`compression algorithm ${algorithm} is not supported (only ZIP and ZLIB, which gpg and the release signers use)`, offset);
    }
  } catch (err) {
    if (err instanceof OpenPgpFormatError) throw err;
    if ((err as { code?: unknown }).code === 'ERR_BUFFER_TOO_LARGE') throw tooLarge();
    throw new OpenPgpFormatError(`compressed data does not inflate: ${(err as Error).message}`, offset);
  }
}

/**
 * The literal data of a signed message: compressed packets are opened (ZIP, ZLIB, or stored), and the message
 * must hold exactly one literal data packet and at least one signature packet, as `gpg --sign` writes.
 */
export function signedLiteralData(message: Buffer): Buffer {
  if (message.length > MAX_SIGNATURE_BYTES) throw new OpenPgpFormatError(`message of ${message.length} bytes is larger than ${MAX_SIGNATURE_BYTES}`, 0);
  let literal: Buffer | undefined;
  let signatures = 0;
  let inflated = 0;
  const walk = (bytes: Buffer, depth: number) => {
    if (depth > MAX_NESTING) throw new OpenPgpFormatError(`compressed packets nested more than ${MAX_NESTING} deep`, 0);
    const packets = parsePackets(bytes);
    // gpg wraps the whole message in one compressed packet; two side by side are never a signature, and refusing
    // them before inflating either keeps the walk a chain instead of a tree.
    if (packets.filter((p) => p.tag === PacketTag.CompressedData).length > 1) throw new OpenPgpFormatError('more than one compressed data packet side by side', 0);
    for (const packet of packets) {
      switch (packet.tag) {
        case PacketTag.CompressedData: {
          const inner = inflate(packet, 0, MAX_INFLATED_BYTES - inflated);
          if (packet.body[0] !== 0) inflated += inner.length;
          walk(inner, depth + 1);
          break;
        }
        case PacketTag.LiteralData:
          if (literal !== undefined) throw new OpenPgpFormatError('more than one literal data packet', 0);
          literal = literalBody(packet.body);
          break;
        case PacketTag.Signature:
          signatures += 1;
          break;
        case PacketTag.OnePassSignature:
        case PacketTag.Marker:
          break;
        default:
          throw new OpenPgpFormatError(`packet type ${packet.tag} does not belong in a signed message`, 0);
      }
    }
  };
  walk(message, 0);
  if (literal === undefined) throw new OpenPgpFormatError('no literal data packet (nothing was signed)', 0);
  if (signatures === 0) throw new OpenPgpFormatError('no signature packet', 0);
  return literal;
}

/** Literal data body: format octet, file name (length-prefixed), 4-byte date, then the data. */
function literalBody(body: Buffer): Buffer {
  if (body.length < 6) throw new OpenPgpFormatError(`literal data packet of ${body.length} bytes is too short`, 0);
  const nameLength = body[1]!;
  const start = 2 + nameLength + 4;
  if (start > body.length) throw new OpenPgpFormatError(`literal data packet's file name (${nameLength} bytes) runs past its end`, 0);
  return body.subarray(start);
}
