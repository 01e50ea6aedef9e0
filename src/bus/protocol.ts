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
 * @module
 */
import { ProtocolError } from '../errors.js'
import { encodeFrame } from '../framing/encoder.js'
import { varintLength, writeVarint, MAX_VARINT_BYTES } from '../framing/varint.js'
import { MAX_TOPIC_LENGTH } from './topics.js'

/** Version of the hub protocol spoken by this build. */
export const BUS_PROTOCOL_VERSION = 1

/** Longest client / hub id accepted, in bytes. */
export const MAX_ID_LENGTH = 64

/** Most distinct patterns one client may register with a hub (a client that sends more SUBs is dropped). */
export const MAX_PATTERNS = 10_000

/** Most bytes a MSG adds to the PUB it is made from (the origin id and its length). */
export const MSG_OVERHEAD = MAX_ID_LENGTH + 1

/** Frame type bytes. */
export const FrameType = { HELLO: 1, WELCOME: 2, SUB: 3, UNSUB: 4, PUB: 5, MSG: 6, ACK: 7, PING: 8, PONG: 9, LOST: 10 } as const

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
 * Turns a PUB frame from a client into the MSG frame the hub forwards, inserting the sender's
 * pre-encoded id; topic and payload are copied as they are (the hub never decodes payloads).
 * The PUB must have been validated by {@link decodeFrame}.
 */
export function pubToMsg(pub: Uint8Array, origin: Uint8Array): Uint8Array {
  let k = 1
  while (pub[k]! >= 0x80) k++
  k++ // k: end of the seq varint
  const out = Buffer.allocUnsafe(pub.length + origin.length)
  out[0] = FrameType.MSG
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
    default:
      throw new ProtocolError(`unknown hub frame type ${frame[0]}`)
  }
}
