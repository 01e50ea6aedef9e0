/**
 * The bus client: one framed connection to the local hub, reconnected by itself. Interests are
 * registered with the hub while someone subscribes; emitted messages wait in a bounded outbox until
 * the hub acknowledges them, so a hub restart loses nothing the outbox could hold; receivers drop
 * anything they have already seen from a sender (by sender id and sequence number).
 * @module
 */
import fs, { type Stats } from 'node:fs'
import net from 'node:net'
import { randomBytes } from 'node:crypto'
import { BehaviorSubject, Observable, Subject, type Subscriber } from 'rxjs'
import { socketChannel, type SocketChannel } from '../socket.js'
import { backoffDelay } from '../backoff.js'
import { deadline, Waiters, type Settle } from '../wait.js'
import { DEFAULT_OVERFLOW } from '../queue.js'
import { checkKeys, checkOverflow } from '../options.js'
import { decodeWith, encodeWith, json, resolveCodec, type Codec } from '../codec/index.js'
import { AbortError, ClosedError, ConnectionError, EncodeError, InvalidArgumentError, NoHubError, PathAccessError, PathNotFoundError, ProtocolError, RxnetError, TimeoutError, UndeliveredError, UnsafePathError, VersionMismatchError } from '../errors.js'
import { BUS_PROTOCOL_VERSION, decodeFrame, encodeHello, encodePing, encodeString, encodeSub, encodeUnsub, forEachEntry, frameLimit, MAX_PATTERNS, type Batch } from './protocol.js'
import { Outbox, type Sealed } from './outbox.js'
import { compileTopic, validateTopic, type TopicMatcher } from './topics.js'
import { checkSocketPath, isPipePath } from './listen.js'
import { CHECKS_PATHS, existingSocket, resolveSocketPath, sameFile, trustedOwner } from './paths.js'
import { SequenceWindow } from '../multicast/window.js'
import { topicChannel, type BusChannel, type BusChannelOptions, type ChannelHost } from './channel.js'
import { connectNatsBus } from './nats/client.js'
import { isNatsUrl, type NatsBus, type NatsBusOptions } from './nats/options.js'
import { CloseOnce } from './close.js'
import {
  DEFAULT_BUS_HIGH_WATER_MARK,
  DEFAULT_CLOSE_TIMEOUT,
  DEFAULT_MAX_MESSAGE_SIZE,
  DEFAULT_MAX_RECONNECT_DELAY,
  DEFAULT_MIN_RECONNECT_DELAY,
  BUS_OPTION_KEYS,
  flag,
  positive,
  type Bus,
  type BusMessage,
  type BusOptions,
  type BusEvent,
  type BusStats,
  type BusStatus,
} from './options.js'

/**
 * The real path of the hub socket at `path` (symbolic links of ours or root's followed: the socket
 * they lead to is what gets checked and connected to, so nobody can swap one between the check and
 * the connect),
 * after checking its directories; `ERR_NO_HUB` when nothing is there.
 */
function hubSocket(path: string): string {
  // A symlink someone else planted (in a sticky directory such as /tmp) is not followed: the kernel's
  // protected_symlinks rule, which realpath (lstat + readlink) would otherwise bypass.
  const link = fs.lstatSync(path, { throwIfNoEntry: false })
  if (link?.isSymbolicLink() && !trustedOwner(link)) throw new UnsafePathError(path, `it is a symbolic link that belongs to uid ${link.uid}, not to you or root`)
  let real: string
  try {
    real = fs.realpathSync(path)
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (code !== 'ENOENT' && code !== 'ENOTDIR') throw new PathAccessError(`cannot examine ${path}: ${(e as Error).message}`, e)
    try {
      resolveSocketPath(path)
    } catch (d) {
      if (d instanceof PathNotFoundError) throw new NoHubError(path, 'its directory does not exist')
      throw d
    }
    throw new NoHubError(path, fs.lstatSync(path, { throwIfNoEntry: false })?.isSymbolicLink() ? 'a symbolic link to nothing' : 'no socket there')
  }
  return resolveSocketPath(real).real
}

/** Sequence numbers per sender remembered for duplicate detection (anything older is dropped as a duplicate). */
const DEDUPE_WINDOW = 4096
/**
 * Farthest a sender's sequence number may be from the highest seen from it, ahead or behind
 * (2^24): a message further away is refused and counted (`stats.implausible`) instead of moving
 * the window, so one forged message (e.g. from an unsealed bridge) cannot make the sender's real
 * messages look old. A sender that really skipped more than this on topics we do not watch loses
 * one message (counted); its next one is followed again.
 */
export const MAX_SEQ_JUMP = 1 << 24

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

type Deliver = (topic: string, data: unknown, origin: string, seq: number, bytes: number) => void

interface Interest {
  readonly matcher: TopicMatcher
  /** Each subscriber's delivery callback, and how to complete it (used by close()). */
  readonly listeners: Map<Deliver, () => void>
}

class BusImpl implements Bus {
  readonly id: string
  readonly stats: BusStats = { emitted: 0, received: 0, duplicates: 0, implausible: 0, lost: 0, undecodable: 0, dropped: 0, undelivered: 0, overflows: 0, buffered: 0, reconnects: 0 }
  readonly status$: Observable<BusStatus>
  readonly events$: Observable<BusEvent>

  private readonly status = new BehaviorSubject<BusStatus>({ type: 'connecting', attempt: 0 })
  private readonly events = new Subject<BusEvent>()
  private readonly codec: Codec<unknown>
  private readonly echo: boolean
  private readonly outbox: Outbox
  private readonly minDelay: number
  private readonly maxDelay: number
  private readonly maxMessageSize: number
  private readonly closeTimeout: number
  private readonly interests = new Map<string, Interest>()
  private routes = new Map<string, Interest[]>()
  /** Per sender: which of its recent sequence numbers were delivered (late arrivals over multicast are still new). */
  private readonly seen = new Map<string, SequenceWindow>()
  private readonly topics = new Map<string, Uint8Array>()
  private readonly pings = new Map<number, Settle<void>>()
  private readonly writableWaiters = new Waiters()
  private ch: SocketChannel | null = null
  /** A connection attempt not yet verified and wrapped in a channel. */
  private pending: net.Socket | null = null
  /** Why the last attempt or connection failed (the `cause` of flush timeouts and `ERR_UNDELIVERED`). */
  private lastError: RxnetError | null = null
  private welcomed = false
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
    checkSocketPath(path)
    checkKeys('connectBus', options, BUS_OPTION_KEYS)
    // Directories that let another user replace the socket are a mistake to report now, not retry.
    if (!isPipePath(path) && CHECKS_PATHS) {
      try {
        resolveSocketPath(path)
      } catch (e) {
        if (e instanceof UnsafePathError) throw e
      }
    }
    this.codec = resolveCodec(options.codec ?? 'json')
    this.echo = flag('echo', options.echo, false)
    // Fresh for every client: receivers key duplicate detection on (id, seq), and seq restarts at 1.
    this.id = randomBytes(8).toString('hex')
    const overflow = options.overflow ?? DEFAULT_OVERFLOW
    checkOverflow(overflow)
    this.maxMessageSize = positive('maxMessageSize', options.maxMessageSize, DEFAULT_MAX_MESSAGE_SIZE)
    this.outbox = new Outbox(positive('highWaterMark', options.highWaterMark, DEFAULT_BUS_HIGH_WATER_MARK), overflow, this.maxMessageSize, this.onSeal)
    this.minDelay = positive('minReconnectDelay', options.minReconnectDelay, DEFAULT_MIN_RECONNECT_DELAY)
    this.maxDelay = Math.max(this.minDelay, positive('maxReconnectDelay', options.maxReconnectDelay, DEFAULT_MAX_RECONNECT_DELAY))
    this.closeTimeout = positive('closeTimeout', options.closeTimeout, DEFAULT_CLOSE_TIMEOUT)
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
    return this.watch<T>(pattern, (subscriber) => (_topic, data) => subscriber.next(data as T))
  }

  envelopes$<T = unknown>(pattern: string): Observable<BusMessage<T>> {
    return this.watch<BusMessage<T>>(pattern, (subscriber) => (topic, data, origin, seq) => subscriber.next({ topic, data: data as T, origin, seq }))
  }

  private watch<T>(pattern: string, make: (subscriber: Subscriber<T>) => Deliver): Observable<T> {
    return new Observable<T>((subscriber) => {
      let matcher: TopicMatcher
      try {
        matcher = compileTopic(pattern)
      } catch (e) {
        subscriber.error(e)
        return
      }
      if (this.closed) {
        subscriber.complete()
        return
      }
      const deliver = make(subscriber)
      let interest = this.interests.get(pattern)
      if (interest === undefined) {
        if (this.interests.size >= MAX_PATTERNS) {
          // The hub would drop this client for it (and it would reconnect with the same SUBs forever).
          subscriber.error(new InvalidArgumentError(`a bus client can watch at most ${MAX_PATTERNS} distinct patterns`))
          return
        }
        interest = { matcher, listeners: new Map() }
        this.interests.set(pattern, interest)
        this.routes.clear()
        if (this.ch !== null) this.ch.send(encodeSub(pattern))
      }
      interest.listeners.set(deliver, () => subscriber.complete())
      const own = interest
      return () => {
        own.listeners.delete(deliver)
        if (own.listeners.size === 0 && this.interests.get(pattern) === own) {
          this.interests.delete(pattern)
          this.routes.clear()
          if (this.ch !== null && !this.closed) this.ch.send(encodeUnsub(pattern))
        }
      }
    })
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
      const sub = bus.watch<never>(topic, () => (_topic, data, _origin, _seq, bytes) => deliver(data, bytes)).subscribe({ complete: end, error: end })
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

  /**
   * One connection attempt: check the socket is not another user's, connect, check it is still
   * the same socket file (nobody swapped it meanwhile), then speak over a channel.
   */
  private connect(): void {
    this.timer = null
    if (this.closed) return
    this.status.next({ type: 'connecting', attempt: this.attempt })
    let target: string = this.path
    let before: Stats | null = null
    if (!isPipePath(this.path) && CHECKS_PATHS) {
      try {
        target = hubSocket(this.path)
        before = existingSocket(target, this.path)
      } catch (e) {
        this.retry(e as RxnetError)
        return
      }
      if (before === null) {
        this.retry(new NoHubError(this.path))
        return
      }
    }
    const socket = net.connect(target)
    this.pending = socket
    const onError = (e: NodeJS.ErrnoException): void => {
      socket.off('connect', onConnect)
      this.pending = null
      socket.destroy()
      const code = e.code
      this.retry(code === 'ENOENT' || code === 'ECONNREFUSED' ? new NoHubError(this.path, code === 'ENOENT' ? 'no socket there' : 'nothing listens on the socket') : new ConnectionError(`cannot connect to ${this.path}: ${e.message}`, e))
    }
    const onConnect = (): void => {
      socket.off('error', onError)
      this.pending = null
      if (this.closed) {
        socket.destroy()
        return
      }
      if (before !== null) {
        let now: Stats | null = null
        try {
          now = existingSocket(target, this.path)
        } catch {
          // reported below
        }
        if (now === null || !sameFile(now, before)) {
          socket.destroy()
          this.retry(new UnsafePathError(this.path, 'the socket was replaced while connecting'))
          return
        }
      }
      this.attach(socket)
    }
    socket.once('error', onError)
    socket.once('connect', onConnect)
  }

  /** Speaks the bus protocol over a connected, verified socket. */
  private attach(socket: net.Socket): void {
    const ch = socketChannel(socket, {
      maxLength: frameLimit(this.maxMessageSize),
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
    ch.send(encodeHello(this.id, this.echo))
    for (const pattern of this.interests.keys()) ch.send(encodeSub(pattern))
    this.outbox.seal()
    for (const s of this.outbox.sealed()) ch.send(s.frame)
    for (const id of this.pings.keys()) ch.send(encodePing(id))
  }

  private onFrame(ch: SocketChannel, bytes: Uint8Array): void {
    if (ch !== this.ch) return
    try {
      const f = decodeFrame(bytes)
      switch (f.type) {
        case 'msg':
          this.onMessage(f.topic, f.payload, f.origin, f.seq, this.targets(f.topic))
          return
        case 'msgs':
          this.onMessages(bytes, f)
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
      ch.sink.error(e)
    }
  }

  /** A batch: consecutive messages of one sender on one topic. */
  private onMessages(frame: Uint8Array, f: Batch<'msgs'> & { origin: string }): void {
    const { topic, origin } = f
    const targets = this.targets(topic)
    forEachEntry(frame, f, (seq, from, to) => this.onMessage(topic, frame.subarray(from, to), origin, seq, targets))
  }

  /** The interests `topic` matches (cached until interests change). */
  private targets(topic: string): Interest[] {
    let targets = this.routes.get(topic)
    if (targets === undefined) {
      targets = []
      for (const i of this.interests.values()) if (i.matcher.matches(topic)) targets.push(i)
      if (this.routes.size > 1000) this.routes.clear()
      this.routes.set(topic, targets)
    }
    return targets
  }

  private onMessage(topic: string, payload: Uint8Array, origin: string, seq: number, targets: Interest[]): void {
    const w = this.seen.get(origin)
    if (w === undefined) {
      if (this.seen.size >= 10_000) this.seen.delete(this.seen.keys().next().value!)
      this.seen.set(origin, new SequenceWindow(DEDUPE_WINDOW, seq, MAX_SEQ_JUMP))
    } else {
      const verdict = w.check(seq)
      if (verdict === 'implausible') {
        w.refuse(seq)
        this.stats.implausible++
        return
      }
      if (verdict !== 'new') {
        this.stats.duplicates++
        return
      }
      w.accept(seq)
    }
    if (targets.length === 0) return // interest just withdrawn
    let data: unknown
    try {
      data = decodeWith(this.codec, payload)
    } catch {
      this.stats.undecodable++
      return
    }
    this.stats.received++
    for (const interest of targets) for (const deliver of interest.listeners.keys()) deliver(topic, data, origin, seq, payload.length)
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
    this.retry(error)
  }

  /** Reports the failure on `status$` and schedules the next attempt (jittered exponential backoff). */
  private retry(error: RxnetError | null): void {
    if (this.closed) return
    this.lastError = error ?? new ConnectionError(`the hub at ${this.path} closed the connection`)
    this.status.next({ type: 'disconnected', error })
    // Uniform in [50%, 100%] of minDelay 2^attempt capped at maxDelay (the shared default jitter).
    const delay = backoffDelay(this.attempt, { initialDelay: this.minDelay, maxDelay: this.maxDelay })
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
      await this.flush({ timeout: this.closeTimeout }).catch((e: RxnetError) => {
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
    const completers = [...this.interests.values()].flatMap((i) => [...i.listeners.values()])
    for (const complete of completers) complete()
    this.interests.clear()
    this.routes.clear()
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
