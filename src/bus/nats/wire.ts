/**
 * What rxnet puts in NATS messages, as pure functions: the sender id / seq headers, NATS service
 * error headers on failed replies, and the per-sender duplicate filter receivers apply.
 * @module
 */
import type { Msg, MsgHdrs } from '@nats-io/transport-node'
import { decodeWith, type Codec } from '../../codec/index.js'
import { ORIGIN_HEADER, SEQ_HEADER } from './options.js'

/** Header of a failed reply (the NATS services convention): the error message. */
export const ERROR_HEADER = 'Nats-Service-Error'
/** Header of a failed reply: the error code. */
export const ERROR_CODE_HEADER = 'Nats-Service-Error-Code'

/** JetStream's message id header: set on durable emits (their reply subject is the stream's ack, not a request's). */
export const MSG_ID_HEADER = 'Nats-Msg-Id'

/** Senders remembered per subscription for duplicate detection (the oldest is forgotten beyond). */
const MAX_SENDERS = 10_000

/** What the headers of a received message say. */
export interface Meta {
  /** The rxnet sender's id, `''` for a plain NATS publisher (or malformed headers). */
  origin: string
  /** Its seq, 0 with no origin. */
  seq: number
  /** A NATS "no responders" status (503) for a request nobody listens to. */
  noResponders: boolean
  /** A failed reply's error, from the service-error headers. */
  error: { message: string; code?: string } | undefined
}

const PLAIN: Meta = { origin: '', seq: 0, noResponders: false, error: undefined }

/**
 * The header block of a core message with only rxnet's two headers, ready to send: what
 * `MsgHdrs.encode()` would produce, without building a headers object per message (nats.js's
 * publish only calls `encode()` on it).
 */
export function seqHeaders(origin: string, seq: number): MsgHdrs {
  return new EncodedHeaders(Buffer.from(`NATS/1.0\r\n${ORIGIN_HEADER}: ${origin}\r\n${SEQ_HEADER}: ${seq}\r\n\r\n`, 'latin1')) as unknown as MsgHdrs
}

/** A header block already encoded: one small object per message, no closure (emit's hot path). */
class EncodedHeaders {
  constructor(private readonly bytes: Uint8Array) {}

  encode(): Uint8Array {
    return this.bytes
  }
}

const ORIGIN_LINE = `\r\n${ORIGIN_HEADER}: `
const SEQ_LINE = `\r\n${SEQ_HEADER}: `

/**
 * {@link readMeta} of a received message. Fast path: a header block of exactly rxnet's two
 * headers (what {@link seqHeaders} sends) is read from its bytes; nats.js keeps them in the
 * message's `_rdata` up to `_msg.hdr` (checked, pinned by the ~3.4 dependency range); anything
 * else goes through `msg.headers`.
 */
export function readMessageMeta(msg: Msg): Meta {
  const raw = msg as unknown as { _msg?: { hdr?: unknown }; _rdata?: unknown }
  const hdr = raw._msg?.hdr
  if (hdr === -1) return PLAIN
  if (typeof hdr === 'number' && hdr > 0 && hdr < 256 && raw._rdata instanceof Uint8Array) {
    const text = Buffer.from(raw._rdata.buffer, raw._rdata.byteOffset, hdr).toString('latin1')
    const o = text.indexOf(ORIGIN_LINE)
    const q = text.indexOf(SEQ_LINE)
    // "NATS/1.0\r\nRx-Origin: x\r\nRx-Seq: n\r\n\r\n" and nothing else.
    if (o === 8 && text.startsWith('NATS/1.0') && q > o) {
      const originEnd = text.indexOf('\r\n', o + ORIGIN_LINE.length)
      const seqEnd = text.indexOf('\r\n', q + SEQ_LINE.length)
      if (originEnd === q && seqEnd === text.length - 4) {
        const origin = text.slice(o + ORIGIN_LINE.length, originEnd)
        const seq = Number(text.slice(q + SEQ_LINE.length, seqEnd))
        if (origin !== '' && Number.isSafeInteger(seq) && seq > 0) return { origin, seq, noResponders: false, error: undefined }
      }
    }
  }
  return readMeta(msg.headers)
}

/** Reads rxnet's headers; anything missing or malformed reads as a plain NATS message. */
export function readMeta(h: MsgHdrs | undefined): Meta {
  if (h === undefined) return PLAIN
  if (h.code === 503) return { ...PLAIN, noResponders: true }
  const message = h.get(ERROR_HEADER)
  const error = message === '' ? undefined : { message, ...(h.get(ERROR_CODE_HEADER) !== '' ? { code: h.get(ERROR_CODE_HEADER) } : {}) }
  const origin = h.get(ORIGIN_HEADER)
  const seq = Number(h.get(SEQ_HEADER))
  if (origin === '' || !Number.isSafeInteger(seq) || seq <= 0) return { ...PLAIN, error }
  return { origin, seq, noResponders: false, error }
}

/** An empty payload is `undefined` (a reply with no body); anything else goes through the codec. */
export function decodeBody(codec: Codec<unknown>, data: Uint8Array): unknown {
  return data.length === 0 ? undefined : decodeWith(codec, data)
}

/**
 * Per sender, the highest seq accepted: a message passes only when its seq is higher. One NATS
 * subscription receives a sender's messages in the order it published them, and after a
 * reconnect the sender publishes its unconfirmed messages again from the oldest, so "higher"
 * keeps each message once and in order.
 */
export class SenderFilter {
  private readonly highest = new Map<string, number>()

  /** True (and remembered) when `seq` is new from `origin`. */
  accept(origin: string, seq: number): boolean {
    const last = this.highest.get(origin)
    if (last !== undefined && seq <= last) return false
    if (last === undefined && this.highest.size >= MAX_SENDERS) this.highest.delete(this.highest.keys().next().value!)
    this.highest.set(origin, seq)
    return true
  }
}
