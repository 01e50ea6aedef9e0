/**
 * The outbox of the bus on NATS: every emitted message, in seq order, until the server has
 * confirmed it (core messages: a round trip, plus one more; durable ones: the JetStream ack).
 * What is left is published again, in order, after a reconnect or a failover.
 *
 * Emit's hot path: no object per message. Entries live in a ring of parallel arrays (seq,
 * subject, bytes, offsets, lengths; the rare request / reply / durable / forwarded details in an
 * {@link Extra}), and JSON text is written straight into large shared chunks, never reused: a
 * chunk is collected once no entry (and no view nats.js still holds) refers to it. With a
 * {@link WireFormat}, the chunk gets the whole NATS command around the text (`HPUB`, our
 * headers, payload, CRLF), built once and sent as it is, again after a reconnect.
 * @module
 */
import type { MsgHdrs } from '@nats-io/transport-node'
import { BufferOverflowError, FrameTooLongError } from '../../errors.js'
import type { OverflowPolicy } from '../../queue.js'

/** What few messages carry besides subject and bytes. */
export interface Extra {
  /** A request's NATS reply subject. */
  readonly reply?: string | undefined
  /** A failed reply's service-error headers (ours are added when published). */
  readonly headers?: MsgHdrs | undefined
  /** Stored in the durable stream: leaves the outbox once acked. */
  readonly durable?: boolean
  /** Forwarded for someone else (a hub's client): its origin and seq go in the headers instead of ours. */
  readonly as?: { readonly origin: string; readonly seq: number } | undefined
  acked?: boolean
}

/** How a core message of one sender looks on the wire: `HPUB <subject> ` and the header block up to the seq. */
export interface WireFormat {
  /** `HPUB <subject> ` in UTF-8. */
  readonly pub: Uint8Array
  /** `NATS/1.0\r\nRx-Origin: <id>\r\nRx-Seq: ` in latin1. */
  readonly headers: Uint8Array
}

/** Writes the decimal digits of `n` (a non-negative safe integer) ending before `end`; returns where they start. */
function digitsBefore(b: Uint8Array, end: number, n: number): number {
  let i = end
  do {
    const q = Math.floor(n / 10)
    b[--i] = 48 + (n - q * 10)
    n = q
  } while (n > 0)
  return i
}

/** Decimal digits of `n` (a positive safe integer). */
function digitCount(n: number): number {
  let d = 1
  while (n >= 10) {
    n = Math.floor(n / 10)
    d++
  }
  return d
}

/** Bytes of JSON text chunks; text longer than a quarter of it gets a buffer of its own. */
const CHUNK = 256 * 1024
/** Bytes an entry counts against the budget besides its payload and subject. */
const OVERHEAD = 64

/**
 * Emitted messages not confirmed yet, with the round-trip bookkeeping that releases them: a
 * round trip confirms everything published before it started; a core message leaves one round
 * trip after that (`releasable`), a durable one once the stream has acked it. Entries are
 * addressed by slot (what {@link forEach} gives) while they are held.
 */
export class Outbox {
  /** The seq of the last message pushed (accepted or dropped). */
  seq = 0
  /** Core entries up to here were confirmed by a round trip, one round trip ago: released. */
  releasable = 0
  /** Core entries up to here were confirmed by the last round trip. */
  confirmed = 0
  /** Bytes held (payload + subject + 64 per entry). */
  bytes = 0
  /** Messages the overflow policy discarded. */
  dropped = 0
  /** Times a message came with the outbox full. */
  overflows = 0
  private head = 0
  private n = 0
  private mask = 1023
  private seqs = new Float64Array(1024)
  private offs = new Int32Array(1024)
  private lens = new Int32Array(1024)
  private cmdOffs = new Int32Array(1024)
  private cmdLens = new Int32Array(1024)
  private subjects: (string | undefined)[] = new Array<string | undefined>(1024)
  private bufs: (Uint8Array | undefined)[] = new Array<Uint8Array | undefined>(1024)
  private extras: (Extra | undefined)[] = new Array<Extra | undefined>(1024)
  private chunk: Buffer = Buffer.alloc(0)
  private chunkOff = 0

  constructor(
    readonly highWaterMark: number,
    private readonly policy: OverflowPolicy,
  ) {}

  get length(): number {
    return this.n
  }

  /** The seq of the oldest entry held (Infinity when empty). */
  get oldest(): number {
    return this.n > 0 ? this.seqs[this.head]! : Infinity
  }

  /**
   * Adds a message whose payload is `text` in UTF-8 (written into a shared chunk), with `wire`
   * also its whole NATS command ({@link commandOf}). Returns its slot, or -1 when the overflow
   * policy dropped it (throws under `'error'`); `ERR_FRAME_TOO_LONG` when payload and subject
   * exceed `maxSize` bytes.
   */
  pushText(subject: string, text: string, extra: Extra | undefined, maxSize: number, wire?: WireFormat): number {
    const max = text.length * 3
    if (max > CHUNK >> 2) return this.pushBytes(subject, Buffer.from(text, 'utf8'), extra, maxSize)
    const seq = this.seq + 1
    // Room before the header block for "HPUB <subject> <hlen> <total>\r\n", written last (right-aligned).
    const line = wire === undefined ? 0 : wire.pub.length + 3 + 1 + 16 + 2
    const hlen = wire === undefined ? 0 : wire.headers.length + digitCount(seq) + 4
    if (this.chunkOff + line + hlen + max + 2 > this.chunk.length) {
      this.chunk = Buffer.allocUnsafeSlow(CHUNK)
      this.chunkOff = 0
    }
    const c = this.chunk
    const h = this.chunkOff + line
    const off = h + hlen
    const len = c.write(text, off)
    if (len + subject.length > maxSize) throw new FrameTooLongError(len + subject.length, maxSize)
    let cmd = 0
    let end = off + len
    if (wire !== undefined) {
      c.set(wire.headers, h)
      let i = off - 4
      c[i] = 13
      c[i + 1] = 10
      c[i + 2] = 13
      c[i + 3] = 10
      digitsBefore(c, i, seq)
      c[end++] = 13
      c[end++] = 10
      i = h
      c[--i] = 10
      c[--i] = 13
      i = digitsBefore(c, i, hlen + len)
      c[--i] = 32
      i = digitsBefore(c, i, hlen)
      i -= wire.pub.length
      c.set(wire.pub, i)
      cmd = i
    }
    const slot = this.push(subject, c, off, len, extra, cmd, wire === undefined ? 0 : end - cmd)
    if (slot >= 0) this.chunkOff = end
    return slot
  }

  /** Adds a message with these payload bytes (kept as they are), like {@link pushText}. */
  pushBytes(subject: string, bytes: Uint8Array, extra: Extra | undefined, maxSize = Infinity): number {
    if (bytes.length + subject.length > maxSize) throw new FrameTooLongError(bytes.length + subject.length, maxSize)
    return this.push(subject, bytes, 0, bytes.length, extra, 0, 0)
  }

  private push(subject: string, buf: Uint8Array, off: number, len: number, extra: Extra | undefined, cmdOff: number, cmdLen: number): number {
    const size = len + subject.length + OVERHEAD
    if (this.bytes + size > this.highWaterMark && this.n > 0) {
      this.overflows++
      if (this.policy === 'error') throw new BufferOverflowError('bus outbox', this.highWaterMark)
      if (this.policy === 'drop-newest') {
        this.seq++
        this.dropped++
        return -1
      }
      while (this.n > 0 && this.bytes + size > this.highWaterMark) {
        this.shift()
        this.dropped++
      }
      if (this.bytes + size > this.highWaterMark) {
        this.seq++
        this.dropped++
        return -1
      }
    }
    if (this.n > this.mask) this.grow()
    const slot = (this.head + this.n) & this.mask
    this.seqs[slot] = ++this.seq
    this.subjects[slot] = subject
    this.bufs[slot] = buf
    this.offs[slot] = off
    this.lens[slot] = len
    this.cmdOffs[slot] = cmdOff
    this.cmdLens[slot] = cmdLen
    this.extras[slot] = extra
    this.n++
    this.bytes += size
    return slot
  }

  /** Doubles the ring, oldest entry first at slot 0. */
  private grow(): void {
    const cap = (this.mask + 1) * 2
    const seqs = new Float64Array(cap)
    const offs = new Int32Array(cap)
    const lens = new Int32Array(cap)
    const cmdOffs = new Int32Array(cap)
    const cmdLens = new Int32Array(cap)
    const subjects = new Array<string | undefined>(cap)
    const bufs = new Array<Uint8Array | undefined>(cap)
    const extras = new Array<Extra | undefined>(cap)
    for (let i = 0; i < this.n; i++) {
      const s = (this.head + i) & this.mask
      seqs[i] = this.seqs[s]!
      offs[i] = this.offs[s]!
      lens[i] = this.lens[s]!
      cmdOffs[i] = this.cmdOffs[s]!
      cmdLens[i] = this.cmdLens[s]!
      subjects[i] = this.subjects[s]
      bufs[i] = this.bufs[s]
      extras[i] = this.extras[s]
    }
    this.seqs = seqs
    this.offs = offs
    this.lens = lens
    this.cmdOffs = cmdOffs
    this.cmdLens = cmdLens
    this.subjects = subjects
    this.bufs = bufs
    this.extras = extras
    this.head = 0
    this.mask = cap - 1
  }

  private shift(): void {
    const s = this.head
    this.bytes -= this.lens[s]! + this.subjects[s]!.length + OVERHEAD
    this.subjects[s] = undefined
    this.bufs[s] = undefined
    this.extras[s] = undefined
    this.head = (s + 1) & this.mask
    this.n--
  }

  /** Calls `fn` with the slot of every entry held, oldest first (`fn` must not push or release). */
  forEach(fn: (slot: number) => void): void {
    for (let i = 0; i < this.n; i++) fn((this.head + i) & this.mask)
  }

  seqOf(slot: number): number {
    return this.seqs[slot]!
  }

  subjectOf(slot: number): string {
    return this.subjects[slot]!
  }

  extraOf(slot: number): Extra | undefined {
    return this.extras[slot]
  }

  /** The payload of the entry in `slot` (a view while it is held: nats.js copies it when it sends). */
  payloadOf(slot: number): Uint8Array {
    const buf = this.bufs[slot]!
    const off = this.offs[slot]!
    const len = this.lens[slot]!
    return off === 0 && len === buf.length ? buf : buf.subarray(off, off + len)
  }

  /** The whole NATS command of the entry in `slot` (see {@link pushText}), or undefined when it has none. */
  commandOf(slot: number): Uint8Array | undefined {
    const len = this.cmdLens[slot]!
    if (len === 0) return undefined
    const off = this.cmdOffs[slot]!
    return this.bufs[slot]!.subarray(off, off + len)
  }

  /** A round trip started when `upTo` was the last seq is done: what the one before confirmed may go. */
  roundTrip(upTo: number): void {
    this.releasable = this.confirmed
    this.confirmed = upTo
  }

  /** The connection is gone: only what a round trip two back confirmed still counts as delivered. */
  lost(): void {
    this.confirmed = this.releasable
  }

  /** Removes the released entries from the head: core ones up to {@link releasable}, durable ones acked (`js`: durable topics are on). */
  release(js: boolean): void {
    while (this.n > 0 && this.done(this.head, js, this.releasable)) this.shift()
  }

  /** Entries no round trip (or ack) confirmed: what close() reports as undelivered. */
  unconfirmed(js: boolean): number {
    let count = 0
    this.forEach((slot) => {
      if (!this.done(slot, js, this.confirmed)) count++
    })
    return count
  }

  private done(slot: number, js: boolean, upTo: number): boolean {
    const x = this.extras[slot]
    return x?.durable === true && js ? x.acked === true : this.seqs[slot]! <= upTo
  }

  clear(): void {
    while (this.n > 0) this.shift()
    this.chunk = Buffer.alloc(0)
    this.chunkOff = 0
  }
}
