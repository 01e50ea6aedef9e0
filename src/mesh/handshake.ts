/**
 * The mesh handshake wire format: a pure encoder and an incremental decoder (no socket).
 *
 * Every mesh connection starts, before any framing, with one handshake message in each direction:
 * the dialer sends `hello`, the acceptor answers `welcome` or `refuse`. Layout (all integers
 * big-endian):
 *
 * ```
 * magic   4 bytes  "RXNM"
 * version u8       protocol version (checked by the state machine, not here)
 * kind    u8       1 = hello, 2 = welcome, 3 = refuse, 4 = observe (a hello from an observer: never a member)
 * length  u16      body length, at most MAX_HANDSHAKE_BODY (checked on the declared value)
 * body    nameLen u8, name (UTF-8), idLen u8, id (UTF-8), port u16, reason u8
 * ```
 *
 * The last byte is the refuse reason in a `refuse` and a capability bitfield ({@link CAPABILITIES})
 * in the other kinds: a build without capabilities writes 0 there and ignores it when it reads,
 * so a flag never reaches a node that cannot use it.
 * @module
 */
import { HandshakeError } from '../errors.js'

/**
 * Mesh protocol version spoken by this build; a peer with another version is refused with `ERR_VERSION_MISMATCH`.
 *
 * @example
 * ```ts
 * import { PROTOCOL_VERSION } from 'rxnet'
 * console.log(`mesh protocol v${PROTOCOL_VERSION}`)
 * ```
 */
export const PROTOCOL_VERSION = 1
/** The four magic bytes every mesh connection starts with. */
export const MAGIC = Buffer.from('RXNM', 'latin1')
/**
 * Largest handshake body accepted, in bytes (checked on the declared length, before buffering).
 *
 * @example
 * ```ts
 * import { MAX_HANDSHAKE_BODY } from 'rxnet'
 * console.log(MAX_HANDSHAKE_BODY) // 520: a longer declared length is ERR_HANDSHAKE
 * ```
 */
export const MAX_HANDSHAKE_BODY = 520
const HEADER = 8

/**
 * Capability flags a node announces in its `hello` / `welcome` / `observe` (the reason byte).
 * @example
 * ```ts
 * import { CAPABILITIES } from 'rxnet'
 * console.log(CAPABILITIES.summaries) // 1: this node accepts stats summaries from its peers
 * ```
 */
export const CAPABILITIES = {
  /** Accepts the `summary` control message (a peer's stats summary, src/mesh/summaries.ts). */
  summaries: 1,
  /**
   * Closes with the `goodbye` exchange (and says goodbye before ending its stream). A peer
   * without it (rxnet 0.1) is closed by ending the stream, and its stream ending is a clean close.
   */
  goodbye: 2,
} as const

/** What a handshake message says. */
export type HandshakeKind = 'hello' | 'welcome' | 'refuse' | 'observe'
/** Why an acceptor refused a connection (sent in `refuse`). */
export type RefuseReason = 'none' | 'name' | 'version' | 'duplicate' | 'tiebreak' | 'closing' | 'malformed'
const KINDS: readonly HandshakeKind[] = ['hello', 'welcome', 'refuse', 'observe']
const REASONS: readonly RefuseReason[] = ['none', 'name', 'version', 'duplicate', 'tiebreak', 'closing', 'malformed']

/** One decoded handshake message. */
export interface HandshakeMessage {
  kind: HandshakeKind
  version: number
  /** Mesh name of the sender. */
  name: string
  /** Node id of the sender. */
  id: string
  /** Port the sender listens on (0 when unknown). */
  port: number
  reason: RefuseReason
  /** Capability bitfield ({@link CAPABILITIES}); 0 in a `refuse` and from a build without capabilities. */
  flags: number
}

/** Encodes one handshake message. Throws {@link HandshakeError} if a field does not fit. */
export function encodeHandshake(m: Omit<HandshakeMessage, 'version' | 'reason' | 'flags'> & { version?: number; reason?: RefuseReason; flags?: number }): Buffer {
  const name = Buffer.from(m.name, 'utf8')
  const id = Buffer.from(m.id, 'utf8')
  if (name.length > 255 || id.length > 255) throw new HandshakeError('mesh name and node id must each fit in 255 bytes')
  const bodyLength = 1 + name.length + 1 + id.length + 2 + 1
  const out = Buffer.allocUnsafe(HEADER + bodyLength)
  MAGIC.copy(out, 0)
  out[4] = m.version ?? PROTOCOL_VERSION
  out[5] = KINDS.indexOf(m.kind) + 1
  out.writeUInt16BE(bodyLength, 6)
  let o = HEADER
  out[o++] = name.length
  o += name.copy(out, o)
  out[o++] = id.length
  o += id.copy(out, o)
  out.writeUInt16BE(m.port & 0xffff, o)
  o += 2
  out[o] = m.kind === 'refuse' ? Math.max(0, REASONS.indexOf(m.reason ?? 'none')) : (m.flags ?? 0) & 0xff
  return out
}

/**
 * Incremental handshake decoder: feed chunks with {@link HandshakeDecoder.push}; it returns the
 * message and the bytes that followed it once complete, `null` while more bytes are needed, and
 * throws {@link HandshakeError} on bad magic, an oversized declared length or a malformed body.
 */
export class HandshakeDecoder {
  private buffered: Buffer = Buffer.alloc(0)

  /** Bytes held so far. */
  get pending(): number {
    return this.buffered.length
  }

  push(chunk: Uint8Array): { message: HandshakeMessage; rest: Buffer } | null {
    const buf = this.buffered.length === 0 ? Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength) : Buffer.concat([this.buffered, chunk])
    // Check the magic on the prefix we have, so garbage fails on its first bytes.
    const m = Math.min(buf.length, MAGIC.length)
    if (!buf.subarray(0, m).equals(MAGIC.subarray(0, m))) throw new HandshakeError('not an rxnet mesh handshake (bad magic)')
    if (buf.length >= HEADER) {
      const length = buf.readUInt16BE(6)
      if (length > MAX_HANDSHAKE_BODY) throw new HandshakeError(`handshake of ${length} bytes exceeds ${MAX_HANDSHAKE_BODY}`)
      if (buf.length >= HEADER + length) {
        this.buffered = Buffer.alloc(0)
        return { message: decodeBody(buf, length), rest: buf.subarray(HEADER + length) }
      }
    }
    this.buffered = Buffer.from(buf) // own the bytes: the caller may reuse its chunk
    return null
  }

  /** Called when the stream ends: throws if a message was cut short. */
  end(): void {
    throw new HandshakeError(this.buffered.length === 0 ? 'connection closed before the handshake' : `handshake truncated after ${this.buffered.length} bytes`)
  }
}

function decodeBody(buf: Buffer, length: number): HandshakeMessage {
  const version = buf[4]!
  const kind = KINDS[buf[5]! - 1]
  if (kind === undefined) throw new HandshakeError(`unknown handshake kind ${buf[5]}`)
  const end = HEADER + length
  let o = HEADER
  const take = (n: number): Buffer => {
    if (o + n > end) throw new HandshakeError('malformed handshake body')
    const b = buf.subarray(o, o + n)
    o += n
    return b
  }
  const text = (b: Buffer): string => {
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(b)
    } catch (e) {
      throw new HandshakeError('handshake text is not UTF-8', e)
    }
  }
  const name = text(take(take(1)[0]!))
  const id = text(take(take(1)[0]!))
  const port = take(2).readUInt16BE(0)
  const last = take(1)[0]!
  const reason = kind === 'refuse' ? (REASONS[last] ?? 'malformed') : 'none'
  if (o !== end) throw new HandshakeError('malformed handshake body (trailing bytes)')
  if (kind !== 'refuse' && id.length === 0) throw new HandshakeError('handshake without a node id')
  return { kind, version, name, id, port, reason, flags: kind === 'refuse' ? 0 : last }
}
