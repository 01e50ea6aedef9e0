/**
 * One cluster {@link Link}: a thin layer over a framed {@link socketChannel} that adds the codec
 * and, for the json codec, batching: the values sent in one tick are encoded one by one (so a
 * value the codec refuses is known as such) and written as **one frame**, a JSON array of them.
 * That saves a buffer, a frame and a decode per value on both sides (the per-value cost that held
 * links at ~1.7x `process.send`). Other codecs (and the `'drop-oldest'` policy, which must be able
 * to drop single queued values) send one frame per value. Both sides pick the framing from their
 * own codec; the cluster runs one script, so they agree (a process with another codec sees
 * `ERR_DECODE`).
 *
 * With batching the overflow policy is applied here, per value, against the socket channel's
 * buffered bytes plus the batch being built, so `stats.dropped` / `overflows` count values
 * exactly; the socket channel underneath gets the same budget plus a batch frame's few bytes of
 * framing.
 * @module
 */
import { Observable, catchError, share, throwError } from 'rxjs'
import { socketChannel, type SocketChannel, type SocketChannelOptions } from '../socket.js'
import { decodeWith, json, type Codec } from '../codec/index.js'
import type { CloseOptions, ConnectionStats, WaitOptions } from '../connection.js'
import { OPEN } from '../lifecycle.js'
import { BufferOverflowError, DecodeError, EncodeError, FrameTooLongError, RxnetError } from '../errors.js'
import { DEFAULT_MAX_LENGTH } from '../framing/decoder.js'
import { DEFAULT_HIGH_WATER_MARK, DEFAULT_OVERFLOW } from '../queue.js'
import type { Link } from './types.js'
import type net from 'node:net'

/** Largest batch frame built from the values of one tick, in bytes (UTF-16 units, each at most 3 UTF-8 bytes). */
export const MAX_BATCH_CHARS = 64 * 1024

/** Bytes a batch frame may take beyond the values' own (brackets, varint length prefix). */
const BATCH_SLACK = 16

const textDecoder = new TextDecoder('utf-8', { fatal: true })

/** Live counters of a link: values (not frames) in and out; bytes are the frames' bytes. */
class LinkStats implements ConnectionStats {
  messagesIn = 0
  messagesOut = 0
  /** Values dropped or refused by the overflow policy here (batching only). */
  droppedHere = 0
  overflowsHere = 0
  pendingBytes = 0
  constructor(private readonly raw: SocketChannel) {}
  get bytesIn(): number {
    return this.raw.stats.bytesIn
  }
  get bytesOut(): number {
    return this.raw.stats.bytesOut
  }
  get dropped(): number {
    return this.droppedHere + this.raw.stats.dropped
  }
  get overflows(): number {
    return this.overflowsHere + this.raw.stats.overflows
  }
  get bufferedBytes(): number {
    return this.raw.stats.bufferedBytes + this.pendingBytes
  }
  get droppedIn(): number {
    return (this.raw.stats as { droppedIn?: number }).droppedIn ?? 0
  }
}

/**
 * Wraps a handshaken socket as a Link of decoded values to process `id` (running as `pid`).
 * @example
 * ```ts
 * const link = createLink(socket, 1, pid, json, { highWaterMark: 1 << 20 })
 * link.source.subscribe((v) => console.log(v))
 * link.send({ hello: 'worker 1' })
 * ```
 */
export function createLink(socket: net.Socket, id: number, pid: number, codec: Codec<unknown>, options: SocketChannelOptions = {}): Link {
  return new LinkImpl(socket, id, pid, codec, options)
}

class LinkImpl implements Link {
  readonly source: Observable<unknown>
  readonly sink = {
    next: (value: unknown): void => this.send(value),
    error: (e: unknown): void => this.abort(e),
    complete: (): void => void this.close(),
  }
  readonly stats: LinkStats
  readonly closed: Promise<RxnetError | undefined>
  private readonly raw: SocketChannel
  private readonly batching: boolean
  private readonly highWaterMark: number
  private readonly maxLength: number
  private readonly dropNewest: boolean
  private pending: string[] = []
  private scheduled = false
  /** Set once this layer ended the link (closing, or failed with a typed error of its own). */
  private ended = false
  /** The error this layer failed the link with (ERR_ENCODE, ERR_DECODE, ERR_BUFFER_OVERFLOW): what `source` and `closed` report. */
  private failure: RxnetError | undefined
  /** Values of a batch frame not delivered because the last subscriber left mid-frame: the next one gets them first. */
  private held: unknown[] = []

  constructor(
    socket: net.Socket,
    readonly id: number,
    readonly pid: number,
    private readonly codec: Codec<unknown>,
    options: SocketChannelOptions,
  ) {
    const overflow = options.overflow ?? DEFAULT_OVERFLOW
    this.highWaterMark = options.highWaterMark ?? DEFAULT_HIGH_WATER_MARK
    this.maxLength = options.maxLength ?? DEFAULT_MAX_LENGTH
    this.batching = codec === json && overflow !== 'drop-oldest'
    this.dropNewest = overflow === 'drop-newest'
    // Batching applies the policy here, per value; the channel below gets the same budget plus the
    // few bytes of a batch's brackets and frame header (mostly non-ASCII text, up to 3 bytes a
    // char, can still exceed it: then the channel's own policy applies to that batch frame).
    const channel = this.batching ? { ...options, highWaterMark: this.highWaterMark + BATCH_SLACK } : options
    this.raw = socketChannel(socket, channel)
    this.stats = new LinkStats(this.raw)
    this.closed = this.raw.closed.then((how) => this.failure ?? how)
    this.source = new Observable<unknown>((subscriber) => {
      while (this.held.length > 0 && !subscriber.closed) {
        this.stats.messagesIn++
        subscriber.next(this.held.shift())
      }
      if (subscriber.closed) return
      return this.raw.source.pipe(catchError((e: unknown) => throwError(() => this.failure ?? e))).subscribe({
        next: (frame) => {
          if (this.batching) this.deliverBatch(frame, subscriber)
          else this.deliver(frame, subscriber)
        },
        error: (e) => subscriber.error(e),
        complete: () => subscriber.complete(),
      })
    }).pipe(share({ resetOnError: false, resetOnComplete: false, resetOnRefCountZero: true }))
  }

  get writable(): boolean {
    // The same threshold as the channel below, so that its whenWritable() is ours once the batch is flushed.
    return this.raw.writable && (this.stats.pendingBytes === 0 || this.stats.bufferedBytes <= (this.highWaterMark + BATCH_SLACK) >> 1)
  }

  send(value: unknown): void {
    if (this.ended || this.raw.state !== OPEN) {
      this.stats.droppedHere++
      return
    }
    if (!this.batching) {
      let bytes: Uint8Array
      try {
        bytes = this.codec.encode(value)
      } catch (e) {
        return this.fail(new EncodeError(this.codec.name, e))
      }
      this.stats.messagesOut++
      this.raw.send(bytes)
      return
    }
    let text: string | undefined
    try {
      text = JSON.stringify(value)
    } catch (e) {
      return this.fail(new EncodeError('json', e))
    }
    if (text === undefined) return this.fail(new EncodeError('json', new TypeError(`${typeof value} is not JSON-serialisable`)))
    const size = text.length + 1
    if (this.raw.stats.bufferedBytes + this.stats.pendingBytes + size > this.highWaterMark) {
      this.stats.overflowsHere++
      if (this.dropNewest) {
        this.stats.droppedHere++
        return
      }
      return this.fail(new BufferOverflowError('link send buffer', this.highWaterMark))
    }
    if (this.stats.pendingBytes + size > MAX_BATCH_CHARS) this.flush()
    this.pending.push(text)
    this.stats.pendingBytes += size
    this.stats.messagesOut++
    if (!this.scheduled) {
      this.scheduled = true
      process.nextTick(this.flush)
    }
  }

  whenWritable(options: WaitOptions = {}): Promise<void> {
    this.flush()
    return this.raw.whenWritable(options)
  }

  /** Flushes this tick's batch, then the socket channel's close-then-abort (`timeout`, `signal`). */
  close(options: CloseOptions = {}): Promise<void> {
    this.flush()
    this.ended = true
    return this.raw.close(options)
  }

  abort(err?: unknown): void {
    this.ended = true
    this.dropPending()
    this.raw.abort(err) // ERR_ABORTED, cause: err (source and closed report the channel's error)
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  /** Writes the batch of this tick as one frame (a JSON array of the values' encodings). */
  private readonly flush = (): void => {
    this.scheduled = false
    const pending = this.pending
    if (pending.length === 0) return
    if (this.raw.state !== OPEN) return this.dropPending() // the connection failed meanwhile: counted as values
    this.pending = []
    this.stats.pendingBytes = 0
    this.writeBatch(pending)
  }

  private writeBatch(texts: string[]): void {
    const frame = Buffer.from(texts.length === 1 ? `[${texts[0]}]` : `[${texts.join(',')}]`, 'utf8')
    if (frame.length <= this.maxLength) return this.raw.send(frame)
    // Mostly non-ASCII text (up to 3 bytes per char): split; a single value that large is refused.
    if (texts.length === 1) return this.fail(new EncodeError('json', new FrameTooLongError(frame.length, this.maxLength)))
    const half = texts.length >> 1
    this.writeBatch(texts.slice(0, half))
    this.writeBatch(texts.slice(half))
  }

  private dropPending(): void {
    this.stats.droppedHere += this.pending.length
    this.stats.messagesOut -= this.pending.length
    this.pending = []
    this.stats.pendingBytes = 0
  }

  /** Fails the link with a typed error of this layer: `source` errors with it, `closed` resolves with it. */
  private fail(error: RxnetError): void {
    const { state } = this.raw
    if (this.failure !== undefined || state.type === 'closed' || state.error !== undefined) return // it ended already, for its own reason
    this.failure = error
    this.ended = true
    this.dropPending()
    this.raw.abort(error)
  }

  private deliver(frame: Uint8Array, subscriber: { next(v: unknown): void; error(e: unknown): void }): void {
    let value: unknown
    try {
      value = decodeWith(this.codec, frame)
    } catch (e) {
      // Garbage on a link: report it typed (ERR_DECODE), then reset that link (and only that link).
      return this.failDecode(e as RxnetError, subscriber)
    }
    this.stats.messagesIn++
    subscriber.next(value)
  }

  private deliverBatch(frame: Uint8Array, subscriber: { next(v: unknown): void; error(e: unknown): void; closed: boolean }): void {
    let values: unknown
    try {
      values = JSON.parse(textDecoder.decode(frame))
    } catch (e) {
      return this.failDecode(new DecodeError('json', e), subscriber)
    }
    if (!Array.isArray(values)) return this.failDecode(new DecodeError('json', new TypeError('a json link frame is an array of values')), subscriber)
    let i = 0
    while (i < values.length && !subscriber.closed) {
      this.stats.messagesIn++
      subscriber.next(values[i++])
    }
    if (i < values.length) this.held = values.slice(i)
  }

  private failDecode(e: RxnetError, subscriber: { error(e: unknown): void }): void {
    this.fail(e instanceof RxnetError ? e : new DecodeError(this.codec.name, e))
    subscriber.error(this.failure ?? e)
  }
}
