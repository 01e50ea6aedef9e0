/**
 * Interop with async iterables: a {@link Channel} becomes an it-pipe Duplex
 * (`{ source: AsyncIterable, sink(source): Promise<void> }`) and back, so rxnet composes with
 * it-pipe, it-length-prefixed and libp2p streams.
 *
 * - {@link toDuplex}: Channel → Duplex. `source` buffers what the channel emits (bounded, with an
 *   overflow policy); `sink` sends, waiting on `whenWritable()` when the channel has one.
 * - {@link fromDuplex}: Duplex → Channel of the values as they are. Pull-based: the duplex source
 *   is only read while `source` has subscribers, so an unobserved channel pushes back.
 * - {@link fromByteDuplex}: a byte-stream Duplex (`Uint8Array` / `Uint8ArrayList` chunks, e.g. a
 *   libp2p stream) → framed `Channel<Uint8Array>` on the it-length-prefixed wire format.
 * @module
 */
import { Observable, Subject, type Observer, type Subscriber, type Subscription } from 'rxjs'
import { abortable, HOLDS_WHILE_UNOBSERVED, holdsWhileUnobserved, waitIn, type Channel, type Waiter } from './channel.js'
import { BufferOverflowError, ChannelAbortedError, ClosedError, ConnectionError, RxnetError } from './errors.js'
import { DEFAULT_MAX_LENGTH, FrameDecoder } from './framing/decoder.js'
import { encodeBatch } from './framing/encoder.js'
import { varintLength } from './framing/varint.js'
import type { Uint8ArrayList } from 'uint8arraylist'
import { BoundedQueue, DEFAULT_OVERFLOW, type OverflowPolicy } from './queue.js'
import { checkInt, checkOverflow } from './options.js'

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
 * const options: DuplexOptions = { highWaterMark: 256, overflow: 'drop-oldest' }
 * ```
 */
export interface DuplexOptions {
  /** Most messages buffered between the two worlds (per direction) before `overflow` applies. @default 1024 ({@link DEFAULT_DUPLEX_HIGH_WATER_MARK}) */
  highWaterMark?: number
  /** What a full buffer does with one more message. @default 'error' */
  overflow?: OverflowPolicy
}

/**
 * Options of {@link fromByteDuplex}.
 *
 * @example
 * ```ts
 * import type { ByteDuplexOptions } from 'rxnet'
 * const options: ByteDuplexOptions = { maxLength: 1 << 20, highWaterMark: 64 }
 * ```
 */
export interface ByteDuplexOptions extends DuplexOptions {
  /** Largest inbound frame accepted, checked on the declared length. @default 4 MiB ({@link DEFAULT_MAX_LENGTH}) */
  maxLength?: number
}

/**
 * Default `highWaterMark` of the interop buffers, in messages.
 *
 * @example
 * ```ts
 * import { DEFAULT_DUPLEX_HIGH_WATER_MARK, fromDuplex } from 'rxnet'
 * const ch = fromDuplex({ source: [1, 2], sink: async () => {} }, { highWaterMark: DEFAULT_DUPLEX_HIGH_WATER_MARK * 2 })
 * ```
 */
export const DEFAULT_DUPLEX_HIGH_WATER_MARK = 1024

/**
 * A Channel made from a Duplex, with write-readiness and a close that waits for the sink.
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
export interface DuplexChannel<In, Out = In> extends Channel<In, Out> {
  /** True while the outbound buffer is under half its high-water mark. */
  readonly writable: boolean
  /** Resolves once the outbound buffer is under half its high-water mark (`ERR_CLOSED` once closing, `ERR_ABORTED` on `signal`). */
  whenWritable(options?: { signal?: AbortSignal }): Promise<void>
  /** Ends the outbound side and resolves when the duplex sink has consumed everything (`signal` stops the waiting only). */
  close(options?: { signal?: AbortSignal }): Promise<void>
}

/**
 * The Duplex {@link toDuplex} returns: its `source` is always async.
 *
 * @example
 * ```ts
 * import { toDuplex, type ChannelDuplex } from 'rxnet'
 * declare const duplex: ChannelDuplex<Uint8Array>
 * for await (const message of duplex.source) console.log(message.length)
 * ```
 */
export interface ChannelDuplex<In, Out = In> extends Duplex<In, Out> {
  /** The channel's messages, buffered up to `highWaterMark`. */
  source: AsyncIterable<In>
}

/** What {@link toDuplex} can use from a channel beyond the {@link Channel} shape. */
type MaybeWritable = { readonly writable?: boolean; whenWritable?: () => Promise<void> }

function check(options: DuplexOptions): Required<DuplexOptions> {
  const highWaterMark = options.highWaterMark ?? DEFAULT_DUPLEX_HIGH_WATER_MARK
  const overflow = options.overflow ?? DEFAULT_OVERFLOW
  return { highWaterMark: checkInt('highWaterMark', highWaterMark), overflow: checkOverflow(overflow) }
}

const one = (): number => 1

/**
 * Turns a {@link Channel} into an it-pipe Duplex.
 *
 * Each iteration of `source` subscribes to `channel.source` and buffers up to `highWaterMark`
 * messages for the consumer; breaking out of the loop unsubscribes. When the buffer is full:
 * for channels that hold messages while unobserved (`socketChannel`, {@link fromDuplex},
 * {@link fromByteDuplex}) the iterator unsubscribes until the consumer has taken half of it, so
 * the far side is pushed back and nothing is lost; for other channels `overflow` applies
 * (`'error'` throws `ERR_BUFFER_OVERFLOW` from the iterator, the drop policies count). `sink(iterable)` sends every value,
 * awaiting `channel.whenWritable()` whenever the channel reports `writable === false`, then
 * completes the channel; if the iterable throws, the channel is aborted with that error.
 *
 * @example
 * ```ts
 * import net from 'node:net'
 * import { pipe } from 'it-pipe'
 * import { socketChannel, toDuplex } from 'rxnet'
 * const duplex = toDuplex(socketChannel(net.connect(9000, '127.0.0.1')))
 * await pipe([new Uint8Array([1, 2, 3])], duplex, async (replies) => {
 *   for await (const reply of replies) console.log(reply)
 * })
 * ```
 */
export function toDuplex<In, Out = In>(channel: Channel<In, Out>, options: DuplexOptions = {}): ChannelDuplex<In, Out> {
  const { highWaterMark, overflow } = check(options)
  const ch = channel as Channel<In, Out> & MaybeWritable
  return {
    source: {
      [Symbol.asyncIterator]: () =>
        holdsWhileUnobserved(channel)
          ? iterate(channel.source, new BoundedQueue<In>(Number.POSITIVE_INFINITY, overflow, one), highWaterMark)
          : iterate(channel.source, new BoundedQueue<In>(highWaterMark, overflow, one, 'duplex source buffer'), 0),
    },
    async sink(source) {
      try {
        for await (const value of source) {
          if (ch.writable === false && typeof ch.whenWritable === 'function') await ch.whenWritable()
          ch.send(value)
        }
      } catch (e) {
        ch.sink.error(e)
        throw e
      }
      ch.sink.complete()
    },
  }
}

/**
 * An async iterator over a hot Observable, buffering in `queue`. With `pauseAt > 0` it
 * unsubscribes once `pauseAt` values wait and subscribes again when half were taken (for sources
 * that hold messages while unobserved).
 */
function iterate<T>(source: Observable<T>, queue: BoundedQueue<T>, pauseAt: number): AsyncIterator<T> {
  let done = false
  let failure: { error: unknown } | null = null
  let wake: (() => void) | null = null
  let subscription: Subscription | null = null
  let paused = false
  let subscribing = false
  const notify = (): void => {
    const w = wake
    wake = null
    w?.()
  }
  const stop = (): void => {
    subscription?.unsubscribe()
    subscription = null
  }
  const observer = {
    next(value: T) {
      try {
        queue.push(value)
      } catch (e) {
        failure = { error: e }
        queueMicrotask(stop)
      }
      if (pauseAt > 0 && !paused && queue.length >= pauseAt) {
        paused = true
        if (!subscribing) stop() // else: right after subscribe() returns
      }
      notify()
    },
    error(e: unknown) {
      failure = { error: e }
      notify()
    },
    complete() {
      done = true
      notify()
    },
  }
  const start = (): void => {
    subscribing = true
    subscription = source.subscribe(observer)
    subscribing = false
    if (done || failure !== null || paused) stop()
  }
  start()
  return {
    async next(): Promise<IteratorResult<T>> {
      for (;;) {
        // Under 'error', the overflow is reported at once; otherwise buffered values come first.
        if (failure !== null && (queue.length === 0 || failure.error instanceof BufferOverflowError)) {
          queue.clear()
          stop()
          throw failure.error
        }
        if (queue.length > 0) {
          const value = queue.shift() as T
          if (paused && !done && failure === null && queue.length <= pauseAt >> 1) {
            paused = false
            start()
          }
          return { value, done: false }
        }
        if (done) return { value: undefined, done: true }
        await new Promise<void>((resolve) => (wake = resolve))
      }
    },
    async return(): Promise<IteratorResult<T>> {
      done = true
      stop()
      queue.clear()
      notify()
      return { value: undefined, done: true }
    },
  }
}

/**
 * Turns an it-pipe Duplex into a {@link Channel} of the values as they are.
 *
 * The duplex `source` is pulled only while `source` has subscribers (nothing is lost, and an
 * unobserved channel pushes back on the far side). Its end completes `source`; its failure errors
 * `source` with `ERR_CONNECTION` (`cause`: the error). `send` buffers up to `highWaterMark`
 * messages for the duplex `sink` (then `overflow` applies); `sink.complete()` ends the iterable
 * the duplex sink consumes, `sink.error(e)` makes it throw `ERR_ABORTED`.
 *
 * @example
 * ```ts
 * import { fromDuplex } from 'rxnet'
 * const ch = fromDuplex<string>({ source: ['a', 'b'], sink: async (src) => { for await (const s of src) console.log('sent', s) } })
 * ch.source.subscribe((s) => console.log('got', s)) // got a, got b
 * ch.send('c')
 * ch.sink.complete()
 * ```
 */
export function fromDuplex<In, Out = In>(duplex: Duplex<In, Out>, options: DuplexOptions = {}): DuplexChannel<In, Out> {
  return new DuplexChannelImpl<In, In, Out>(duplex, check(options), (chunk, emit) => emit(chunk), null, null)
}

/** Most bytes {@link fromByteDuplex} packs into one chunk for the duplex sink. */
const BYTE_BATCH = 256 * 1024

/** Frames what is queued (at least one message, up to about BYTE_BATCH bytes) into one chunk. */
function frameBatch(q: BoundedQueue<Uint8Array>): Uint8Array {
  const items: Uint8Array[] = []
  let bytes = 0
  while (q.length > 0 && (items.length === 0 || bytes < BYTE_BATCH)) {
    const p = q.shift() as Uint8Array
    items.push(p)
    bytes += p.length + varintLength(p.length)
  }
  return encodeBatch(items, 0, items.length, bytes)
}

/**
 * Turns a byte-stream Duplex (chunks of `Uint8Array` or `Uint8ArrayList`, e.g. a libp2p stream)
 * into a framed `Channel<Uint8Array>` on the it-length-prefixed wire format, like
 * `socketChannel` does for a socket. Inbound frames are checked against `maxLength` on their
 * declared length (`ERR_FRAME_TOO_LONG`); a stream that ends inside a frame errors with
 * `ERR_TRUNCATED_FRAME`.
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
  const maxLength = checkInt('maxLength', options.maxLength ?? DEFAULT_MAX_LENGTH, 0)
  const decoder = new FrameDecoder(maxLength)
  return new DuplexChannelImpl(
    duplex,
    check(options),
    (chunk, emit) => {
      if (chunk instanceof Uint8Array) decoder.push(chunk, emit)
      else for (const part of chunk) decoder.push(part, emit)
    },
    () => decoder.end(),
    frameBatch,
  )
}

/** `e` as thrown by the duplex's `side`: an {@link RxnetError} as it is, anything else as `ERR_CONNECTION`. */
function duplexError(side: 'sink' | 'source', e: unknown): RxnetError {
  return e instanceof RxnetError ? e : new ConnectionError(`duplex ${side} failed: ${String((e as Error)?.message ?? e)}`, e)
}

class DuplexChannelImpl<Chunk, In, Out> implements DuplexChannel<In, Out> {
  readonly source: Observable<In>
  readonly sink: Observer<Out>
  private readonly subject = new Subject<In>()
  private readonly out: BoundedQueue<Out>
  private terminal: { error: unknown } | { error?: undefined } | null = null
  private pulling = false
  private iterator: Iterator<Chunk> | AsyncIterator<Chunk> | null = null
  /** Values decoded while nobody was subscribed (the last one left mid-chunk): for the next one. */
  private held: In[] = []
  private ending = false
  private aborted: { error: unknown } | null = null
  private wakeSink: (() => void) | null = null
  private waiters: Waiter[] = []
  private readonly sinkDone: Promise<void>
  private readonly emit = (value: In): void => {
    if (this.subject.observed) this.subject.next(value)
    else this.held.push(value)
  }

  constructor(
    private readonly duplex: Duplex<Chunk, Out>,
    private readonly opts: Required<DuplexOptions>,
    private readonly decode: (chunk: Chunk, emit: (value: In) => void) => void,
    private readonly onEnd: (() => void) | null,
    /** Packs queued messages into one sink chunk (byte streams); null: one chunk per message. */
    private readonly pack: ((queue: BoundedQueue<Out>) => Out) | null,
  ) {
    this.out = new BoundedQueue<Out>(opts.highWaterMark, opts.overflow, one, 'duplex sink buffer')
    this.source = new Observable<In>((subscriber) => this.subscribe(subscriber))
    this.sink = { next: (v) => this.send(v), error: (e) => this.abort(e), complete: () => this.end() }
    this.sinkDone = Promise.resolve()
      .then(() => duplex.sink(this.outbound()))
      .then(
        () => {
          this.ending = true
          this.out.clear()
          this.settleWaiters(new ClosedError('channel'))
        },
        (e: unknown) => this.fail(duplexError('sink', e)),
      )
  }

  /** @internal */
  readonly [HOLDS_WHILE_UNOBSERVED] = true

  get writable(): boolean {
    return !this.ending && this.aborted === null && this.out.length <= this.opts.highWaterMark >> 1
  }

  whenWritable(options: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.writable) return Promise.resolve()
    if (this.ending || this.aborted !== null) return Promise.reject(new ClosedError('channel'))
    return waitIn(this.waiters, options.signal)
  }

  send(value: Out): void {
    // The far side ending its source does not stop us sending (half-close); failure does.
    if (this.ending || this.aborted !== null) return
    try {
      this.out.push(value)
    } catch (e) {
      this.fail(e)
      return
    }
    this.wake()
  }

  close(options: { signal?: AbortSignal } = {}): Promise<void> {
    this.end()
    return abortable(this.sinkDone, options.signal)
  }

  private end(): void {
    if (this.ending) return
    this.ending = true
    this.settleWaiters(new ClosedError('channel'))
    this.wake()
  }

  private abort(cause: unknown): void {
    this.fail(new ChannelAbortedError(cause))
  }

  private fail(e: unknown): void {
    if (this.aborted === null) this.aborted = { error: e }
    this.ending = true
    this.out.clear()
    this.finish({ error: e })
    void this.iterator?.return?.()
    this.wake()
  }

  private wake(): void {
    const w = this.wakeSink
    this.wakeSink = null
    w?.()
  }

  private settleWaiters(error?: unknown): void {
    if (this.waiters.length === 0) return
    if (error === undefined && !this.writable) return
    const w = this.waiters
    this.waiters = []
    for (const { resolve, reject } of w) error === undefined ? resolve() : reject(error)
  }

  /** The iterable the duplex sink consumes. */
  private async *outbound(): AsyncGenerator<Out> {
    for (;;) {
      if (this.aborted !== null) throw this.aborted.error
      if (this.out.length > 0) {
        const v = this.pack !== null ? this.pack(this.out) : (this.out.shift() as Out)
        this.settleWaiters()
        yield v
        continue
      }
      if (this.ending) return
      await new Promise<void>((resolve) => (this.wakeSink = resolve))
    }
  }

  private subscribe(subscriber: Subscriber<In>): () => void {
    let i = 0
    while (i < this.held.length && !subscriber.closed) subscriber.next(this.held[i++]!)
    this.held = i === this.held.length ? [] : this.held.slice(i)
    if (subscriber.closed) return () => {}
    const t = this.terminal
    if (t !== null) {
      if ('error' in t && t.error !== undefined) subscriber.error(t.error)
      else subscriber.complete()
      return () => {}
    }
    const inner = this.subject.subscribe(subscriber)
    void this.pull()
    return () => inner.unsubscribe()
  }

  /** Reads the duplex source while someone is subscribed. */
  private async pull(): Promise<void> {
    if (this.pulling) return
    this.pulling = true
    try {
      if (this.iterator === null) {
        const src = this.duplex.source as AsyncIterable<Chunk> & Iterable<Chunk>
        this.iterator = typeof src[Symbol.asyncIterator] === 'function' ? src[Symbol.asyncIterator]() : src[Symbol.iterator]()
      }
      const it = this.iterator
      while (this.subject.observed && this.terminal === null) {
        const r = await it.next()
        if (this.terminal !== null) return
        if (r.done === true) {
          this.onEnd?.()
          this.finish({})
          return
        }
        this.decode(r.value, this.emit)
      }
    } catch (e) {
      if (this.terminal === null) {
        this.fail(duplexError('source', e))
      }
    } finally {
      this.pulling = false
    }
  }

  private finish(t: { error: unknown } | { error?: undefined }): void {
    if (this.terminal !== null) return
    this.terminal = t
    if (t.error !== undefined) {
      this.settleWaiters(t.error)
      this.subject.error(t.error)
    } else {
      this.subject.complete()
    }
  }
}
