/**
 * it-pipe duplexes as Connections: {@link fromDuplex} (values as they are) and
 * {@link fromByteDuplex} (a byte stream, e.g. a libp2p stream, framed on the it-length-prefixed
 * wire format), both built on the lifecycle kernel ({@link ConnectionKernel}), so they keep every
 * rule of the Connection contract. The reverse direction, {@link toDuplex}, is in `interop.ts`.
 * @module
 */
import type { Uint8ArrayList } from 'uint8arraylist'
import { HOLDS_WHILE_UNOBSERVED } from './channel.js'
import type { Connection, ConnectionStats, WaitOptions } from './connection.js'
import { ClosedError, EncodeError, FrameTooLongError, InvalidArgumentError, type RxnetError } from './errors.js'
import { DEFAULT_MAX_LENGTH, FrameDecoder } from './framing/decoder.js'
import { encodeBatch } from './framing/encoder.js'
import { varintLength } from './framing/varint.js'
import { connectionError, ConnectionKernel, KERNEL_OPTION_KEYS, OPEN, type ConnectionState, type KernelOptions } from './lifecycle.js'
import { checkInt, checkKeys, checkOverflow } from './options.js'
import { BoundedQueue, DEFAULT_OVERFLOW, type OverflowPolicy } from './queue.js'

/**
 * An it-pipe duplex: an async-iterable `source` and a `sink` that consumes an async iterable.
 *
 * @example
 * ```ts
 * import type { Duplex } from 'rxnet'
 * const logger: Duplex<string> = { source: ['hello'], sink: async (src) => { for await (const s of src) console.log(s) } }
 * ```
 */
export interface Duplex<In, Out = In> {
  /** What the far side sends. */
  source: AsyncIterable<In> | Iterable<In>
  /** Consumes what we send; resolves when it has all been written. */
  sink(source: AsyncIterable<Out> | Iterable<Out>): Promise<void>
}

/**
 * Options of {@link toDuplex}, {@link fromDuplex} and {@link fromByteDuplex}.
 *
 * @example
 * ```ts
 * import type { DuplexOptions } from 'rxnet'
 * const options: DuplexOptions = { highWaterMarkMessages: 256, overflow: 'drop-oldest' }
 * ```
 */
export interface DuplexOptions {
  /**
   * Most messages buffered between the two worlds (per direction) before `overflow` applies.
   * (Called `highWaterMark` in 0.1; renamed because `highWaterMark` is always bytes.)
   * @default 1024 ({@link DEFAULT_DUPLEX_HIGH_WATER_MARK_MESSAGES})
   */
  highWaterMarkMessages?: number
  /** What a full buffer does with one more message. @default 'error' */
  overflow?: OverflowPolicy
}

/**
 * Options of {@link fromDuplex}: the buffer options plus the kernel's (`closeTimeout`, `maxHeldMessages`).
 *
 * @example
 * ```ts
 * import type { DuplexChannelOptions } from 'rxnet'
 * const options: DuplexChannelOptions = { highWaterMarkMessages: 64, closeTimeout: 5000 }
 * ```
 */
export interface DuplexChannelOptions extends DuplexOptions, KernelOptions {}

/**
 * Options of {@link fromByteDuplex}.
 *
 * @example
 * ```ts
 * import type { ByteDuplexOptions } from 'rxnet'
 * const options: ByteDuplexOptions = { maxLength: 1 << 20, highWaterMarkMessages: 64 }
 * ```
 */
export interface ByteDuplexOptions extends DuplexChannelOptions {
  /** Largest frame accepted, both ways, checked on the declared length inbound. @default 4 MiB ({@link DEFAULT_MAX_LENGTH}) */
  maxLength?: number
}

/**
 * Default `highWaterMarkMessages` of the interop buffers.
 *
 * @example
 * ```ts
 * import { DEFAULT_DUPLEX_HIGH_WATER_MARK_MESSAGES, fromDuplex } from 'rxnet'
 * const ch = fromDuplex({ source: [1, 2], sink: async () => {} }, { highWaterMarkMessages: DEFAULT_DUPLEX_HIGH_WATER_MARK_MESSAGES * 2 })
 * ```
 */
export const DEFAULT_DUPLEX_HIGH_WATER_MARK_MESSAGES = 1024

/**
 * @deprecated Renamed {@link DEFAULT_DUPLEX_HIGH_WATER_MARK_MESSAGES} (it counts messages).
 * @example
 * ```ts
 * import { DEFAULT_DUPLEX_HIGH_WATER_MARK } from 'rxnet'
 * console.log(DEFAULT_DUPLEX_HIGH_WATER_MARK) // 1024
 * ```
 */
export const DEFAULT_DUPLEX_HIGH_WATER_MARK = DEFAULT_DUPLEX_HIGH_WATER_MARK_MESSAGES

/**
 * A {@link Connection} made from a Duplex.
 *
 * @example
 * ```ts
 * import { fromDuplex } from 'rxnet'
 * const ch = fromDuplex<number>({ source: [], sink: async (src) => { for await (const n of src) console.log(n) } })
 * for (let i = 0; i < 10_000; i++) {
 *   ch.send(i)
 *   if (!ch.writable) await ch.whenWritable()
 * }
 * await ch.close()
 * ```
 */
export interface DuplexChannel<In, Out = In> extends Connection<In, Out> {
  /** Where the connection is in its life. */
  readonly state: ConnectionState
}

const DUPLEX_KEYS = ['highWaterMarkMessages', 'overflow'] as const

/** @internal Validates {@link DuplexOptions} for `where` (unknown keys refused, the 0.1 name `highWaterMark` named). */
export function checkDuplexOptions(where: string, options: DuplexOptions, extra: readonly string[] = []): Required<DuplexOptions> {
  if (options !== null && typeof options === 'object' && 'highWaterMark' in options) {
    throw new InvalidArgumentError(`${where}: "highWaterMark" was renamed "highWaterMarkMessages" (it counts messages; highWaterMark is always bytes)`)
  }
  checkKeys(where, options, [...DUPLEX_KEYS, ...extra])
  return {
    highWaterMarkMessages: checkInt('highWaterMarkMessages', options.highWaterMarkMessages ?? DEFAULT_DUPLEX_HIGH_WATER_MARK_MESSAGES),
    overflow: checkOverflow(options.overflow ?? DEFAULT_OVERFLOW),
  }
}

const one = (): number => 1

/**
 * Turns an it-pipe Duplex into a {@link Connection} of the values as they are.
 *
 * The duplex `source` is pulled only while `source` has subscribers (nothing is lost, and an
 * unobserved channel pushes back on the far side). Its end completes `source`; its failure fails
 * the connection with `ERR_CONNECTION` (`cause`: the error). `send` buffers up to
 * `highWaterMarkMessages` for the duplex `sink` (then `overflow` applies). `close()` ends the
 * iterable the duplex sink consumes and, once the sink has consumed it and the duplex source has
 * ended (read and discarded if nobody subscribes), the connection is closed; `abort(e)` makes the
 * iterable throw `ERR_ABORTED`.
 *
 * @example
 * ```ts
 * import { fromDuplex } from 'rxnet'
 * const ch = fromDuplex<string>({ source: ['a', 'b'], sink: async (src) => { for await (const s of src) console.log('sent', s) } })
 * ch.source.subscribe((s) => console.log('got', s)) // got a, got b
 * ch.send('c')
 * await ch.close()
 * ```
 */
export function fromDuplex<In, Out = In>(duplex: Duplex<In, Out>, options: DuplexChannelOptions = {}): DuplexChannel<In, Out> {
  const buffers = checkDuplexOptions('fromDuplex', options, KERNEL_OPTION_KEYS)
  return new DuplexChannelImpl<In, In, Out>(duplex, options, buffers, (chunk, emit) => emit(chunk), null, null, null)
}

/** Most bytes {@link fromByteDuplex} packs into one chunk for the duplex sink. */
const BYTE_BATCH = 256 * 1024

/** Frames what is queued (at least one message, up to about BYTE_BATCH bytes) into one chunk. */
function frameBatch(q: BoundedQueue<Uint8Array>, stats: ConnectionStats): Uint8Array {
  const items: Uint8Array[] = []
  let bytes = 0
  while (q.length > 0 && (items.length === 0 || bytes < BYTE_BATCH)) {
    const p = q.shift() as Uint8Array
    items.push(p)
    bytes += p.length + varintLength(p.length)
    stats.bytesOut += p.length
  }
  stats.messagesOut += items.length
  return encodeBatch(items, 0, items.length, bytes)
}

/**
 * Turns a byte-stream Duplex (chunks of `Uint8Array` or `Uint8ArrayList`, e.g. a libp2p stream)
 * into a framed {@link Connection} of `Uint8Array` on the it-length-prefixed wire format, like
 * `socketChannel` does for a socket. Inbound frames are checked against `maxLength` on their
 * declared length (`ERR_FRAME_TOO_LONG`); a stream that ends inside a frame errors with
 * `ERR_TRUNCATED_FRAME`; sending a non-`Uint8Array` or a message over `maxLength` fails the
 * connection with `ERR_ENCODE`.
 *
 * @example
 * ```ts
 * import { fromByteDuplex } from 'rxnet'
 * // `stream` is any { source, sink } of bytes, e.g. a libp2p stream
 * const ch = fromByteDuplex(stream, { maxLength: 1 << 20 })
 * ch.source.subscribe((msg) => console.log(msg.length))
 * ch.send(new TextEncoder().encode('hello'))
 * ```
 */
export function fromByteDuplex(duplex: Duplex<Uint8Array | Uint8ArrayList, Uint8Array>, options: ByteDuplexOptions = {}): DuplexChannel<Uint8Array> {
  const buffers = checkDuplexOptions('fromByteDuplex', options, [...KERNEL_OPTION_KEYS, 'maxLength'])
  const maxLength = checkInt('maxLength', options.maxLength ?? DEFAULT_MAX_LENGTH, 0)
  const decoder = new FrameDecoder(maxLength)
  return new DuplexChannelImpl(
    duplex,
    options,
    buffers,
    (chunk, emit) => {
      if (chunk instanceof Uint8Array) decoder.push(chunk, emit)
      else for (const part of chunk) decoder.push(part, emit)
    },
    () => decoder.end(),
    frameBatch,
    (value) => {
      if (!(value instanceof Uint8Array)) return new EncodeError('bytes', new InvalidArgumentError(`fromByteDuplex sends Uint8Array, got ${typeof value}`))
      if (value.length > maxLength) return new EncodeError('bytes', new FrameTooLongError(value.length, maxLength))
      return undefined
    },
  )
}

const bytesOf = (v: unknown): number => (v instanceof Uint8Array ? v.length : 0)

/** The counters of a duplex channel (bytes count `Uint8Array` payloads; other values count 0). */
class DuplexStats implements ConnectionStats {
  messagesIn = 0
  bytesIn = 0
  messagesOut = 0
  bytesOut = 0
  droppedIn = 0
  droppedAfterClose = 0
  constructor(private readonly queue: BoundedQueue<unknown>) {}
  get dropped(): number {
    return this.queue.dropped + this.droppedAfterClose
  }
  get overflows(): number {
    return this.queue.overflows
  }
  get bufferedBytes(): number {
    let n = 0
    const q = this.queue
    for (let i = q.head; i < q.items.length; i++) n += bytesOf(q.items[i])
    return n
  }
}

class DuplexChannelImpl<Chunk, In, Out> extends ConnectionKernel<In, Out> implements DuplexChannel<In, Out> {
  readonly stats: DuplexStats
  private readonly out: BoundedQueue<Out>
  private pulling = false
  private iterator: Iterator<Chunk> | AsyncIterator<Chunk> | null = null
  private sinkFinished = false
  private wakeSink: (() => void) | null = null
  private readonly onValue = (value: In): void => {
    this.stats.messagesIn++
    this.stats.bytesIn += bytesOf(value)
    this.emit(value)
  }

  /** @internal */
  readonly [HOLDS_WHILE_UNOBSERVED] = true

  constructor(
    private readonly duplex: Duplex<Chunk, Out>,
    kernel: KernelOptions,
    private readonly buffers: Required<DuplexOptions>,
    private readonly decode: (chunk: Chunk, emit: (value: In) => void) => void,
    private readonly onSourceEnd: (() => void) | null,
    /** Packs queued messages into one sink chunk (byte streams); null: one chunk per message. */
    private readonly pack: ((queue: BoundedQueue<Out>, stats: ConnectionStats) => Out) | null,
    /** Returns the error a value is refused with (`ERR_ENCODE`), undefined if it is accepted. */
    private readonly refuse: ((value: Out) => RxnetError | undefined) | null,
  ) {
    super({ closeTimeout: kernel.closeTimeout, maxHeldMessages: kernel.maxHeldMessages })
    this.out = new BoundedQueue<Out>(buffers.highWaterMarkMessages, buffers.overflow, one, 'duplex sink buffer')
    this.stats = new DuplexStats(this.out as BoundedQueue<unknown>)
    void Promise.resolve()
      .then(() => duplex.sink(this.outbound()))
      .then(
        () => {
          // The far side stopped reading: nothing more can be sent (sends are dropped and counted),
          // while its source may still be read.
          this.sinkFinished = true
          this.stats.droppedAfterClose += this.out.clear().length
          this.maybeReleased()
        },
        (e: unknown) => this.fail(connectionError(e, 'duplex sink failed')),
      )
  }

  override whenWritable(options?: WaitOptions): Promise<void> {
    return this.sinkFinished ? Promise.reject(new ClosedError('duplex sink')) : super.whenWritable(options)
  }

  send(value: Out): void {
    if (this.state !== OPEN || this.sinkFinished) {
      this.stats.droppedAfterClose++
      return
    }
    const refused = this.refuse?.(value)
    if (refused !== undefined) {
      this.fail(refused)
      return
    }
    try {
      this.out.push(value)
    } catch (e) {
      this.fail(e)
      return
    }
    this.wake()
  }

  protected hasRoom(): boolean {
    return !this.sinkFinished && this.out.length <= this.buffers.highWaterMarkMessages >> 1
  }

  protected override onObserved(observed: boolean): void {
    if (observed) void this.pull()
  }

  protected startClose(): void {
    this.wake() // the outbound iterable ends once the queue is empty
    void this.pull() // see the duplex source end, discarding what nobody reads
  }

  protected destroy(): void {
    this.stats.droppedAfterClose += this.out.clear().length
    void Promise.resolve(this.iterator?.return?.()).catch(noop)
    this.wake() // the outbound iterable throws the error
    this.released()
  }

  private maybeReleased(): void {
    if (this.sinkFinished && this.inboundEnded) this.released()
  }

  private wake(): void {
    const w = this.wakeSink
    this.wakeSink = null
    w?.()
  }

  /** The iterable the duplex sink consumes. */
  private async *outbound(): AsyncGenerator<Out> {
    for (;;) {
      if (this.state.error !== undefined) throw this.state.error
      if (this.out.length > 0) {
        let v: Out
        if (this.pack !== null) v = this.pack(this.out, this.stats)
        else {
          v = this.out.shift() as Out
          this.stats.messagesOut++
          this.stats.bytesOut += bytesOf(v)
        }
        this.wakeWriters()
        yield v
        continue
      }
      if (this.state !== OPEN) return
      await new Promise<void>((resolve) => (this.wakeSink = resolve))
    }
  }

  /** Reads the duplex source while someone is subscribed (or, closing, until it ends). */
  private async pull(): Promise<void> {
    if (this.pulling) return
    this.pulling = true
    try {
      if (this.iterator === null) {
        const src = this.duplex.source as AsyncIterable<Chunk> & Iterable<Chunk>
        this.iterator = typeof src[Symbol.asyncIterator] === 'function' ? src[Symbol.asyncIterator]() : src[Symbol.iterator]()
      }
      const it = this.iterator
      while ((this.subscribers.length > 0 || this.state !== OPEN) && !this.inboundEnded && this.state.error === undefined) {
        const r = await it.next()
        if (this.state.error !== undefined || this.state.type === 'closed') return
        if (r.done === true) {
          this.onSourceEnd?.()
          this.endInbound()
          this.maybeReleased()
          return
        }
        this.decode(r.value, this.onValue)
      }
    } catch (e) {
      this.fail(connectionError(e, 'duplex source failed'))
    } finally {
      this.pulling = false
    }
  }
}

function noop(): void {}
