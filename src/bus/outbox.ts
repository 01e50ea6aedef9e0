/**
 * The bus client's outbox: everything emitted that the hub has not acknowledged yet, kept as the
 * frames that carry it (resent as they are after a reconnect). Messages emitted one after another
 * on one topic are written straight into one PUBS frame, sealed at the end of the tick or when it
 * is full, so the hub reads, routes and writes one frame per batch instead of one per message.
 * Bounded by `highWaterMark` bytes with the bus's overflow policy; counted in messages.
 * @module
 */
import { BufferOverflowError, FrameTooLongError } from '../errors.js'
import type { OverflowPolicy } from '../queue.js'
import { MAX_VARINT_BYTES, varintLength, writeVarint } from '../framing/varint.js'
import { encodePub, encodePubText, FrameType, MAX_BATCH_BYTES } from './protocol.js'
import { MAX_TOPIC_LENGTH } from './topics.js'

/** A frame of the outbox: messages `first..last` of this client. */
export interface Sealed {
  readonly first: number
  readonly last: number
  readonly frame: Uint8Array
  /** The batch buffer the frame is a view of (back to the pool once acknowledged), or null (never reused). */
  slab: Buffer | null
}

/** Room before a batch's body for its header: type, seq, count (< 2^21), topic. */
const headerRoom = (topic: Uint8Array): number => 1 + MAX_VARINT_BYTES + 3 + topic.length
/** Size of every batch buffer: the largest header, then the body. */
const SLAB_BYTES = 1 + MAX_VARINT_BYTES + 3 + 2 + MAX_TOPIC_LENGTH + MAX_BATCH_BYTES
/** Batch buffers kept for reuse per outbox (a busy sender recycles them instead of making garbage). */
const POOL_SLABS = 32

type Utf8Writer = Buffer & { utf8Write(text: string, offset: number, max: number): number }

/** Outbox of one bus client (see the module doc). */
export class Outbox {
  /** Sealed frames, oldest first; live ones are `items[head..]`. */
  items: (Sealed | undefined)[] = []
  head = 0
  /** Bytes held: sealed frames and the open batch. */
  bytes = 0
  /** Messages held (sealed and open). */
  messages = 0
  /** Messages discarded by the overflow policy. */
  dropped = 0
  /** Times a message did not fit under `highWaterMark`. */
  overflows = 0
  /** The open batch: its buffer, where its body starts and ends, its topic and first seq. */
  private slab: Buffer | null = null
  private start = 0
  private end = 0
  private topicName = ''
  private topic: Uint8Array | null = null
  private first = 0
  private count = 0
  /** Length of the first entry's length varint (a batch of one becomes a PUB without it). */
  private firstLen = 0
  private scheduled = false
  /** Batch buffers of acknowledged frames, free for new batches. */
  private readonly pool: Buffer[] = []

  /** @param onSeal - called with each frame as it is sealed, in order (the client sends it if connected). */
  constructor(
    readonly highWaterMark: number,
    readonly policy: OverflowPolicy,
    private readonly maxMessageSize: number,
    private readonly onSeal: (s: Sealed) => void,
  ) {}

  /** Sealed frames not acknowledged, oldest first (what a reconnect resends). */
  *sealed(): IterableIterator<Sealed> {
    for (let i = this.head; i < this.items.length; i++) yield this.items[i]!
  }

  /**
   * The frames to resend on a new connection, oldest first. Their buffers are not reused: the hub
   * may acknowledge them (having read them on the old connection) while the new connection still
   * holds them unwritten, and a new batch written into one would go out in its place.
   */
  *resend(): IterableIterator<Uint8Array> {
    for (let i = this.head; i < this.items.length; i++) {
      const s = this.items[i]!
      s.slab = null
      yield s.frame
    }
  }

  /**
   * Queues message `seq` on `topic` (`topicName` encoded with `encodeString`); `payload` is JSON
   * text or the codec's bytes. Returns its size as a PUB of its own, or -1 when the overflow
   * policy discarded it; throws `ERR_FRAME_TOO_LONG` past `maxMessageSize`, `ERR_BUFFER_OVERFLOW`
   * under `'error'`.
   */
  add(seq: number, topicName: string, topic: Uint8Array, payload: string | Uint8Array): number {
    if (this.count > 0 && typeof payload === 'string' && this.topicName === topicName) {
      // Fast path, JSON text into the open batch: written first, its length known after.
      // The whole frame (header included, it lies before `start`) stays within MAX_BATCH_BYTES.
      const room = MAX_BATCH_BYTES - this.end
      if (payload.length * 3 + 3 <= room) {
        const buf = this.slab as Utf8Writer
        const guess = payload.length < 0x80 ? 1 : varintLength(payload.length) // bytes >= chars
        const at = this.end + guess
        const n = buf.utf8Write(payload, at, room - guess)
        const len = n < 0x80 ? 1 : varintLength(n)
        const single = 1 + varintLength(seq) + topic.length + n
        if (single <= this.maxMessageSize && this.bytes + len + n <= this.highWaterMark) {
          if (len > guess) buf.copyWithin(this.end + len, at, at + n) // multi-byte text past a length step
          if (len === 1) buf[this.end] = n
          else writeVarint(buf, this.end, n)
          this.end += len + n
          this.count++
          this.bytes += len + n
          this.messages++
          return single
        }
      }
    }
    const n = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length
    const single = 1 + varintLength(seq) + topic.length + n
    if (single > this.maxMessageSize) throw new FrameTooLongError(single, this.maxMessageSize)
    const entry = varintLength(n) + n
    if (this.bytes + entry > this.highWaterMark && this.messages > 0 && !this.overflow(entry)) return -1
    if (entry > MAX_BATCH_BYTES) {
      // Too large to batch: a PUB of its own, after what came before it.
      this.seal()
      const frame = typeof payload === 'string' ? encodePubText(seq, topic, payload) : encodePub(seq, topic, payload)
      this.bytes += frame.length
      this.messages++
      this.push({ first: seq, last: seq, frame, slab: null })
      return single
    }
    if (this.count > 0 && (this.topicName !== topicName || this.end + entry > MAX_BATCH_BYTES)) this.seal()
    if (this.count === 0) this.open(seq, topicName, topic)
    const buf = this.slab as Utf8Writer
    let o = this.end
    if (n < 0x80) buf[o++] = n
    else o = writeVarint(buf, o, n)
    if (this.count === 0) this.firstLen = o - this.end
    if (typeof payload === 'string') buf.utf8Write(payload, o, n)
    else buf.set(payload, o)
    this.end = o + n
    this.count++
    this.bytes += entry
    this.messages++
    if (!this.scheduled) {
      this.scheduled = true
      process.nextTick(this.sealLater)
    }
    return single
  }

  /** Seals the open batch now (before a PING, a resend, a close: it must go first). */
  seal(): void {
    const count = this.count
    if (count === 0) return
    const buf = this.slab!
    const topic = this.topic!
    let at: number
    if (count === 1) {
      // A batch of one is a plain PUB: its header ends where the payload starts.
      at = this.start + this.firstLen - (1 + varintLength(this.first) + topic.length)
      buf[at] = FrameType.PUB
      buf.set(topic, writeVarint(buf, at + 1, this.first))
    } else {
      at = this.start - (1 + varintLength(this.first) + varintLength(count) + topic.length)
      buf[at] = FrameType.PUBS
      buf.set(topic, writeVarint(buf, writeVarint(buf, at + 1, this.first), count))
    }
    let frame: Buffer = buf.subarray(at, this.end)
    this.bytes += frame.length - (this.end - this.start)
    let slab: Buffer | null = null
    if (this.end > buf.length >> 1) {
      slab = buf // mostly full: the frame keeps the buffer
      this.slab = null
    } else {
      frame = Buffer.from(frame) // a small batch does not pin a whole buffer; the buffer is reused
      this.end = this.start
    }
    this.count = 0
    this.topic = null
    this.push({ first: this.first, last: this.first + count - 1, frame, slab })
  }

  /** The hub processed everything up to `seq`: frames wholly at or below it are forgotten. */
  ack(seq: number): void {
    while (this.head < this.items.length && this.items[this.head]!.last <= seq) {
      // The hub has read it, so no write of ours still uses its buffer.
      const slab = this.shift().slab
      if (slab !== null && this.pool.length < POOL_SLABS) this.pool.push(slab)
    }
  }

  /** Forgets everything (the client closed); returns how many messages were held. */
  clear(): number {
    const held = this.messages
    this.items = []
    this.head = 0
    this.bytes = 0
    this.messages = 0
    this.count = 0
    this.topic = null
    return held
  }

  private readonly sealLater = (): void => {
    this.scheduled = false
    this.seal()
  }

  private open(seq: number, topicName: string, topic: Uint8Array): void {
    const room = headerRoom(topic)
    this.slab ??= this.pool.pop() ?? Buffer.allocUnsafeSlow(SLAB_BYTES)
    this.start = this.end = room
    this.topicName = topicName
    this.topic = topic
    this.first = seq
  }

  private push(s: Sealed): void {
    this.items.push(s)
    this.onSeal(s)
  }

  private shift(): Sealed {
    const s = this.items[this.head]!
    this.items[this.head++] = undefined
    this.bytes -= s.frame.length
    this.messages -= s.last - s.first + 1
    if (this.head === this.items.length) {
      this.items.length = 0
      this.head = 0
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
    return s
  }

  /** The new entry does not fit: applies the policy; true when it may be queued now. */
  private overflow(entry: number): boolean {
    this.overflows++
    if (this.policy === 'error') throw new BufferOverflowError('bus outbox', this.highWaterMark)
    if (this.policy === 'drop-newest') {
      this.dropped++
      return false
    }
    this.seal() // the open batch is the newest but can be dropped whole like the others
    while (this.head < this.items.length && this.bytes + entry > this.highWaterMark) {
      this.dropped += this.items[this.head]!.last - this.items[this.head]!.first + 1
      this.shift()
    }
    if (this.bytes + entry > this.highWaterMark) {
      this.dropped++
      return false
    }
    return true
  }
}
