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
import { HOLDS_WHILE_UNOBSERVED } from './channel.js'
import type { Connection, ConnectionStats } from './connection.js'
import { ConnectionError, EncodeError, FrameTooLongError, InvalidArgumentError, RxnetError } from './errors.js'
import { DEFAULT_MAX_LENGTH, FrameDecoder } from './framing/decoder.js'
import { varintLength, writeVarint } from './framing/varint.js'
import { DEFAULT_HIGH_WATER_MARK, DEFAULT_OVERFLOW, type OverflowPolicy, RingQueue } from './queue.js'
import { ConnectionKernel, DEFAULT_MAX_HELD_MESSAGES, OPEN, type ConnectionState, type KernelOptions } from './lifecycle.js'
import { checkInt, checkKeys, checkOverflow, withDefaults } from './options.js'
import { DEFAULT_CONNECTION_CLOSE_TIMEOUT } from './connection.js'

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
export interface SocketChannelOptions extends KernelOptions {
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
  closeTimeout: DEFAULT_CONNECTION_CLOSE_TIMEOUT,
  maxHeldMessages: DEFAULT_MAX_HELD_MESSAGES,
}

/**
 * A framed {@link Connection} over a byte stream (see the Connection contract).
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
 * console.log(await ch.closed) // undefined: closed cleanly
 * ```
 */
export interface SocketChannel extends Connection<Uint8Array, Uint8Array> {
  /** Where the connection is in its life. */
  readonly state: ConnectionState
}

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
  checkKeys('socketChannel', options, Object.keys(DEFAULT_SOCKET_CHANNEL_OPTIONS))
  const o = withDefaults(DEFAULT_SOCKET_CHANNEL_OPTIONS, options)
  for (const k of ['maxLength', 'highWaterMark', 'copyThreshold', 'batchBytes'] as const) checkInt(k, o[k])
  for (const k of ['closeTimeout', 'maxHeldMessages'] as const) checkInt(k, o[k], 0)
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

class SocketChannelImpl extends ConnectionKernel<Uint8Array> implements SocketChannel {
  readonly stats: QueueStats

  private readonly decoder: FrameDecoder
  private readonly queue: RingQueue<Uint8Array>
  /** Socket buffer level above which we stop handing it batches and resume from write callbacks. */
  private readonly writeLimit: number
  private scheduled = false
  private waitingDrain = false
  /** Pool batches for writes in flight, in write order (null: nothing to give back). */
  private readonly inflight: (Buffer | null)[] = []
  /**
   * Only a net.Socket is known to be done with a buffer when its write callback runs (a generic
   * Duplex, e.g. a PassThrough, may still hold it), so only then are batches pooled.
   */
  private readonly pooling: boolean
  private readonly onFrame = (frame: Uint8Array): void => {
    this.stats.messagesIn++
    this.stats.bytesIn += frame.length
    this.emit(frame)
  }

  constructor(
    private readonly socket: Duplex,
    private readonly opts: Required<SocketChannelOptions>,
  ) {
    super(opts)
    this.pooling = socket instanceof Socket
    this.decoder = new FrameDecoder(opts.maxLength)
    this.queue = new RingQueue(opts.highWaterMark, opts.overflow, sizeOfFrame)
    this.writeLimit = Math.max(1, Math.min(1024 * 1024, opts.highWaterMark >> 1))
    this.stats = new QueueStats(this.queue, socket)
    if (socket.destroyed && (socket as Duplex & { closed?: boolean }).closed === true) {
      this.released(new ConnectionError('the socket was already closed'))
      return
    }
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

  send(payload: Uint8Array): void {
    if (this.state !== OPEN || this.socket.destroyed) {
      this.stats.droppedAfterClose++
      return
    }
    if (!(payload instanceof Uint8Array)) {
      // An Observer must not throw (RxJS would rethrow it asynchronously): fail the channel instead.
      this.fail(new EncodeError('bytes', new InvalidArgumentError(`socketChannel sends Uint8Array, got ${typeof payload}`)))
      return
    }
    const n = payload.length
    if (n > this.opts.maxLength) {
      this.fail(new EncodeError('bytes', new FrameTooLongError(n, this.opts.maxLength)))
      return
    }
    let accepted: boolean
    try {
      accepted = this.queue.pushSized(payload, n + varintLength(n), this.socket.writableLength)
    } catch (e) {
      this.fail(e)
      return
    }
    if (accepted && !this.scheduled && !this.waitingDrain) {
      this.scheduled = true
      process.nextTick(this.flush)
    }
  }

  protected hasRoom(): boolean {
    return this.stats.bufferedBytes <= this.opts.highWaterMark >> 1
  }

  protected override onObserved(observed: boolean): void {
    if (!this.opts.pauseWhenUnobserved) return
    if (observed) this.socket.resume()
    else if (this.state === OPEN) this.socket.pause()
  }

  protected startClose(): void {
    // The far side's FIN is only seen by reading: with nobody subscribed, read (and discard,
    // counted in stats.droppedIn) so the socket can close instead of staying half-open.
    if (this.subscribers.length === 0 && this.opts.pauseWhenUnobserved) this.socket.resume()
    if (!this.scheduled && !this.waitingDrain) {
      if (this.queue.length === 0) this.socket.end()
      else this.flush()
    }
  }

  protected destroy(): void {
    // A reset (RST) tells the far side this was a failure, not a clean end.
    const s = this.socket as Duplex & { resetAndDestroy?: () => void }
    if (s.destroyed) return
    // resetAndDestroy() throws ERR_INVALID_HANDLE_TYPE on anything but TCP (Unix sockets, pipes),
    // and after end() (our FIN sent) Node 20 never emits 'close' for it: destroy() then.
    if (typeof s.resetAndDestroy === 'function' && !s.writableEnded) {
      try {
        s.resetAndDestroy()
      } catch {
        s.destroy()
      }
    } else s.destroy()
  }

  private readonly flush = (): void => {
    this.scheduled = false
    const sock = this.socket
    const q = this.queue
    if (sock.destroyed) return
    const { copyThreshold, batchBytes } = this.opts
    const stats = this.stats
    let corked = false
    while (q.length > 0 && sock.writableLength < this.writeLimit) {
      const end = q.length
      if (!corked && end > 1) {
        sock.cork()
        corked = true
      }
      const first = q.at(0)
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
        q.consume(1, n + header.length)
        continue
      }
      // Small payloads: one pass, copying frames into one batch until it is full or a large one comes.
      // At most up to writeLimit in the socket: what the socket holds cannot be dropped, so under
      // 'drop-oldest' it must leave room in highWaterMark for the newest messages.
      const cap = Math.max(Math.min(batchBytes, q.bytes, this.writeLimit - sock.writableLength), first.length + varintLength(first.length))
      const pooled = this.pooling && cap > POOL_MIN && cap <= batchBytes
      const out = pooled ? takeBatch(batchBytes) : Buffer.allocUnsafe(cap)
      let o = 0
      let i = 0
      let payload = 0
      while (i < end) {
        const p = q.at(i)
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
      stats.messagesOut += i
      stats.bytesOut += payload
      q.consume(i, o)
    }
    if (corked) sock.uncork()
    // More queued than the socket should hold: resume from the write callbacks (not 'drain',
    // which only fires once the socket passed its own high-water mark).
    if (q.length > 0) this.waitingDrain = true
    else if (this.state !== OPEN) sock.end()
    this.wakeWriters()
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
      this.wakeWriters()
    }
  }

  private readonly onData = (chunk: Buffer): void => {
    try {
      this.decoder.push(chunk, this.onFrame)
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
    this.endInbound()
    // Our side may still be flushing; end it once the queue is empty.
    void this.close()
  }

  private readonly onError = (err: Error): void => {
    this.fail(err instanceof RxnetError ? err : new ConnectionError(`connection failed: ${err.message}`, err))
  }

  private readonly onClose = (): void => {
    const clean = this.inboundEnded || (this.state !== OPEN && !this.decoder.pending)
    this.socket.off('data', this.onData)
    this.socket.off('end', this.onEnd)
    this.socket.off('close', this.onClose)
    // Keep a no-op error listener: a late 'error' after close must not crash the process.
    this.socket.off('error', this.onError)
    this.socket.on('error', noop)
    this.stats.droppedAfterClose += this.queue.length // never written: counted as dropped
    this.queue.clear()
    this.released(clean ? undefined : new ConnectionError('connection closed before the far side finished'))
  }
}

function noop(): void {}

/** What {@link QueueStats} reads of a send queue. */
interface QueueCounters {
  readonly bytes: number
  readonly dropped: number
  readonly overflows: number
}

/**
 * @internal The {@link ConnectionStats} of a channel with a send queue: plain counters the channel
 * increments, getters over the queue and, when given, what `socket` still buffers. Multicast's
 * stats extend it.
 */
export class QueueStats implements ConnectionStats {
  messagesIn = 0
  droppedIn = 0
  bytesIn = 0
  messagesOut = 0
  bytesOut = 0
  droppedAfterClose = 0
  readonly #queue: QueueCounters
  readonly #socket: Duplex | undefined
  constructor(queue: QueueCounters, socket?: Duplex) {
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
