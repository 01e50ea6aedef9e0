/**
 * The byte-stream adapter: any `net.Socket` (TCP, Unix socket, named pipe, TLS) or Duplex becomes
 * a framed {@link Channel} of `Uint8Array` messages, on the it-length-prefixed wire format.
 *
 * It owns the write path: small messages sent in one tick are copied into one buffer and written
 * once; payloads of `copyThreshold` bytes or more are written by reference (the socket's writev
 * sends header and payload together, without a copy). Outbound bytes are bounded by
 * `highWaterMark` with an explicit overflow policy. Inbound frames that lie inside one chunk are
 * emitted without a copy.
 * @module
 */
import { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { Observable, type Observer, type Subscriber } from 'rxjs'
import { abortable, HOLDS_WHILE_UNOBSERVED, waitIn, type Channel, type ChannelStats, type Waiter } from './channel.js'
import { ChannelAbortedError, ClosedError, ConnectionError, FrameTooLongError, RxnetError } from './errors.js'
import { DEFAULT_MAX_LENGTH, FrameDecoder } from './framing/decoder.js'
import { varintLength, writeVarint } from './framing/varint.js'
import { BoundedQueue, DEFAULT_HIGH_WATER_MARK, DEFAULT_OVERFLOW, type OverflowPolicy } from './queue.js'
import { checkInt, checkOverflow, withDefaults } from './options.js'

/**
 * Options of {@link socketChannel}.
 *
 * @example
 * ```ts
 * import type { SocketChannelOptions } from 'rxnet'
 * // a telemetry link: small frames, never block the producer, keep the freshest 1 MiB
 * const options: SocketChannelOptions = { maxLength: 64 * 1024, highWaterMark: 1 << 20, overflow: 'drop-oldest' }
 * ```
 */
export interface SocketChannelOptions {
  /** Largest inbound frame accepted, checked on the declared length. @default 4 MiB ({@link DEFAULT_MAX_LENGTH}) */
  maxLength?: number
  /** Most bytes buffered for sending (ours plus the socket's) before `overflow` applies. @default 8 MiB */
  highWaterMark?: number
  /** What happens to a message that does not fit under `highWaterMark`. @default 'error' */
  overflow?: OverflowPolicy
  /** Payloads at least this large are written by reference instead of copied into a batch. @default 16 KiB */
  copyThreshold?: number
  /** Largest batch buffer built from small messages. @default 256 KiB */
  batchBytes?: number
  /**
   * Stop reading the socket while nobody subscribes to `source` (so nothing is lost). Once the
   * channel is closing (`sink.complete()` / `close()`), unobserved inbound messages are discarded
   * so the far side's close can be seen. @default true
   */
  pauseWhenUnobserved?: boolean
}

/**
 * Defaults of {@link SocketChannelOptions}.
 *
 * @example
 * ```ts
 * import { DEFAULT_SOCKET_CHANNEL_OPTIONS } from 'rxnet'
 * console.log(DEFAULT_SOCKET_CHANNEL_OPTIONS.highWaterMark) // 8388608
 * ```
 */
export const DEFAULT_SOCKET_CHANNEL_OPTIONS: Required<SocketChannelOptions> = {
  maxLength: DEFAULT_MAX_LENGTH,
  highWaterMark: DEFAULT_HIGH_WATER_MARK,
  overflow: DEFAULT_OVERFLOW,
  copyThreshold: 16 * 1024,
  batchBytes: 256 * 1024,
  pauseWhenUnobserved: true,
}

/**
 * A framed Channel over a byte stream, with counters and write-readiness.
 *
 * @example
 * ```ts
 * import net from 'node:net'
 * import { socketChannel } from 'rxnet'
 * const ch = socketChannel(net.connect(9000, '127.0.0.1'))
 * for (let i = 0; i < 1_000_000; i++) {
 *   ch.send(new Uint8Array(64))
 *   if (!ch.writable) await ch.whenWritable() // wait instead of overflowing
 * }
 * await ch.close()
 * ```
 */
export interface SocketChannel extends Channel<Uint8Array, Uint8Array> {
  /** Live counters. */
  readonly stats: ChannelStats
  /** True while the send buffer is under half its high-water mark. */
  readonly writable: boolean
  /**
   * Resolves once the send buffer is under half its high-water mark; rejects with `ERR_CLOSED`
   * if the channel ends first, `ERR_ABORTED` if `signal` aborts first.
   */
  whenWritable(options?: { signal?: AbortSignal }): Promise<void>
  /**
   * Flushes, closes gracefully, and resolves when the socket is fully closed (`signal` only
   * stops the waiting, with `ERR_ABORTED`; call `sink.error()` to abort the connection).
   */
  close(options?: { signal?: AbortSignal }): Promise<void>
  /** Resolves when the socket has closed, however it closed. */
  readonly closed: Promise<void>
}

type Terminal = { kind: 'complete' } | { kind: 'error'; error: unknown }

/**
 * Wraps a connected byte stream as a framed {@link SocketChannel}.
 *
 * @example
 * ```ts
 * import net from 'node:net'
 * import { socketChannel } from 'rxnet'
 * const ch = socketChannel(net.connect(9000, '127.0.0.1'), { highWaterMark: 1 << 20, overflow: 'drop-oldest' })
 * ch.source.subscribe({ next: (m) => console.log(m.length), error: (e) => console.error(e.code) })
 * ch.send(new Uint8Array([1, 2, 3]))
 * ```
 */
export function socketChannel(socket: Duplex, options: SocketChannelOptions = {}): SocketChannel {
  return new SocketChannelImpl(socket, resolveOptions(options))
}

function resolveOptions(options: SocketChannelOptions): Required<SocketChannelOptions> {
  const o = withDefaults(DEFAULT_SOCKET_CHANNEL_OPTIONS, options)
  for (const k of ['maxLength', 'highWaterMark', 'copyThreshold', 'batchBytes'] as const) checkInt(k, o[k])
  checkOverflow(o.overflow)
  return o
}

const sizeOfFrame = (p: Uint8Array): number => p.length + varintLength(p.length)

/**
 * Batch buffers handed back by the write callbacks of net.Sockets (the kernel has the bytes by
 * then), shared by every channel, by size: a busy channel reuses a few instead of allocating (and
 * garbage-collecting) a fresh 256 KiB ArrayBuffer per batch. Batches below POOL_MIN come from
 * Node's own slab allocator.
 */
const batchPool = new Map<number, Buffer[]>()
const POOL_PER_SIZE = 8
const POOL_MIN = 8 * 1024

function takeBatch(size: number): Buffer {
  return batchPool.get(size)?.pop() ?? Buffer.allocUnsafe(size)
}

function giveBatch(buf: Buffer): void {
  let list = batchPool.get(buf.length)
  if (list === undefined) batchPool.set(buf.length, (list = []))
  if (list.length < POOL_PER_SIZE) list.push(buf)
}

class SocketChannelImpl implements SocketChannel {
  readonly source: Observable<Uint8Array>
  readonly sink: Observer<Uint8Array>
  readonly stats: QueueStats
  readonly closed: Promise<void>

  /** Current subscribers of `source` (copy-on-write, so emitting never sees a half-updated list). */
  private subscribers: Subscriber<Uint8Array>[] = []
  private readonly decoder: FrameDecoder
  private readonly queue: BoundedQueue<Uint8Array>
  /** Socket buffer level above which we stop handing it batches and resume from write callbacks. */
  private readonly writeLimit: number
  private terminal: Terminal | null = null
  private scheduled = false
  private waitingDrain = false
  private ending = false
  private waiters: Waiter[] = []
  /** Pool batches for writes in flight, in write order (null: nothing to give back). */
  private readonly inflight: (Buffer | null)[] = []
  /**
   * Only a net.Socket is known to be done with a buffer when its write callback runs (a generic
   * Duplex, e.g. a PassThrough, may still hold it), so only then are batches pooled.
   */
  private readonly pooling: boolean
  private readonly emit = (frame: Uint8Array): void => {
    this.stats.messagesIn++
    this.stats.bytesIn += frame.length
    // Hot path: dispatch straight to the subscribers (a Subject would add a layer per message).
    const subs = this.subscribers
    if (subs.length === 1) subs[0]!.next(frame)
    else if (subs.length === 0) this.holdOrDiscard(frame)
    else for (let i = 0; i < subs.length; i++) subs[i]!.next(frame)
  }
  /**
   * Frames decoded after the last subscriber left (the rest of the chunk being decoded, e.g.
   * behind a `take(1)`), kept for the next subscriber: at most one chunk's worth, since the socket
   * is paused meanwhile.
   */
  private held: Uint8Array[] = []
  private heldHead = 0

  private holdOrDiscard(frame: Uint8Array): void {
    if (this.opts.pauseWhenUnobserved && !this.ending) this.held.push(frame)
  }

  constructor(
    private readonly socket: Duplex,
    private readonly opts: Required<SocketChannelOptions>,
  ) {
    this.pooling = socket instanceof Socket
    this.decoder = new FrameDecoder(opts.maxLength)
    this.queue = new BoundedQueue(opts.highWaterMark, opts.overflow, sizeOfFrame)
    this.writeLimit = Math.max(1, Math.min(1024 * 1024, opts.highWaterMark >> 1))
    this.stats = new QueueStats(this.queue, socket)

    this.source = new Observable<Uint8Array>((subscriber) => this.subscribe(subscriber))
    this.sink = {
      next: (payload) => this.send(payload),
      error: (e) => this.abort(e),
      complete: () => this.end(),
    }
    this.closed = new Promise((resolve) => {
      if (socket.destroyed && socket.closed) resolve()
      else socket.once('close', () => resolve())
    })

    socket.on('data', this.onData)
    socket.on('end', this.onEnd)
    socket.on('error', this.onError)
    socket.on('close', this.onClose)
    if (opts.pauseWhenUnobserved) socket.pause()
  }

  /** @internal */
  get [HOLDS_WHILE_UNOBSERVED](): boolean {
    return this.opts.pauseWhenUnobserved
  }

  get writable(): boolean {
    return !this.ending && this.terminal === null && this.stats.bufferedBytes <= this.opts.highWaterMark >> 1
  }

  whenWritable(options: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.writable) return Promise.resolve()
    if (this.ending || this.terminal !== null) return Promise.reject(new ClosedError('channel'))
    return waitIn(this.waiters, options.signal)
  }

  send(payload: Uint8Array): void {
    const n = payload.length
    if (this.ending || this.terminal !== null || this.socket.destroyed) {
      this.stats.droppedAfterClose++
      return
    }
    if (n > this.opts.maxLength) {
      // An Observer must not throw (RxJS would rethrow it asynchronously): fail the channel instead.
      this.fail(new FrameTooLongError(n, this.opts.maxLength))
      return
    }
    let accepted: boolean
    try {
      accepted = this.queue.pushSized(payload, sizeOfFrame(payload), this.socket.writableLength)
    } catch (e) {
      this.fail(e)
      return
    }
    if (accepted && !this.scheduled && !this.waitingDrain) {
      this.scheduled = true
      process.nextTick(this.flush)
    }
  }

  close(options: { signal?: AbortSignal } = {}): Promise<void> {
    this.end()
    return abortable(this.closed, options.signal)
  }

  private subscribe(subscriber: Subscriber<Uint8Array>): () => void {
    // Held frames first, in order, for as long as this subscriber stays.
    while (this.heldHead < this.held.length && !subscriber.closed) {
      const frame = this.held[this.heldHead]!
      this.held[this.heldHead++] = undefined as unknown as Uint8Array
      subscriber.next(frame)
    }
    if (this.heldHead === this.held.length && this.heldHead > 0) {
      this.held = []
      this.heldHead = 0
    }
    if (subscriber.closed) return () => {}
    const t = this.terminal
    if (t !== null) {
      if (t.kind === 'error') subscriber.error(t.error)
      else subscriber.complete()
      return () => {}
    }
    this.subscribers = [...this.subscribers, subscriber]
    if (this.subscribers.length === 1 && this.opts.pauseWhenUnobserved) this.socket.resume()
    return () => {
      this.subscribers = this.subscribers.filter((s) => s !== subscriber)
      if (this.subscribers.length === 0 && this.opts.pauseWhenUnobserved && this.terminal === null && !this.ending) this.socket.pause()
    }
  }

  private readonly flush = (): void => {
    this.scheduled = false
    const sock = this.socket
    const q = this.queue
    if (sock.destroyed) return
    const { copyThreshold, batchBytes } = this.opts
    const stats = this.stats
    let corked = false
    while (q.head < q.items.length && sock.writableLength < this.writeLimit) {
      const items = q.items as Uint8Array[]
      const end = items.length
      const from = q.head
      if (!corked && end - from > 1) {
        sock.cork()
        corked = true
      }
      const first = items[from]!
      if (first.length >= copyThreshold) {
        // Large payload: header from the pool, payload by reference (writev, no copy).
        const n = first.length
        const header = Buffer.allocUnsafe(varintLength(n))
        writeVarint(header, 0, n)
        sock.write(header)
        this.inflight.push(null)
        sock.write(first, this.onWritten)
        stats.messagesOut++
        stats.bytesOut += n
        q.consume(from + 1, n + header.length)
        continue
      }
      // Small payloads: one pass, copying frames into one batch until it is full or a large one comes.
      const cap = Math.max(Math.min(batchBytes, q.bytes), first.length + varintLength(first.length))
      const pooled = this.pooling && cap > POOL_MIN && cap <= batchBytes
      const out = pooled ? takeBatch(batchBytes) : Buffer.allocUnsafe(cap)
      let o = 0
      let i = from
      let payload = 0
      while (i < end) {
        const p = items[i]!
        const n = p.length
        if (n >= copyThreshold) break
        if (n < 0x80) {
          if (o + n + 1 > cap) break
          out[o++] = n
        } else {
          if (o + n + varintLength(n) > cap) break
          o = writeVarint(out, o, n)
        }
        out.set(p, o)
        o += n
        payload += n
        i++
      }
      this.inflight.push(pooled ? out : null)
      sock.write(o === out.length ? out : out.subarray(0, o), this.onWritten)
      stats.messagesOut += i - from
      stats.bytesOut += payload
      q.consume(i, o)
    }
    if (corked) sock.uncork()
    // More queued than the socket should hold: resume from the write callbacks (not 'drain',
    // which only fires once the socket passed its own high-water mark).
    if (q.head < q.items.length) this.waitingDrain = true
    else if (this.ending) sock.end()
    this.wakeWaiters()
  }

  /** Write callback of every batch / large payload: the socket made progress. */
  private readonly onWritten = (err?: Error | null): void => {
    const batch = this.inflight.shift()
    if (err != null) return // reported through 'error' / 'close'
    if (batch != null) giveBatch(batch)
    if (this.waitingDrain && this.socket.writableLength < this.writeLimit) {
      this.waitingDrain = false
      this.flush()
    } else {
      this.wakeWaiters()
    }
  }

  private wakeWaiters(): void {
    if (this.waiters.length === 0 || !this.writable) return
    const w = this.waiters
    this.waiters = []
    for (const { resolve } of w) resolve()
  }

  private rejectWaiters(e: unknown): void {
    const w = this.waiters
    this.waiters = []
    for (const { reject } of w) reject(e)
  }

  private readonly onData = (chunk: Buffer): void => {
    try {
      this.decoder.push(chunk, this.emit)
    } catch (e) {
      this.fail(e)
    }
  }

  private readonly onEnd = (): void => {
    try {
      this.decoder.end()
    } catch (e) {
      this.fail(e)
      return
    }
    this.finish({ kind: 'complete' })
    // Our side may still be flushing; end it once the queue is empty (if not ended already).
    if (!this.ending) this.end()
  }

  private readonly onError = (err: Error): void => {
    this.fail(err instanceof RxnetError ? err : new ConnectionError(`connection failed: ${err.message}`, err))
  }

  private readonly onClose = (): void => {
    if (this.terminal === null) {
      this.finish(
        this.ending && !this.decoder.pending
          ? { kind: 'complete' }
          : { kind: 'error', error: new ConnectionError('connection closed before the far side finished') },
      )
    }
    this.socket.off('data', this.onData)
    this.socket.off('end', this.onEnd)
    this.socket.off('close', this.onClose)
    // Keep a no-op error listener: a late 'error' after close must not crash the process.
    this.socket.off('error', this.onError)
    this.socket.on('error', noop)
    this.stats.droppedAfterClose += this.queue.length // never written: counted as dropped
    this.queue.clear()
    this.rejectWaiters(new ClosedError('channel'))
  }

  /** Fails the channel: error to `source`, socket destroyed. */
  private fail(e: unknown): void {
    this.finish({ kind: 'error', error: e })
    // A reset (RST) tells the far side this was a failure, not a clean end.
    const s = this.socket as Duplex & { resetAndDestroy?: () => void }
    // resetAndDestroy() throws ERR_INVALID_HANDLE_TYPE on anything but TCP (Unix sockets, pipes).
    if (typeof s.resetAndDestroy === 'function' && !s.destroyed) {
      try {
        s.resetAndDestroy()
      } catch {
        s.destroy()
      }
    } else s.destroy()
  }

  private abort(cause: unknown): void {
    this.fail(new ChannelAbortedError(cause))
  }

  private end(): void {
    if (this.ending) return
    this.ending = true
    this.rejectWaiters(new ClosedError('channel'))
    // The far side's FIN is only seen by reading: with nobody subscribed, read (and discard) so
    // the socket can close instead of staying half-open.
    if (this.subscribers.length === 0 && this.opts.pauseWhenUnobserved && this.terminal === null) this.socket.resume()
    if (!this.scheduled && !this.waitingDrain) {
      if (this.queue.length === 0) this.socket.end()
      else this.flush()
    }
  }

  private takeSubscribers(): Subscriber<Uint8Array>[] {
    const subs = this.subscribers
    this.subscribers = []
    return subs
  }

  private finish(t: Terminal): void {
    if (this.terminal !== null) return
    this.terminal = t
    if (t.kind === 'error') {
      this.rejectWaiters(t.error)
      for (const s of this.takeSubscribers()) s.error(t.error)
    } else {
      for (const s of this.takeSubscribers()) s.complete()
    }
  }
}

function noop(): void {}

/**
 * @internal The {@link ChannelStats} of a channel with a send queue: plain counters the channel
 * increments, getters over the queue and, when given, what `socket` still buffers. Multicast's
 * stats extend it.
 */
export class QueueStats implements ChannelStats {
  messagesIn = 0
  bytesIn = 0
  messagesOut = 0
  bytesOut = 0
  droppedAfterClose = 0
  readonly #queue: BoundedQueue<Uint8Array>
  readonly #socket: Duplex | undefined
  constructor(queue: BoundedQueue<Uint8Array>, socket?: Duplex) {
    this.#queue = queue
    this.#socket = socket
  }
  get dropped(): number {
    return this.#queue.dropped + this.droppedAfterClose
  }
  get overflows(): number {
    return this.#queue.overflows
  }
  get bufferedBytes(): number {
    return this.#queue.bytes + (this.#socket?.writableLength ?? 0)
  }
}
