/**
 * The hub wire protocol, as a pure encoder / decoder on `Uint8Array` (no sockets). Each frame is
 * one message of the framed {@link socketChannel} stream (or one multicast message between hubs):
 * a type byte, then fields. Numbers are unsigned varints; strings are a varint byte length then
 * UTF-8; `rest` is everything to the end of the frame (the payload, never parsed by the hub).
 *
 * | type | frame   | direction     | fields                                   |
 * | ---- | ------- | ------------- | ---------------------------------------- |
 * | 1    | HELLO   | client → hub  | version, flags (bit 0: echo), client id   |
 * | 2    | WELCOME | hub → client  | version, hub id                          |
 * | 3    | SUB     | client → hub  | pattern (rest)                           |
 * | 4    | UNSUB   | client → hub  | pattern (rest)                           |
 * | 5    | PUB     | client → hub  | seq, topic, payload (rest)               |
 * | 6    | MSG     | hub → client, hub → hubs | seq, origin id, topic, payload (rest) |
 * | 7    | ACK     | hub → client  | highest seq processed                    |
 * | 8    | PING    | client → hub  | id                                       |
 * | 9    | PONG    | hub → client  | id                                       |
 * | 10   | LOST    | hub → client  | count, origin id: messages from that sender the hub could not deliver to this client (after a crash) |
 * | 11   | PUBS    | client → hub  | seq of the first, count, topic, count × (length, payload) |
 * | 12   | MSGS    | hub → client  | seq of the first, origin id, count, topic, count × (length, payload) |
 *
 * PUBS / MSGS carry consecutive messages of one sender on one topic (seq, seq + 1, …): a client
 * batches what it emits in one tick, so the hub reads, routes and writes one frame per batch (it
 * turns a PUBS into a MSGS by inserting the origin, as for PUB → MSG). Such a frame is at most
 * {@link MAX_BATCH_BYTES} (or `maxMessageSize` when larger); every message in it is within
 * `maxMessageSize` as a PUB of its own would be. Bridges (multicast, NATS) carry single MSGs.
 * @module
 */
import { ProtocolError } from '../errors.js'
import { encodeFrame } from '../framing/encoder.js'
import { varintLength, writeVarint, MAX_VARINT_BYTES } from '../framing/varint.js'
import { MAX_TOPIC_LENGTH } from './topics.js'

/** Version of the hub protocol spoken by this build. */
export const BUS_PROTOCOL_VERSION = 2

/** Longest client / hub id accepted, in bytes. */
export const MAX_ID_LENGTH = 64

/** Most distinct patterns one client may register with a hub (a client that sends more SUBs is dropped). */
export const MAX_PATTERNS = 10_000

/** Most bytes a MSG adds to the PUB it is made from (the origin id and its length). */
export const MSG_OVERHEAD = MAX_ID_LENGTH + 1

/**
 * Largest PUBS / MSGS body a client builds (a batch is sealed before it would pass this). Every
 * end accepts frames of `max(maxMessageSize, MAX_BATCH_BYTES)` (+ {@link MSG_OVERHEAD}), so a
 * small `maxMessageSize` still takes batches of small messages.
 */
export const MAX_BATCH_BYTES = 16 * 1024

/** Longest frame an end with this `maxMessageSize` accepts (batches may be longer than one message). */
export const frameLimit = (maxMessageSize: number): number => Math.max(maxMessageSize, MAX_BATCH_BYTES) + MSG_OVERHEAD

/** Frame type bytes. */
export const FrameType = { HELLO: 1, WELCOME: 2, SUB: 3, UNSUB: 4, PUB: 5, MSG: 6, ACK: 7, PING: 8, PONG: 9, LOST: 10, PUBS: 11, MSGS: 12 } as const

/** A decoded hub frame. `payload` is a view into the frame (no copy). */
export type HubFrame =
  | { type: 'hello'; version: number; echo: boolean; id: string }
  | { type: 'welcome'; version: number; hubId: string }
  | { type: 'sub'; pattern: string }
  | { type: 'unsub'; pattern: string }
  | { type: 'pub'; seq: number; topic: string; payload: Uint8Array }
  | { type: 'msg'; seq: number; origin: string; topic: string; payload: Uint8Array }
  | { type: 'ack'; seq: number }
  | { type: 'ping'; id: number }
  | { type: 'pong'; id: number }
  | { type: 'lost'; count: number; origin: string }
  | Batch<'pubs'>
  | (Batch<'msgs'> & { origin: string })

/**
 * A decoded PUBS / MSGS header. Its entries (already checked: exactly `count`, ending with the
 * frame) start at `body`; read them with {@link forEachEntry}. `largest` is the longest payload.
 */
export interface Batch<T extends 'pubs' | 'msgs'> {
  type: T
  seq: number
  count: number
  topic: string
  body: number
  largest: number
}

const utf8 = new TextDecoder('utf-8', { fatal: true })
const enc = new TextEncoder()

/** A length-prefixed UTF-8 string, encoded once (ids and topics are reused across frames). */
export function encodeString(s: string): Uint8Array {
  return encodeFrame(enc.encode(s))
}

function build(type: number, parts: (number | Uint8Array)[]): Uint8Array {
  let size = 1
  for (const p of parts) size += typeof p === 'number' ? varintLength(p) : p.length
  const out = Buffer.allocUnsafe(size)
  out[0] = type
  let o = 1
  for (const p of parts) {
    if (typeof p === 'number') o = writeVarint(out, o, p)
    else {
      out.set(p, o)
      o += p.length
    }
  }
  return out
}

/** Encodes HELLO. */
export function encodeHello(id: string, echo: boolean, version = BUS_PROTOCOL_VERSION): Uint8Array {
  return build(FrameType.HELLO, [version, echo ? 1 : 0, encodeString(id)])
}
/** Encodes WELCOME. */
export function encodeWelcome(hubId: string, version = BUS_PROTOCOL_VERSION): Uint8Array {
  return build(FrameType.WELCOME, [version, encodeString(hubId)])
}
/** Encodes SUB. */
export function encodeSub(pattern: string): Uint8Array {
  return build(FrameType.SUB, [enc.encode(pattern)])
}
/** Encodes UNSUB. */
export function encodeUnsub(pattern: string): Uint8Array {
  return build(FrameType.UNSUB, [enc.encode(pattern)])
}
/** Encodes PUB; `topic` may be given pre-encoded with {@link encodeString}. */
export function encodePub(seq: number, topic: string | Uint8Array, payload: Uint8Array): Uint8Array {
  return build(FrameType.PUB, [seq, typeof topic === 'string' ? encodeString(topic) : topic, payload])
}
/**
 * Encodes PUB with a JSON text payload written straight into the frame (one allocation, no
 * intermediate payload buffer). `topic` is pre-encoded with {@link encodeString}.
 */
export function encodePubText(seq: number, topic: Uint8Array, text: string): Uint8Array {
  const n = Buffer.byteLength(text)
  const head = 1 + varintLength(seq) + topic.length
  const out = Buffer.allocUnsafe(head + n)
  out[0] = FrameType.PUB
  const o = writeVarint(out, 1, seq)
  out.set(topic, o)
  out.write(text, head, n, 'utf8')
  return out
}

/** Encodes PUBS: `payloads` as messages `seq`, `seq + 1`, … on `topic`. */
export function encodePubs(seq: number, topic: string | Uint8Array, payloads: Uint8Array[]): Uint8Array {
  return build(FrameType.PUBS, [seq, payloads.length, typeof topic === 'string' ? encodeString(topic) : topic, ...payloads.flatMap((p) => [p.length, p])])
}

/** Encodes MSGS (what the hub makes of a PUBS). */
export function encodeMsgs(seq: number, origin: string | Uint8Array, topic: string | Uint8Array, payloads: Uint8Array[]): Uint8Array {
  return build(FrameType.MSGS, [seq, typeof origin === 'string' ? encodeString(origin) : origin, payloads.length, typeof topic === 'string' ? encodeString(topic) : topic, ...payloads.flatMap((p) => [p.length, p])])
}

/** Calls `fn(seq, from, to)` for each entry of a decoded PUBS / MSGS (`frame[from..to)` is its payload). */
export function forEachEntry(frame: Uint8Array, b: Batch<'pubs' | 'msgs'>, fn: (seq: number, from: number, to: number) => void): void {
  let o = b.body
  for (let i = 0; i < b.count; i++) {
    let n = frame[o++]!
    if (n >= 0x80) {
      n &= 0x7f
      let scale = 0x80
      for (;;) {
        const byte = frame[o++]!
        n += (byte & 0x7f) * scale
        if (byte < 0x80) break
        scale *= 0x80
      }
    }
    fn(b.seq + i, o, o + n)
    o += n
  }
}

/** The entries of a MSGS from entry `skip` on, as a MSGS again (or a MSG when one is left). */
export function sliceMsgs(frame: Uint8Array, b: Batch<'msgs'> & { origin: string }, skip: number): Uint8Array {
  const payloads: Uint8Array[] = []
  forEachEntry(frame, b, (seq, from, to) => {
    if (seq >= b.seq + skip) payloads.push(frame.subarray(from, to))
  })
  return payloads.length === 1 ? encodeMsg(b.seq + skip, b.origin, b.topic, payloads[0]!) : encodeMsgs(b.seq + skip, b.origin, b.topic, payloads)
}

/** One MSG per message of a MSG / MSGS frame (what bridges and a crashed hub's ghosts take). */
export function singleMsgs(frame: Uint8Array): Uint8Array[] {
  if (frame[0] !== FrameType.MSGS) return [frame]
  const f = decodeFrame(frame) as Batch<'msgs'> & { origin: string }
  const origin = encodeString(f.origin)
  const topic = encodeString(f.topic)
  const out: Uint8Array[] = []
  forEachEntry(frame, f, (seq, from, to) => out.push(encodeMsg(seq, origin, topic, frame.subarray(from, to))))
  return out
}

/** Encodes MSG. */
export function encodeMsg(seq: number, origin: string | Uint8Array, topic: string | Uint8Array, payload: Uint8Array): Uint8Array {
  return build(FrameType.MSG, [seq, typeof origin === 'string' ? encodeString(origin) : origin, typeof topic === 'string' ? encodeString(topic) : topic, payload])
}
/** Encodes ACK. */
export function encodeAck(seq: number): Uint8Array {
  return build(FrameType.ACK, [seq])
}
/** Encodes PING. */
export function encodePing(id: number): Uint8Array {
  return build(FrameType.PING, [id])
}
/** Encodes LOST. */
export function encodeLost(count: number, origin: string): Uint8Array {
  return build(FrameType.LOST, [count, encodeString(origin)])
}
/** Encodes PONG. */
export function encodePong(id: number): Uint8Array {
  return build(FrameType.PONG, [id])
}

/**
 * Turns a PUB (PUBS) frame from a client into the MSG (MSGS) frame the hub forwards, inserting the sender's
 * pre-encoded id; topic and payload are copied as they are (the hub never decodes payloads).
 * The PUB must have been validated by {@link decodeFrame}.
 */
export function pubToMsg(pub: Uint8Array, origin: Uint8Array): Uint8Array {
  let k = 1
  while (pub[k]! >= 0x80) k++
  k++ // k: end of the seq varint
  const out = Buffer.allocUnsafe(pub.length + origin.length)
  out[0] = pub[0] === FrameType.PUBS ? FrameType.MSGS : FrameType.MSG
  out.set(pub.subarray(1, k), 1)
  out.set(origin, k)
  out.set(pub.subarray(k), k + origin.length)
  return out
}

class Reader {
  o = 1
  constructor(readonly b: Uint8Array) {}
  varint(what: string): number {
    let value = 0
    let scale = 1
    for (let i = 0; i < MAX_VARINT_BYTES; i++) {
      if (this.o >= this.b.length) throw new ProtocolError(`frame ends inside ${what}`)
      const byte = this.b[this.o++]!
      value += (byte & 0x7f) * scale
      if (byte < 0x80) {
        if (!Number.isSafeInteger(value)) throw new ProtocolError(`${what} out of range`)
        return value
      }
      scale *= 0x80
    }
    throw new ProtocolError(`${what} is not a valid varint`)
  }
  string(what: string, max: number): string {
    const n = this.varint(`${what} length`)
    if (n > max) throw new ProtocolError(`${what} is ${n} bytes, at most ${max} allowed`)
    if (this.o + n > this.b.length) throw new ProtocolError(`frame ends inside ${what}`)
    return this.text(what, this.o, (this.o += n))
  }
  rest(what: string, max: number): string {
    const n = this.b.length - this.o
    if (n > max) throw new ProtocolError(`${what} is ${n} bytes, at most ${max} allowed`)
    return this.text(what, this.o, (this.o = this.b.length))
  }
  text(what: string, from: number, to: number): string {
    try {
      return utf8.decode(this.b.subarray(from, to))
    } catch (e) {
      throw new ProtocolError(`${what} is not valid UTF-8`, e)
    }
  }
  /** Checks `count` entries (length, payload) that end exactly with the frame; returns the longest payload. */
  entries(count: number): number {
    if (count === 0) throw new ProtocolError('empty batch')
    let largest = 0
    for (let i = 0; i < count; i++) {
      const n = this.varint('entry length')
      if (this.o + n > this.b.length) throw new ProtocolError('frame ends inside a batch entry')
      this.o += n
      if (n > largest) largest = n
    }
    this.end('batch')
    return largest
  }
  end(what: string): void {
    if (this.o !== this.b.length) throw new ProtocolError(`${what} frame has ${this.b.length - this.o} trailing bytes`)
  }
}

/**
 * Decodes one hub frame. Throws {@link ProtocolError} (`ERR_PROTOCOL`) on anything malformed:
 * unknown type, truncated field, oversized id / topic, invalid UTF-8, trailing bytes. Topic
 * syntax is checked by the caller (see `validateTopic` / `compileTopic`).
 * @example
 * ```ts
 * // internal: src/bus/protocol.ts (tests import it directly)
 * decodeFrame(encodePub(1, 'log', new Uint8Array([0x31]))) // { type: 'pub', seq: 1, topic: 'log', payload }
 * ```
 */
export function decodeFrame(frame: Uint8Array): HubFrame {
  if (frame.length === 0) throw new ProtocolError('empty frame')
  const r = new Reader(frame)
  switch (frame[0]) {
    case FrameType.HELLO: {
      const version = r.varint('version')
      const flags = r.varint('flags')
      const id = r.string('client id', MAX_ID_LENGTH)
      r.end('HELLO')
      if (id.length === 0) throw new ProtocolError('empty client id')
      return { type: 'hello', version, echo: (flags & 1) === 1, id }
    }
    case FrameType.WELCOME: {
      const version = r.varint('version')
      const hubId = r.string('hub id', MAX_ID_LENGTH)
      r.end('WELCOME')
      return { type: 'welcome', version, hubId }
    }
    case FrameType.SUB:
      return { type: 'sub', pattern: r.rest('pattern', MAX_TOPIC_LENGTH) }
    case FrameType.UNSUB:
      return { type: 'unsub', pattern: r.rest('pattern', MAX_TOPIC_LENGTH) }
    case FrameType.PUB: {
      const seq = r.varint('seq')
      const topic = r.string('topic', MAX_TOPIC_LENGTH)
      return { type: 'pub', seq, topic, payload: frame.subarray(r.o) }
    }
    case FrameType.MSG: {
      const seq = r.varint('seq')
      const origin = r.string('origin id', MAX_ID_LENGTH)
      const topic = r.string('topic', MAX_TOPIC_LENGTH)
      return { type: 'msg', seq, origin, topic, payload: frame.subarray(r.o) }
    }
    case FrameType.ACK: {
      const seq = r.varint('seq')
      r.end('ACK')
      return { type: 'ack', seq }
    }
    case FrameType.PING:
    case FrameType.PONG: {
      const id = r.varint('id')
      r.end(frame[0] === FrameType.PING ? 'PING' : 'PONG')
      return { type: frame[0] === FrameType.PING ? 'ping' : 'pong', id }
    }
    case FrameType.LOST: {
      const count = r.varint('count')
      const origin = r.string('origin id', MAX_ID_LENGTH)
      r.end('LOST')
      return { type: 'lost', count, origin }
    }
    case FrameType.PUBS: {
      const seq = r.varint('seq')
      const count = r.varint('count')
      const topic = r.string('topic', MAX_TOPIC_LENGTH)
      if (!Number.isSafeInteger(seq + (count - 1))) throw new ProtocolError('batch seq out of range') // its last seq, as a PUB's
      const body = r.o
      return { type: 'pubs', seq, count, topic, body, largest: r.entries(count) }
    }
    case FrameType.MSGS: {
      const seq = r.varint('seq')
      const origin = r.string('origin id', MAX_ID_LENGTH)
      const count = r.varint('count')
      const topic = r.string('topic', MAX_TOPIC_LENGTH)
      if (!Number.isSafeInteger(seq + (count - 1))) throw new ProtocolError('batch seq out of range') // its last seq, as a PUB's
      const body = r.o
      return { type: 'msgs', seq, origin, count, topic, body, largest: r.entries(count) }
    }
    default:
      throw new ProtocolError(`unknown hub frame type ${frame[0]}`)
  }
}
