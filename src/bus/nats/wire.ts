/**
 * What rxnet puts in NATS messages, as pure functions: the sender id / seq headers, NATS service
 * error headers on failed replies, and the per-sender duplicate filter receivers apply.
 * @module
 */
import { createRequire } from 'node:module'
import type { Msg, MsgHdrs, NatsConnection } from '@nats-io/transport-node'
import { decodeWith, json, type Codec } from '../../codec/index.js'
import { EncodeError } from '../../errors.js'
import { MAX_SEQ_JUMP } from '../inbox.js'
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

/** `NATS/1.0\r\nRx-Origin: <origin>\r\nRx-Seq: `: the header block of `origin`'s messages up to the seq. */
export function headerPrefix(origin: string): Buffer {
  return Buffer.from(`NATS/1.0\r\n${ORIGIN_HEADER}: ${origin}\r\n${SEQ_HEADER}: `, 'latin1')
}

/** The `@nats-io/transport-node` releases {@link commandSender}'s use of nats.js internals was tested with (its nats-core is pinned to the same version). */
export const TESTED_NATS_VERSIONS = /^3\.4\.\d+$/

let natsVersion: string | null | undefined
/** The installed `@nats-io/transport-node`'s version, or null when it cannot be read. */
export function installedNatsVersion(): string | null {
  if (natsVersion === undefined) {
    try {
      const v = (createRequire(import.meta.url)('@nats-io/transport-node/package.json') as { version?: unknown }).version
      natsVersion = typeof v === 'string' ? v : null
    } catch {
      natsVersion = null
    }
  }
  return natsVersion
}

/** What {@link commandSender} needs of nats.js's connection internals. */
interface Protocol {
  sendCommand?: unknown
  outMsgs?: unknown
  outBytes?: unknown
}

/**
 * Sends complete NATS commands (`HPUB ...`, built by the outbox) through nats.js's own send
 * buffer, as `nc.publish()` would after building the same bytes from strings per message. Uses
 * nats.js internals (`nc.protocol.sendCommand`), so only on the releases it was tested with
 * ({@link TESTED_NATS_VERSIONS}) and when they have it: null otherwise, and the caller then
 * publishes with `nc.publish()`. The returned function
 * says false (nothing sent) where `nc.publish()` would refuse or check more: a closed or
 * draining connection, a server without headers, a command near the server's max_payload.
 */
export function commandSender(nc: NatsConnection, version: string | null = installedNatsVersion()): ((cmd: Uint8Array) => boolean) | null {
  // Only on the nats.js releases this was tested with: a later one may keep the method and change
  // what it does, which the shape check below cannot see. Anything else publishes with nc.publish().
  if (version === null || !TESTED_NATS_VERSIONS.test(version)) return null
  const p = (nc as unknown as { protocol?: Protocol }).protocol
  if (p === undefined || typeof p.sendCommand !== 'function') return null
  const send = p.sendCommand as (cmd: Uint8Array) => void
  return (cmd) => {
    const info = nc.info
    if (info === undefined || info.headers !== true || cmd.length > info.max_payload || nc.isClosed() || nc.isDraining()) return false
    send.call(p, cmd)
    if (typeof p.outMsgs === 'number') p.outMsgs++
    if (typeof p.outBytes === 'number') p.outBytes += cmd.length
    return true
  }
}

/** Bytes of the slabs header blocks are written into. */
const SLAB = 64 * 1024

/**
 * The header block of a core message from one sender (`NATS/1.0`, `Rx-Origin`, `Rx-Seq`), written
 * for seq after seq: the constant prefix is encoded once, only the seq's digits are written per
 * message, into a shared slab. Also the headers object handed to nats.js's publish, which only calls
 * {@link encode} (synchronously): {@link next} sets what it returns.
 */
export class SeqHeaderWriter {
  private readonly prefix: Buffer
  private slab = Buffer.allocUnsafeSlow(SLAB)
  private off = 0
  private bytes: Uint8Array = new Uint8Array(0)

  constructor(origin: string) {
    this.prefix = headerPrefix(origin)
  }

  /** Sets the block of message `seq` (a positive safe integer); returns this, the headers to publish with. */
  next(seq: number): MsgHdrs {
    const p = this.prefix
    const size = p.length + 20
    if (this.off + size > this.slab.length) {
      // Views of the old slab may still wait in nats.js's send buffer: a new slab, the old one is collected after.
      this.slab = Buffer.allocUnsafeSlow(SLAB)
      this.off = 0
    }
    const slab = this.slab
    const start = this.off
    p.copy(slab, start)
    let i = start + p.length
    let digits = 1
    for (let n = seq; n >= 10; n = Math.floor(n / 10)) digits++
    let n = seq
    for (let d = i + digits - 1; d >= i; d--) {
      slab[d] = 48 + (n % 10)
      n = Math.floor(n / 10)
    }
    i += digits
    slab[i++] = 13
    slab[i++] = 10
    slab[i++] = 13
    slab[i++] = 10
    this.off = i
    this.bytes = slab.subarray(start, i)
    return this as unknown as MsgHdrs
  }

  encode(): Uint8Array {
    return this.bytes
  }
}
const PREFIX = Buffer.from(`NATS/1.0\r\n${ORIGIN_HEADER}: `, 'latin1')
const SEQ_LINE = Buffer.from(`\r\n${SEQ_HEADER}: `, 'latin1')

/** What {@link readMessageMeta}'s fast path returns, reused: read it before the next call. */
const SCRATCH: Meta = { origin: '', seq: 0, noResponders: false, error: undefined }
/** The last origin read, and its bytes: a sender's messages come in runs, its id is decoded once per run. */
let lastOrigin = ''
let lastOriginBytes: Uint8Array = new Uint8Array(0)

/** True when `b[at..]` starts with `what`. */
function bytesAt(b: Uint8Array, at: number, what: Uint8Array): boolean {
  if (at + what.length > b.length) return false
  for (let i = 0; i < what.length; i++) if (b[at + i] !== what[i]) return false
  return true
}

/**
 * {@link readMeta} of a received message. Fast path, without an object per message: a header
 * block of exactly rxnet's two headers (what {@link SeqHeaderWriter} sends) is read from its
 * bytes into a result that is reused (read it before the next call); nats.js keeps them in the
 * message's `_rdata` up to `_msg.hdr` (checked, pinned by the ~3.4 dependency range); anything
 * else goes through `msg.headers`.
 */
export function readMessageMeta(msg: Msg): Meta {
  const raw = msg as unknown as { _msg?: { hdr?: unknown }; _rdata?: unknown }
  const hdr = raw._msg?.hdr
  if (hdr === -1) return PLAIN
  const b = raw._rdata
  // "NATS/1.0\r\nRx-Origin: x\r\nRx-Seq: n\r\n\r\n" and nothing else.
  if (typeof hdr === 'number' && hdr > 0 && hdr < 256 && b instanceof Uint8Array && hdr <= b.length && bytesAt(b, 0, PREFIX)) {
    const start = PREFIX.length
    let i = start
    while (i < hdr && b[i] !== 13) i++
    const end = i
    if (end > start && bytesAt(b, end, SEQ_LINE)) {
      i = end + SEQ_LINE.length
      const digits = i
      let seq = 0
      for (let c = b[i]!; i < hdr && c >= 48 && c <= 57; c = b[++i]!) seq = seq * 10 + (c - 48)
      if (i > digits && i - digits <= 15 && seq > 0 && i + 4 === hdr && b[i] === 13 && b[i + 1] === 10 && b[i + 2] === 13 && b[i + 3] === 10) {
        if (end - start !== lastOriginBytes.length || !bytesAt(b, start, lastOriginBytes)) {
          lastOriginBytes = b.slice(start, end)
          lastOrigin = Buffer.from(lastOriginBytes.buffer, lastOriginBytes.byteOffset, lastOriginBytes.length).toString('utf8') // as msg.headers decodes it
        }
        SCRATCH.origin = lastOrigin
        SCRATCH.seq = seq
        return SCRATCH
      }
    }
  }
  return readMeta(msg.headers)
}

/** True when a received message has a NATS reply subject (read without decoding it when nats.js's `_msg` has it as bytes). */
export function hasReply(msg: Msg): boolean {
  const reply = (msg as unknown as { _msg?: { reply?: unknown } })._msg?.reply
  return reply instanceof Uint8Array ? reply.length > 0 : Boolean(msg.reply)
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

/**
 * What the built-in `json` codec's encode() produces, as text (the outbox writes it into its
 * chunks): `ERR_ENCODE` for a value JSON cannot represent, as `encodeWith(json, value)` says.
 */
export function jsonText(value: unknown): string {
  let text: string | undefined
  try {
    text = JSON.stringify(value)
  } catch (e) {
    throw new EncodeError(json.name, e)
  }
  if (text === undefined) throw new EncodeError(json.name, new TypeError(`${typeof value} is not JSON-serialisable`))
  return text
}

/** An empty payload is `undefined` (a reply with no body); anything else goes through the codec. */
export function decodeBody(codec: Codec<unknown>, data: Uint8Array): unknown {
  return data.length === 0 ? undefined : decodeWith(codec, data)
}

/** What {@link SenderFilter.check} says of a message: new (deliver it), a repeat, or a seq too far from the sender's to believe. */
export const Verdict = { NEW: 0, DUPLICATE: 1, IMPLAUSIBLE: 2 } as const
export type Verdict = (typeof Verdict)[keyof typeof Verdict]

/**
 * Per sender, the highest seq accepted: a message passes only when its seq is higher. One NATS
 * subscription receives a sender's messages in the order it published them, and after a
 * reconnect the sender publishes its unconfirmed messages again from the oldest, so "higher"
 * keeps each message once and in order.
 *
 * As on the local bus, a seq more than `maxJump` (MAX_SEQ_JUMP, 2^24) away from the highest, ahead
 * or behind, is implausible: refused and counted without moving the filter, so one forged message
 * (a publisher claiming another sender's id with a far-ahead seq) cannot make that sender's real
 * messages look old. Two implausible seqs in a row that agree with each other (the second higher,
 * within `maxJump` of the first) re-anchor the filter on the second: a sender that really skipped
 * that far on subjects we do not watch, or one whose first message seen here was the forgery,
 * loses one message (counted), not all of them.
 */
export class SenderFilter {
  /** Per sender, a box with the highest seq (updated in place: no map write per message). */
  private readonly highest = new Map<string, { seq: number; refused: number }>()
  /** The last sender seen and its box: messages come in runs per sender. */
  private lastOrigin = ''
  private last: { seq: number; refused: number } | undefined

  constructor(private readonly maxJump: number = MAX_SEQ_JUMP) {}

  /** {@link Verdict.NEW} (and remembered) when `seq` is new from `origin`. */
  check(origin: string, seq: number): Verdict {
    let box = origin === this.lastOrigin ? this.last : this.highest.get(origin)
    if (box === undefined) {
      if (this.highest.size >= MAX_SENDERS) this.highest.delete(this.highest.keys().next().value!)
      box = { seq, refused: 0 }
      this.highest.set(origin, box)
    } else if (seq > box.seq + this.maxJump || seq < box.seq - this.maxJump) {
      const confirms = box.refused !== 0 && seq > box.refused && seq - box.refused <= this.maxJump
      box.refused = confirms ? 0 : seq
      if (!confirms) return Verdict.IMPLAUSIBLE
      box.seq = seq
    } else if (seq <= box.seq) return Verdict.DUPLICATE
    else {
      box.seq = seq
      box.refused = 0
    }
    this.lastOrigin = origin
    this.last = box
    return Verdict.NEW
  }

  /** True (and remembered) when `seq` is new from `origin` (an implausible one is not new). */
  accept(origin: string, seq: number): boolean {
    return this.check(origin, seq) === Verdict.NEW
  }
}
