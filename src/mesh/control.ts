/**
 * The mesh link's control protocol as a pure encoder / decoder (no socket, no timers): testable
 * on `Uint8Array`s.
 *
 * On the wire, after the handshake, a link is a stream of it-length-prefixed frames. User
 * messages go as they are (no copy, no tag). A zero-length frame is the **control marker**: the
 * frame after it is a control message, `type u8` + body. An empty user message is sent as the
 * control message `empty`.
 *
 * Control message types live in one registry ({@link CONTROL_TYPES}): a type byte, a name and the
 * exact body length (or `'any'`). Adding a message is one row there plus its encoder; a receiver
 * that meets a type it does not know fails the link with `ERR_PROTOCOL`, so a new type needs a
 * protocol version (or a handshake flag) before a peer may send it.
 * @module
 */
import { ProtocolError } from '../errors.js'

/** The control marker: a zero-length frame announcing that the next frame is a control message. */
export const CONTROL_MARKER = new Uint8Array(0)

/**
 * The registry of control messages: type byte → name and body length (bytes after the type byte,
 * `'any'` for variable).
 */
export const CONTROL_TYPES = {
  /** Heartbeat: 8-byte float64 timestamp (the sender's `performance.now()`), echoed in `pong`. */
  ping: { type: 1, body: 8 },
  /** Answer to `ping`: the same timestamp. */
  pong: { type: 2, body: 8 },
  /** An empty user message (a zero-length frame is the marker, so it cannot go as it is). */
  empty: { type: 3, body: 0 },
  /** The sender closes cleanly (do not redial at once); its end of the stream follows. */
  goodbye: { type: 4, body: 0 },
  /**
   * The sender's stats summary (`src/metrics/summary.ts` encoding, at most
   * `MAX_PEER_SUMMARY_BYTES`). Sent only to a peer whose handshake announced
   * `CAPABILITIES.summaries`; a body that does not decode is counted and ignored, never fails the link.
   */
  summary: { type: 5, body: 'any' },
} as const satisfies Record<string, { type: number; body: number | 'any' }>

/** Name of a control message. */
export type ControlName = keyof typeof CONTROL_TYPES

/** A decoded control message. */
export type ControlMessage = { kind: 'ping' | 'pong'; time: number } | { kind: 'empty' } | { kind: 'goodbye' } | { kind: 'summary'; body: Uint8Array }

const BY_TYPE = new Map<number, ControlName>(Object.entries(CONTROL_TYPES).map(([name, d]) => [d.type, name as ControlName]))

/** Encodes the body frame of a control message (send {@link CONTROL_MARKER} before it). */
export function encodeControl(m: ControlMessage): Uint8Array {
  const d: { type: number; body: number | 'any' } = CONTROL_TYPES[m.kind]
  const out = new Uint8Array(1 + (m.kind === 'summary' ? m.body.length : d.body === 'any' ? 0 : d.body))
  out[0] = d.type
  if (m.kind === 'ping' || m.kind === 'pong') new DataView(out.buffer).setFloat64(1, m.time)
  else if (m.kind === 'summary') out.set(m.body, 1)
  return out
}

/** Decodes the body frame of a control message; throws `ERR_PROTOCOL` on an unknown type or a wrong length. */
export function decodeControl(frame: Uint8Array): ControlMessage {
  const kind = frame.length === 0 ? undefined : BY_TYPE.get(frame[0]!)
  if (kind === undefined) throw new ProtocolError(frame.length === 0 ? 'empty control message' : `unknown control message ${frame[0]}`)
  const body = CONTROL_TYPES[kind].body as number | 'any'
  if (body !== 'any' && frame.length !== 1 + body) throw new ProtocolError(`malformed ${kind}: ${frame.length - 1} body bytes, expected ${body}`)
  if (kind === 'ping' || kind === 'pong') return { kind, time: new DataView(frame.buffer, frame.byteOffset, frame.byteLength).getFloat64(1) }
  if (kind === 'summary') return { kind, body: frame.subarray(1) }
  return { kind }
}

/** The bytes of one whole control message as it goes on the wire (marker frame + body frame), for a direct socket write. */
export function controlWire(m: ControlMessage): Uint8Array {
  const body = encodeControl(m)
  const length: number[] = [] // unsigned varint, as it-length-prefixed writes it
  for (let n = body.length; ; n >>>= 7) {
    if (n < 0x80) {
      length.push(n)
      break
    }
    length.push((n & 0x7f) | 0x80)
  }
  const out = new Uint8Array(1 + length.length + body.length)
  out[0] = 0
  out.set(length, 1)
  out.set(body, 1 + length.length)
  return out
}

/**
 * Splits the inbound frame stream into user messages and control messages (the receiving half of
 * the protocol): feed every frame to {@link ControlDemux.push}. No allocation per user message.
 */
export class ControlDemux {
  private control = false

  constructor(
    private readonly onUser: (frame: Uint8Array) => void,
    private readonly onControl: (m: ControlMessage, bodyBytes: number) => void,
  ) {}

  /** One inbound frame. Throws `ERR_PROTOCOL` on a malformed control message. */
  push(frame: Uint8Array): void {
    if (this.control) {
      this.control = false
      this.onControl(decodeControl(frame), frame.length)
    } else if (frame.length === 0) this.control = true
    else this.onUser(frame)
  }
}
