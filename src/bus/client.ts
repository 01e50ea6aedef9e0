/**
 * The bus client: one framed connection to the local hub, reconnected by itself (each attempt:
 * `./dial.ts`). Interests are registered with the hub while someone subscribes and receivers drop
 * anything they have already seen from a sender (`./inbox.ts`); emitted messages wait in a bounded
 * outbox until the hub acknowledges them (`./outbox.ts`), so a hub restart loses nothing the outbox
 * could hold.
 * @module
 */
import type net from 'node:net'
import { randomBytes } from 'node:crypto'
import { BehaviorSubject, Subject, type Observable } from 'rxjs'
import { socketChannel, type SocketChannel } from '../socket.js'
import { backoffDelay } from '../backoff.js'
import { deadline, Waiters, type Settle } from '../wait.js'
import { encodeWith, json, type Codec } from '../codec/index.js'
import { AbortError, ClosedError, ConnectionError, EncodeError, ProtocolError, RxnetError, TimeoutError, UndeliveredError, VersionMismatchError } from '../errors.js'
import { BUS_PROTOCOL_VERSION, decodeFrame, encodeHello, encodePing, encodeString, encodeSub, frameLimit } from './protocol.js'
import { Outbox, type Sealed } from './outbox.js'
import { Inbox } from './inbox.js'
import { dialHub, type DialHandlers } from './dial.js'
import { validateTopic } from './topics.js'
import { topicChannel, type BusChannel, type BusChannelOptions, type ChannelHost } from './channel.js'
import { connectNatsBus } from './nats/client.js'
import { isNatsUrl, type NatsBus, type NatsBusOptions } from './nats/options.js'
import { CloseOnce } from './close.js'
import { busSettings, positive, type Bus, type BusMessage, type BusOptions, type BusEvent, type BusSettings, type BusStats, type BusStatus } from './options.js'

/**
 * The same bus on NATS: connects to the servers in `url` (`nats://host:port`, comma-separated for
 * a cluster) through `@nats-io/transport-node` (an optional peer dependency, loaded on first use).
 * See README "Scaling out" (`./nats/client.ts`).
 * @example
 * ```ts
 * const bus = connectBus('nats://127.0.0.1:4222', { durable: { stream: 'EVENTS', subjects: ['orders.>'] } })
 * bus.messages$('orders.>', { from: 'start' }).subscribe(console.log)
 * bus.emit('orders.created', { id: 1 })
 * ```
 */
export function connectBus(url: `nats://${string}` | `tls://${string}`, options?: NatsBusOptions): NatsBus
/**
 * Connects to the hub at `path` (Unix socket or Windows named pipe). Returns at once; the client
 * connects, and reconnects after any failure, by itself. Before every attempt it checks that the
 * socket and its directories cannot be another user's (`ERR_UNSAFE_PATH`: thrown here if the
 * directories are unsafe, reported on `status$` for the socket itself); a missing hub is
 * `ERR_NO_HUB` on `status$`.
 * @example
 * ```ts
 * import { connectBus } from 'rxnet'
 * import { take } from 'rxjs'
 * const bus = connectBus('/tmp/app.sock')
 * bus.messages$('log.*').subscribe((line) => console.log(line))      // netcluster's on()
 * bus.messages$('job.done').pipe(take(1)).subscribe(() => {})        // netcluster's once()
 * bus.emit('log.info', { line: 'TESTE' })
 * await bus.close()
 * ```
 */
export function connectBus(path: string, options?: BusOptions | NatsBusOptions): Bus
export function connectBus(path: string, options: BusOptions | NatsBusOptions = {}): Bus {
  if (isNatsUrl(path)) return connectNatsBus(path, options) // the same Bus on NATS: ./nats/client.ts
  return new BusImpl(path, options)
}

class BusImpl implements Bus {
  readonly id: string
  readonly stats: BusStats = { emitted: 0, received: 0, duplicates: 0, implausible: 0, lost: 0, undecodable: 0, dropped: 0, undelivered: 0, overflows: 0, buffered: 0, reconnects: 0 }
  readonly status$: Observable<BusStatus>
  readonly events$: Observable<BusEvent>

  private readonly status = new BehaviorSubject<BusStatus>({ type: 'connecting', attempt: 0 })
  private readonly events = new Subject<BusEvent>()
  private readonly codec: Codec<unknown>
  private readonly settings: BusSettings
  private readonly outbox: Outbox
  private readonly inbox: Inbox
  private readonly topics = new Map<string, Uint8Array>()
  private readonly pings = new Map<number, Settle<void>>()
  private readonly writableWaiters = new Waiters()
  private ch: SocketChannel | null = null
  /** A connection attempt not yet verified and wrapped in a channel. */
  private pending: net.Socket | null = null
  /** Why the last attempt or connection failed (the `cause` of flush timeouts and `ERR_UNDELIVERED`). */
  private lastError: RxnetError | null = null
  private welcomed = false
  /** Why this client gave up its current connection itself (a frame the hub should not have sent): what status$ reports, not the ERR_ABORTED of that abort. */
  private gaveUp: RxnetError | null = null
  private seq = 0
  private pingId = 0
  private attempt = 0
  private everConnected = false
  private timer: NodeJS.Timeout | null = null
  private readonly closing = new CloseOnce()
  private closed = false

  constructor(
    private readonly path: string,
    options: BusOptions,
  ) {
    const settings = (this.settings = busSettings(path, options))
    this.codec = settings.codec
    // Fresh for every client: receivers key duplicate detection on (id, seq), and seq restarts at 1.
    this.id = randomBytes(8).toString('hex')
    this.inbox = new Inbox(this.stats, this.codec, (frame) => this.ch?.send(frame))
    this.outbox = new Outbox(settings.highWaterMark, settings.overflow, settings.maxMessageSize, this.onSeal)
    this.status$ = this.status.asObservable()
    this.events$ = this.events.asObservable()
    this.connect()
  }

  get connected(): boolean {
    return this.welcomed
  }

  get writable(): boolean {
    return !this.closed && this.outbox.bytes <= this.outbox.highWaterMark >> 1
  }

  // ---- subscribing -------------------------------------------------------------------------

  messages$<T = unknown>(pattern: string): Observable<T> {
    return this.inbox.watch<T>(pattern, (subscriber) => (_topic, data) => subscriber.next(data as T))
  }

  envelopes$<T = unknown>(pattern: string): Observable<BusMessage<T>> {
    return this.inbox.watch<BusMessage<T>>(pattern, (subscriber) => (topic, data, origin, seq) => subscriber.next({ topic, data: data as T, origin, seq }))
  }

  // ---- emitting ----------------------------------------------------------------------------

  emit(topic: string, data: unknown): void {
    this.publish(topic, data)
  }

  channel<T = unknown>(topic: string, options?: BusChannelOptions): BusChannel<T> {
    validateTopic(topic)
    if (this.closed || this.closing.started) throw new ClosedError('bus')
    return topicChannel<T>(this.host, topic, options)
  }

  /** What `channel()`s use of this client. */
  private readonly host: ChannelHost = ((bus: BusImpl): ChannelHost => ({
    listen: (topic, deliver, end) => {
      const sub = bus.inbox.watch<never>(topic, () => (_topic, data, _origin, _seq, bytes) => deliver(data, bytes)).subscribe({ complete: end, error: end })
      return () => sub.unsubscribe()
    },
    emitSized: (topic, data) => bus.publish(topic, data),
    whenWritable: () => bus.whenWritable(),
    flush: () => bus.flush(),
    get writable(): boolean {
      return bus.writable
    },
    get outboxBytes(): number {
      return bus.outbox.bytes
    },
  }))(this)

  /** Emits; returns the size of the frame queued, or -1 if the overflow policy discarded it. */
  private publish(topic: string, data: unknown): number {
    if (this.closed || this.closing.started) throw new ClosedError('bus')
    let t = this.topics.get(topic)
    if (t === undefined) {
      validateTopic(topic)
      t = encodeString(topic)
      if (this.topics.size > 1000) this.topics.clear()
      this.topics.set(topic, t)
    }
    const seq = this.seq + 1
    let payload: string | Uint8Array
    if (this.codec === json) {
      // JSON fast path: the text goes straight into the batch frame.
      let text: string | undefined
      try {
        text = JSON.stringify(data)
      } catch (e) {
        throw new EncodeError('json', e)
      }
      if (text === undefined) throw new EncodeError('json', new TypeError(`${typeof data} is not JSON-serialisable`))
      payload = text
    } else {
      payload = encodeWith(this.codec, data)
    }
    let size: number
    try {
      size = this.outbox.add(seq, topic, t, payload)
    } finally {
      this.stats.overflows = this.outbox.overflows
    }
    this.seq = seq
    this.stats.dropped = this.outbox.dropped
    this.stats.buffered = this.outbox.messages
    if (size < 0) return -1
    this.stats.emitted++
    return size
  }

  /** A frame of the outbox is complete: to the hub now if connected (else on the next attach). */
  private readonly onSeal = (s: Sealed): void => {
    if (this.ch !== null) this.ch.send(s.frame)
  }

  whenWritable(options: { signal?: AbortSignal } = {}): Promise<void> {
    const { signal } = options
    if (signal?.aborted) return Promise.reject(new AbortError(signal.reason))
    if (this.closed) return Promise.reject(new ClosedError('bus'))
    if (this.writable) return Promise.resolve()
    return this.writableWaiters.wait(signal)
  }

  flush(options: { signal?: AbortSignal; timeout?: number } = {}): Promise<void> {
    const { signal, timeout } = options
    if (timeout !== undefined) {
      try {
        positive('timeout', timeout, 1)
      } catch (e) {
        return Promise.reject(e)
      }
    }
    if (signal?.aborted) return Promise.reject(new AbortError(signal.reason))
    if (this.closed) return Promise.reject(new ClosedError('bus'))
    const id = ++this.pingId
    return deadline<void>(
      (settle) => {
        this.pings.set(id, settle)
        this.outbox.seal() // what was emitted before goes first
        if (this.ch !== null) this.ch.send(encodePing(id))
        return () => this.pings.delete(id)
      },
      { signal, timeout, onTimeout: () => this.flushTimeout(timeout!) },
    )
  }

  // ---- connection --------------------------------------------------------------------------

  /** `ERR_TIMEOUT` for a flush, with why we are not connected (if we are not) as its cause and in its message. */
  private flushTimeout(ms: number): TimeoutError {
    const why = this.welcomed ? null : this.lastError
    const e = new TimeoutError(why === null ? 'bus flush' : `bus flush (${why.message})`, ms)
    if (why !== null) Object.defineProperty(e, 'cause', { value: why, configurable: true, writable: true })
    return e
  }

  /** One connection attempt (`./dial.ts`); on success, speaks over a channel. */
  private connect(): void {
    this.timer = null
    if (this.closed) return
    this.status.next({ type: 'connecting', attempt: this.attempt })
    this.pending = dialHub(this.path, this.dial)
  }

  private readonly dial: DialHandlers = {
    connected: (socket) => {
      this.pending = null
      this.attach(socket)
    },
    failed: (error) => {
      this.pending = null
      this.retry(error)
    },
    closed: () => this.closed,
  }

  /** Speaks the bus protocol over a connected, verified socket. */
  private attach(socket: net.Socket): void {
    const ch = socketChannel(socket, {
      maxLength: frameLimit(this.settings.maxMessageSize),
      // The outbox bounds what we send; this only has to hold it plus control frames.
      highWaterMark: this.outbox.highWaterMark * 2 + (1 << 20),
      overflow: 'error',
    })
    this.ch = ch
    ch.source.subscribe({
      next: (frame) => this.onFrame(ch, frame),
      error: (e) => this.onDown(ch, e instanceof RxnetError ? e : null),
      complete: () => this.onDown(ch, null),
    })
    ch.send(encodeHello(this.id, this.settings.echo))
    for (const pattern of this.inbox.patterns()) ch.send(encodeSub(pattern))
    this.outbox.seal()
    for (const frame of this.outbox.resend()) ch.send(frame)
    for (const id of this.pings.keys()) ch.send(encodePing(id))
  }

  private onFrame(ch: SocketChannel, bytes: Uint8Array): void {
    if (ch !== this.ch) return
    try {
      const f = decodeFrame(bytes)
      switch (f.type) {
        case 'msg':
          this.inbox.onMessage(f.topic, f.payload, f.origin, f.seq)
          return
        case 'msgs':
          this.inbox.onMessages(bytes, f)
          return
        case 'ack':
          this.onAck(f.seq)
          return
        case 'pong':
          this.pings.get(f.id)?.resolve()
          return
        case 'lost':
          this.stats.lost += f.count
          this.events.next({ type: 'lost', origin: f.origin, count: f.count })
          return
        case 'welcome':
          if (f.version !== BUS_PROTOCOL_VERSION) throw new VersionMismatchError(BUS_PROTOCOL_VERSION, f.version)
          this.welcomed = true
          if (this.everConnected) this.stats.reconnects++
          this.everConnected = true
          this.attempt = 0
          this.status.next({ type: 'connected', hubId: f.hubId })
          return
        default:
          throw new ProtocolError(`unexpected ${f.type.toUpperCase()} from the hub`)
      }
    } catch (e) {
      this.gaveUp = e instanceof RxnetError ? e : new ProtocolError(`bad frame from the hub: ${String(e)}`)
      ch.abort(e)
    }
  }

  private onAck(seq: number): void {
    this.outbox.ack(seq)
    this.stats.buffered = this.outbox.messages
    if (this.writableWaiters.size > 0 && this.writable) this.writableWaiters.resolveAll()
  }

  private onDown(ch: SocketChannel, error: RxnetError | null): void {
    if (ch !== this.ch) return
    this.ch = null
    this.welcomed = false
    const why = this.gaveUp ?? error
    this.gaveUp = null
    this.retry(why)
  }

  /** Reports the failure on `status$` and schedules the next attempt (jittered exponential backoff). */
  private retry(error: RxnetError | null): void {
    if (this.closed) return
    this.lastError = error ?? new ConnectionError(`the hub at ${this.path} closed the connection`)
    this.status.next({ type: 'disconnected', error })
    // Uniform in [50%, 100%] of minDelay 2^attempt capped at maxDelay (the shared default jitter).
    const delay = backoffDelay(this.attempt, { initialDelay: this.settings.minReconnectDelay, maxDelay: this.settings.maxReconnectDelay })
    this.attempt++
    this.timer = setTimeout(() => this.connect(), delay)
  }

  // ---- closing -----------------------------------------------------------------------------

  close(): Promise<void> {
    // The first call reports what was undelivered; later ones just wait for the end.
    return this.closing.close(() => this.shutdown())
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  private async shutdown(): Promise<void> {
    let undelivered = 0
    let why: unknown
    if (this.outbox.messages > 0) {
      // A PONG means the hub processed every PUB sent before the PING (their ACKs may still be on the way).
      await this.flush({ timeout: this.settings.closeTimeout }).catch((e: RxnetError) => {
        undelivered = this.outbox.messages
        why = e.cause ?? e
      })
    }
    this.closed = true
    this.pending?.destroy()
    this.pending = null
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
    const ch = this.ch
    this.ch = null
    this.welcomed = false
    for (const w of [...this.pings.values()]) w.reject(new ClosedError('bus'))
    this.writableWaiters.rejectAll(new ClosedError('bus'))
    this.inbox.close()
    this.stats.undelivered += undelivered
    this.outbox.clear()
    this.stats.buffered = 0
    this.status.next({ type: 'closed' })
    this.status.complete()
    this.events.complete()
    if (ch !== null) {
      await ch.close() // graceful, aborted after the channel's closeTimeout (1 s)
    }
    if (undelivered > 0) throw new UndeliveredError(undelivered, why)
  }
}
