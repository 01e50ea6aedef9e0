/**
 * The multicast wire format, as pure functions on `Uint8Array` (no socket, no crypto).
 *
 * ```
 * offset  size  field
 * 0       1     magic 0x72 ('r')
 * 1       1     version (high nibble, 1) | flags (bit 0: body is AES-256-GCM sealed)
 * 2       8     sender id (random per channel; rotated when seq would wrap)
 * 10      4     sequence number, uint32 big-endian, +1 per datagram
 * 14      ...   body: messages, each an unsigned-varint length then that many bytes
 *               (sealed: the encrypted body followed by a 16-byte GCM tag; the header is AAD)
 * ```
 * The 12 bytes at offset 2 (sender id + sequence number) are the GCM nonce.
 * @module
 */
import { encodeBatch, framedSize } from '../framing/encoder.js'
import { varintLength } from '../framing/varint.js'

/** First byte of every rxnet datagram. */
export const MAGIC = 0x72
/** Wire version carried in the high nibble of byte 1. */
export const VERSION = 1
/** Flag bit of byte 1: the body is sealed with AES-256-GCM. */
export const FLAG_SEALED = 0x01
/** Bytes of the sender id. */
export const SENDER_ID_BYTES = 8
/** Bytes of the fixed header (magic, version/flags, sender id, sequence number). */
export const HEADER_BYTES = 2 + SENDER_ID_BYTES + 4
/** Bytes of the GCM tag appended to a sealed body. */
export const TAG_BYTES = 16
/** Largest UDP payload over IPv4. */
export const MAX_UDP_PAYLOAD = 65_507

/** A parsed datagram header (the body is not looked at). */
export interface DatagramHeader {
  /** Body is sealed. */
  sealed: boolean
  /** Sender id as 16 lowercase hex digits. */
  senderId: string
  /** Sequence number (uint32). */
  seq: number
}

/** Why a datagram was rejected by {@link parseHeader} or {@link decodeBody}. */
export type DatagramFault = 'truncated' | 'foreign' | 'version' | 'malformed'

/** Bytes of framing around the messages of one datagram. */
export function overhead(sealed: boolean): number {
  return HEADER_BYTES + (sealed ? TAG_BYTES : 0)
}

/** Largest single message that fits one datagram of `maxDatagram` bytes. */
export function maxMessageSize(maxDatagram: number, sealed: boolean): number {
  const room = maxDatagram - overhead(sealed)
  let n = room - 1
  while (n > 0 && n + varintLength(n) > room) n--
  return Math.max(0, n)
}

const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'))

/** Sender id bytes (8) as 16 lowercase hex digits. */
export function senderIdToHex(buf: Uint8Array, offset = 0): string {
  let s = ''
  for (let i = 0; i < SENDER_ID_BYTES; i++) s += HEX[buf[offset + i]!]
  return s
}

/** Writes the fixed header into `out` (at least {@link HEADER_BYTES} long). */
export function writeHeader(out: Uint8Array, senderId: Uint8Array, seq: number, sealed: boolean): void {
  out[0] = MAGIC
  out[1] = (VERSION << 4) | (sealed ? FLAG_SEALED : 0)
  out.set(senderId.subarray(0, SENDER_ID_BYTES), 2)
  out[10] = (seq >>> 24) & 0xff
  out[11] = (seq >>> 16) & 0xff
  out[12] = (seq >>> 8) & 0xff
  out[13] = seq & 0xff
}

/** Reads the fixed header; returns a {@link DatagramFault} when it is not an rxnet v1 datagram. */
export function parseHeader(buf: Uint8Array): DatagramHeader | DatagramFault {
  if (buf.length < HEADER_BYTES) return 'truncated'
  if (buf[0] !== MAGIC) return 'foreign'
  const vf = buf[1]!
  if (vf >> 4 !== VERSION || (vf & 0x0f & ~FLAG_SEALED) !== 0) return 'version'
  const seq = ((buf[10]! << 24) | (buf[11]! << 16) | (buf[12]! << 8) | buf[13]!) >>> 0
  return { sealed: (vf & FLAG_SEALED) !== 0, senderId: senderIdToHex(buf, 2), seq }
}

/** A fresh 14-byte header. */
export function encodeHeader(senderId: Uint8Array, seq: number, sealed: boolean): Buffer {
  const out = Buffer.allocUnsafe(HEADER_BYTES)
  writeHeader(out, senderId, seq, sealed)
  return out
}

/**
 * Encodes one plain (unsealed) datagram holding `messages` (the body is the foundation's framing:
 * `encodeBatch`, varint length + bytes per message).
 * @example
 * ```ts
 * const dg = encodeDatagram(senderId, 7, [new Uint8Array([1, 2])])
 * ```
 */
export function encodeDatagram(senderId: Uint8Array, seq: number, messages: readonly Uint8Array[]): Buffer {
  const body = encodeBatch(messages, 0, messages.length, framedSize(messages, 0, messages.length))
  return Buffer.concat([encodeHeader(senderId, seq, false), body])
}

/**
 * Splits a body into its messages (views into `body`, no copy). The whole body is validated
 * before anything is returned: a declared length running past the end, an over-long or
 * non-minimal varint or a trailing partial prefix yields `'malformed'` and no messages.
 */
export function decodeBody(body: Uint8Array): Uint8Array[] | 'malformed' {
  const out: Uint8Array[] = []
  const end = body.length
  let o = 0
  while (o < end) {
    // Declared lengths are bounded by the datagram size, so at most 3 varint bytes are legal.
    let len = 0
    let shift = 0
    let b: number
    let i = 0
    do {
      if (o >= end || i === 3) return 'malformed'
      b = body[o++]!
      len |= (b & 0x7f) << shift
      shift += 7
      i++
    } while (b & 0x80)
    if ((b === 0 && i > 1) || len > end - o) return 'malformed' // non-minimal varint, or runs past the end
    out.push(body.subarray(o, o + len))
    o += len
  }
  return out
}
