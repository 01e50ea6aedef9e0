/**
 * The bus on NATS: `connectBus('nats://...')` gives the same {@link Bus} as the local hub, on a
 * NATS server or cluster. Payloads are the codec's bytes and rxnet's metadata travels in headers
 * only (`Rx-Origin`, `Rx-Seq`), so plain NATS clients interoperate. Emitted messages stay in a
 * bounded outbox until a server round trip (PING/PONG, or the JetStream ack of a durable topic)
 * confirms them, and one round trip more for core messages; after a reconnect or a failover the
 * outbox is published again, in order, and receivers drop what they already have from that sender
 * (strictly increasing seq per sender), so each message arrives once and in order.
 * @module
 */
import { randomBytes } from 'node:crypto'
import { BehaviorSubject, Observable, Subject, type Subscriber } from 'rxjs'
import type { MsgHdrs, NatsConnection, Msg, Subscription as NatsSubscription } from '@nats-io/transport-node'
import type { JetStreamClient } from '@nats-io/jetstream'
import { backoffDelay } from '../../backoff.js'
import { deadline, waitFor, Waiters } from '../../wait.js'
import { BoundedQueue, DEFAULT_OVERFLOW } from '../../queue.js'
import { checkKeys, checkOverflow } from '../../options.js'
import { decodeWith, encodeWith, resolveCodec, type Codec } from '../../codec/index.js'
import { AbortError, ClosedError, ConnectionError, FrameTooLongError, InvalidArgumentError, RxnetError, UndeliveredError } from '../../errors.js'

const noop = (): void => {}
import { isReply, isRequest } from '../../rpc.js'
import { compileTopic, validateTopic, type TopicMatcher } from '../topics.js'
import { publicHost, topicChannel, type BusChannel, type BusChannelOptions } from '../channel.js'
import { DEFAULT_BUS_HIGH_WATER_MARK, DEFAULT_CLOSE_TIMEOUT, DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_MAX_RECONNECT_DELAY, DEFAULT_MIN_RECONNECT_DELAY, positive, BUS_OPTION_KEYS, type BusEvent, type BusMessage, type BusStats, type BusStatus } from '../options.js'
import { loadJetStream, loadTransport } from './load.js'
import { ORIGIN_HEADER, SEQ_HEADER, type DurableReadOptions, type NatsBus, type NatsBusOptions } from './options.js'
import { ensureStream, readDurable, type DurableContext } from './durable.js'
import { decodeBody, readMeta, readMessageMeta, seqHeaders, SenderFilter, ERROR_HEADER, ERROR_CODE_HEADER, MSG_ID_HEADER } from './wire.js'
import { CloseOnce } from '../close.js'

const KNOWN_KEYS = [...BUS_OPTION_KEYS, 'nats', 'durable']
/** How long after a failed JetStream publish the unacked durable emits are published again, ms. */
const RETRY_DELAY = 1000
/** Requests awaiting a reply on this client (oldest forgotten beyond this). */
const MAX_PENDING_REPLIES = 100_000

/**
 * Connects to the NATS servers in `url` (`nats://host:port`, comma-separated for a cluster).
 * Returns at once; `@nats-io/transport-node` is loaded on first use (`ERR_MISSING_DEPENDENCY` on
 * `status$` and every waiting call when it is not installed).
 * @example
 * ```ts
 * import { connectBus } from 'rxnet'
 * const bus = connectBus('nats://127.0.0.1:4222')
 * bus.messages$('log.*').subscribe(console.log)
 * bus.emit('log.info', { line: 'hello' })
 * await bus.close()
 * ```
 */
export function connectNatsBus(url: string, options: NatsBusOptions = {}): NatsBus {
  checkKeys('connectBus', options, KNOWN_KEYS)
  return new NatsBusImpl(url, options)
}

interface Entry {
  readonly seq: number
  readonly subject: string
  readonly payload: Uint8Array
  readonly reply: string | undefined
  readonly headers: MsgHdrs | undefined
  readonly durable: boolean
  /** Forwarded for someone else (a hub's client): its origin and seq go in the headers instead of ours. */
  readonly as: { readonly origin: string; readonly seq: number } | undefined
  acked: boolean
}

type Deliver = (topic: string, data: unknown, origin: string, seq: number) => void

interface Listener {
  readonly complete: () => void
  readonly error: (e: unknown) => void
}

interface Interest {
  readonly listeners: Map<Deliver, Listener>
  readonly filter: SenderFilter
  /** Payloads handed over undecoded (a hub's bridge), requests not unwrapped. */
  readonly raw: boolean
  /** The NATS subject pattern (the map key differs for raw watches). */
  readonly pattern: string
  subs: NatsSubscription[]
}

/** The bus on NATS; also the connection of a hub's NATS bridge (`./bridge.ts`: {@link NatsBusImpl.forward}, {@link NatsBusImpl.watchRaw}). */
export class NatsBusImpl implements NatsBus {
  readonly id = randomBytes(8).toString('hex')
  readonly stats: BusStats = { emitted: 0, received: 0, duplicates: 0, implausible: 0, lost: 0, undecodable: 0, dropped: 0, undelivered: 0, overflows: 0, buffered: 0, reconnects: 0 }
  readonly status$: Observable<BusStatus>
  /** Nothing to report over NATS yet (the hub's `lost` reports have no NATS counterpart); completes on close. */
  readonly events$: Observable<BusEvent>

  private readonly status = new BehaviorSubject<BusStatus>({ type: 'connecting', attempt: 0 })
  private readonly events = new Subject<BusEvent>()
  private readonly servers: string[]
  private readonly codec: Codec<unknown>
  private readonly echo: boolean
  private readonly outbox: BoundedQueue<Entry>
  private readonly minDelay: number
  private readonly maxDelay: number
  private readonly maxMessageSize: number
  private readonly closeTimeout: number
  private readonly natsOptions: Record<string, unknown>
  private readonly durable: NatsBusOptions['durable']
  private readonly durableMatchers: TopicMatcher[]
  private readonly interests = new Map<string, Interest>()
  private readonly pendingReplies = new Map<string, string>()
  /** The duplicate filter of every raw watch (one per bridge). */
  private readonly rawFilter = new SenderFilter()
  /** Topics already validated (emit's hot path). */
  private readonly topics = new Set<string>()
  private readonly readers = new Set<Listener>()
  /** Durable consumers being stopped: close() waits for them before its last round trip. */
  private readonly stopping = new Set<Promise<void>>()
  private nc: NatsConnection | null = null
  private js: JetStreamClient | null = null
  private makeHeaders: (() => MsgHdrs) | null = null
  /** Connected and the outbox republished. */
  private live = false
  /** Bumped on every disconnect: a round trip started in an older generation confirms nothing. */
  private gen = 0
  private seq = 0
  private replyId = 0
  private pinging = false
  /** Core entries up to here were confirmed by a round trip, one round trip ago: released. */
  private releasable = 0
  /** Core entries up to here were confirmed by the last round trip. */
  private confirmed = 0
  private changed: { promise: Promise<void>; resolve: () => void }
  private readonly writableWaiters = new Waiters()
  private fatal: RxnetError | null = null
  /** Why the last connection attempt failed (the cause of ERR_UNDELIVERED on close). */
  private lastError: RxnetError | null = null
  private timer: NodeJS.Timeout | null = null
  private durableRetry: NodeJS.Timeout | null = null
  private readonly closing = new CloseOnce()
  private closed = false

  constructor(url: string, options: NatsBusOptions) {
    this.servers = url.split(',').map((s) => s.trim()).filter((s) => s.length > 0)
    if (this.servers.length === 0) throw new InvalidArgumentError('connectBus: no NATS server in the URL')
    this.codec = resolveCodec(options.codec ?? 'json')
    this.echo = options.echo ?? false
    const overflow = options.overflow ?? DEFAULT_OVERFLOW
    checkOverflow(overflow)
    this.outbox = new BoundedQueue<Entry>(positive('highWaterMark', options.highWaterMark, DEFAULT_BUS_HIGH_WATER_MARK), overflow, (e) => e.payload.length + e.subject.length + 64, 'bus outbox')
    this.minDelay = positive('minReconnectDelay', options.minReconnectDelay, DEFAULT_MIN_RECONNECT_DELAY)
    this.maxDelay = Math.max(this.minDelay, positive('maxReconnectDelay', options.maxReconnectDelay, DEFAULT_MAX_RECONNECT_DELAY))
    this.maxMessageSize = positive('maxMessageSize', options.maxMessageSize, DEFAULT_MAX_MESSAGE_SIZE)
    this.closeTimeout = positive('closeTimeout', options.closeTimeout, DEFAULT_CLOSE_TIMEOUT)
    if (options.nats !== undefined && (typeof options.nats !== 'object' || options.nats === null)) throw new InvalidArgumentError('connectBus: nats must be an object of NATS connection options')
    this.natsOptions = options.nats ?? {}
    this.durable = options.durable
    if (this.durable !== undefined) {
      checkKeys('connectBus durable', this.durable, ['stream', 'subjects', 'replicas', 'duplicateWindow'])
      if (typeof this.durable.stream !== 'string' || !/^[A-Za-z0-9_-]+$/.test(this.durable.stream)) throw new InvalidArgumentError('durable.stream must be a name of letters, digits, - and _')
      if (!Array.isArray(this.durable.subjects) || this.durable.subjects.length === 0) throw new InvalidArgumentError('durable.subjects must be a non-empty array of topics or patterns')
    }
    this.durableMatchers = (this.durable?.subjects ?? []).map((s) => compileTopic(s))
    this.changed = this.newChange()
    this.status$ = this.status.asObservable()
    this.events$ = this.events.asObservable()
    void this.start(0)
  }

  get connected(): boolean {
    return this.live
  }

  get writable(): boolean {
    return !this.closed && this.outbox.bytes <= this.outbox.highWaterMark >> 1
  }

  // ---- connection --------------------------------------------------------------------------

  private async start(attempt: number): Promise<void> {
    this.timer = null
    if (this.closed) return
    this.status.next({ type: 'connecting', attempt })
    let nc: NatsConnection
    try {
      const { connect, headers } = await loadTransport()
      this.makeHeaders = headers
      nc = await connect({ maxReconnectAttempts: -1, ...this.natsOptions, servers: (this.natsOptions['servers'] as string[] | undefined) ?? this.servers, noEcho: !this.echo })
    } catch (e) {
      if (e instanceof RxnetError && e.code === 'ERR_MISSING_DEPENDENCY') return this.fail(e)
      return this.retry(attempt, new ConnectionError('no NATS server reachable', e))
    }
    if (this.closed) {
      await nc.close().catch(() => {})
      return
    }
    try {
      if (this.durable !== undefined) this.js = await ensureStream(await loadJetStream(), nc, this.durable)
    } catch (e) {
      await nc.close().catch(() => {})
      if (e instanceof RxnetError && e.code === 'ERR_MISSING_DEPENDENCY') return this.fail(e)
      // JetStream not ready yet (a cluster still electing its leader, a server without JetStream):
      // reported, and tried again like a connection.
      return this.retry(attempt, new ConnectionError(`durable stream ${this.durable!.stream}: ${(e as Error).message}`, e))
    }
    this.nc = nc
    for (const interest of this.interests.values()) this.subscribeInterest(interest.pattern, interest)
    void this.watchStatus(nc)
    void nc.closed().then((e) => this.onClosed(nc, e))
    this.onUp(nc)
  }

  /** Reports why this attempt failed and tries again after a backoff (doubling, jittered). */
  private retry(attempt: number, error: RxnetError): void {
    if (this.closed) return
    this.lastError = error
    this.status.next({ type: 'disconnected', error })
    // Uniform in [50%, 100%] of minDelay 2^attempt capped at maxDelay (the shared default jitter).
    const delay = backoffDelay(attempt, { initialDelay: this.minDelay, maxDelay: this.maxDelay })
    this.timer = setTimeout(() => void this.start(attempt + 1), delay)
  }

  private async watchStatus(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (nc !== this.nc) return
      if (s.type === 'disconnect') this.onDown(null)
      else if (s.type === 'reconnect') {
        this.stats.reconnects++
        this.onUp(nc)
      }
    }
  }

  private onUp(nc: NatsConnection): void {
    if (this.closed || nc !== this.nc) return
    this.live = true
    const q = this.outbox
    for (let i = q.head; i < q.items.length; i++) this.publish(q.items[i]!)
    this.status.next({ type: 'connected', hubId: nc.info?.server_id ?? '' })
    this.notify()
    this.ping()
  }

  private onDown(error: RxnetError | null): void {
    if (!this.live) return
    this.live = false
    this.gen++
    this.confirmed = this.releasable
    if (!this.closed) this.status.next({ type: 'disconnected', error })
    this.notify()
  }

  /** The NATS client gave up on its own (e.g. an authorization error): start over. */
  private onClosed(nc: NatsConnection, e: void | Error): void {
    if (nc !== this.nc || this.closed) return
    this.onDown(e instanceof Error ? new ConnectionError(`NATS connection closed: ${e.message}`, e) : null)
    this.nc = null
    for (const i of this.interests.values()) i.subs = []
    this.timer = setTimeout(() => void this.start(1), this.minDelay)
  }

  private fail(e: RxnetError): void {
    if (this.closed) return
    this.fatal = e
    this.status.next({ type: 'disconnected', error: e })
    for (const l of [...this.readers, ...[...this.interests.values()].flatMap((i) => [...i.listeners.values()])]) l.error(e)
    void this.close()
  }

  // ---- emitting ----------------------------------------------------------------------------

  /** See `Bus.channel`; over NATS the channel's byte counters stay 0. */
  channel<T = unknown>(topic: string, options?: BusChannelOptions): BusChannel<T> {
    validateTopic(topic)
    return topicChannel<T>(publicHost(this), topic, options)
  }

  emit(topic: string, data: unknown): void {
    if (this.closed || this.closing.started) throw this.fatal ?? new ClosedError('bus')
    if (!this.topics.has(topic)) {
      validateTopic(topic)
      if (this.topics.size > 1000) this.topics.clear()
      this.topics.add(topic)
    }
    let body = data
    let reply: string | undefined
    let headers: MsgHdrs | undefined
    if (isRequest(data) && typeof data.to === 'string') {
      // On the wire a request is its body with a NATS reply subject, as a plain nc.request() sends it.
      reply = `${data.to}.${++this.replyId}`
      body = data.body
      if (this.pendingReplies.size >= MAX_PENDING_REPLIES) this.pendingReplies.delete(this.pendingReplies.keys().next().value!)
      this.pendingReplies.set(reply, data.id)
    } else if (isReply(data)) {
      // A reply is its body; a failure is the NATS service-error headers, as NATS services answer.
      body = data.body
      if (data.error !== undefined) {
        headers = this.makeHeaders?.() ?? undefined
        headers?.set(ERROR_HEADER, String(data.error.message))
        if (data.error.code !== undefined) headers?.set(ERROR_CODE_HEADER, String(data.error.code))
      }
    }
    const payload = body === undefined || headers !== undefined ? new Uint8Array(0) : encodeWith(this.codec, body)
    if (payload.length + topic.length > this.maxMessageSize) throw new FrameTooLongError(payload.length + topic.length, this.maxMessageSize)
    const seq = this.seq + 1
    const durable = reply === undefined && this.durableMatchers.some((m) => m.matches(topic))
    const entry: Entry = { seq, subject: topic, payload, reply, headers, durable, as: undefined, acked: false }
    this.push(entry)
  }

  /**
   * Publishes `payload` (already encoded) on `topic` as `origin`'s message number `seq`, through the
   * outbox like an emit: a hub's NATS bridge forwards its clients' messages with this.
   */
  forward(topic: string, payload: Uint8Array, origin: string, seq: number): void {
    if (this.closed || this.closing.started) return
    this.push({ seq: this.seq + 1, subject: topic, payload, reply: undefined, headers: undefined, durable: false, as: { origin, seq }, acked: false })
  }

  private push(entry: Entry): void {
    const seq = entry.seq
    let accepted: boolean
    try {
      accepted = this.outbox.push(entry)
    } finally {
      this.stats.overflows = this.outbox.overflows
    }
    this.seq = seq
    this.stats.dropped = this.outbox.dropped
    this.stats.buffered = this.outbox.length
    if (!accepted) return
    this.stats.emitted++
    if (this.live) {
      this.publish(entry)
      this.ping()
    }
  }

  private publish(e: Entry): void {
    if (e.durable && this.js !== null) {
      const h = this.makeHeaders!()
      h.set(ORIGIN_HEADER, this.id)
      h.set(SEQ_HEADER, String(e.seq))
      this.js.publish(e.subject, e.payload, { msgID: `${this.id}-${e.seq}`, headers: h }).then(
        () => {
          e.acked = true
          this.release()
        },
        // Not stored (a timeout while the stream elects a leader ...): the outbox keeps it and
        // publishes it again, with the same message id, after a reconnect or RETRY_DELAY.
        () => this.retryDurable(),
      )
      return
    }
    let h: MsgHdrs
    if (e.headers === undefined) h = e.as === undefined ? seqHeaders(this.id, e.seq) : seqHeaders(e.as.origin, e.as.seq)
    else {
      h = e.headers // a failed reply's service-error headers, plus ours
      h.set(ORIGIN_HEADER, this.id)
      h.set(SEQ_HEADER, String(e.seq))
    }
    try {
      this.nc!.publish(e.subject, e.payload, { headers: h, reply: e.reply })
    } catch {
      // Closed under us, or refused (a subject NATS does not accept): kept, sent again on reconnect.
    }
  }

  /** After a failed JetStream publish: once, RETRY_DELAY later, publish every unacked durable entry again (in order). */
  private retryDurable(): void {
    if (this.durableRetry !== null || this.closed) return
    const gen = this.gen
    this.durableRetry = setTimeout(() => {
      this.durableRetry = null
      // A reconnect in between has republished the outbox already.
      if (!this.live || gen !== this.gen) return
      const q = this.outbox
      for (let i = q.head; i < q.items.length; i++) {
        const e = q.items[i]!
        if (e.durable && !e.acked) this.publish(e)
      }
    }, RETRY_DELAY)
  }

  /** Keeps one round trip in flight while the outbox holds core messages. */
  private ping(): void {
    if (this.pinging || !this.live || this.outbox.length === 0) return
    const nc = this.nc!
    const gen = this.gen
    const upTo = this.seq
    this.pinging = true
    nc.flush().then(
      () => {
        this.pinging = false
        if (gen !== this.gen) return
        this.releasable = this.confirmed
        this.confirmed = upTo
        this.release()
        this.ping()
      },
      () => {
        this.pinging = false
      },
    )
  }

  private release(): void {
    const q = this.outbox
    while (q.length > 0) {
      const e = q.items[q.head]!
      if (e.durable && this.js !== null ? !e.acked : e.seq > this.releasable) break
      q.shift()
    }
    this.stats.buffered = q.length
    if (this.writableWaiters.size > 0 && this.writable) this.writableWaiters.resolveAll()
    this.notify()
  }

  whenWritable(options: { signal?: AbortSignal } = {}): Promise<void> {
    const { signal } = options
    if (signal?.aborted) return Promise.reject(new AbortError(signal.reason))
    if (this.closed) return Promise.reject(this.fatal ?? new ClosedError('bus'))
    if (this.writable) return Promise.resolve()
    return this.writableWaiters.wait(signal)
  }

  flush(options: { signal?: AbortSignal; timeout?: number } = {}): Promise<void> {
    const { signal, timeout } = options
    if (signal?.aborted) return Promise.reject(new AbortError(signal.reason))
    if (this.closed) return Promise.reject(this.fatal ?? new ClosedError('bus'))
    let done = false
    return deadline<void>(
      ({ resolve, reject }) => {
        this.flushed(this.seq, () => done).then(resolve, reject)
        return () => (done = true)
      },
      { signal, timeout, what: 'bus flush' },
    )
  }

  /** Resolves once a round trip on a live connection is done and nothing up to `target` is left in the outbox. */
  private async flushed(target: number, cancelled: () => boolean): Promise<void> {
    for (;;) {
      if (cancelled()) return
      if (this.closed) throw this.fatal ?? new ClosedError('bus')
      if (!this.live) {
        await this.changed.promise
        continue
      }
      const gen = this.gen
      this.ping()
      const ok = await this.nc!.flush().then(
        () => gen === this.gen,
        () => false,
      )
      if (!ok) continue
      while (!cancelled() && !this.closed && this.outbox.length > 0 && this.outbox.items[this.outbox.head]!.seq <= target) await this.changed.promise
      if (this.closed && !cancelled()) throw this.fatal ?? new ClosedError('bus')
      return
    }
  }

  private newChange(): { promise: Promise<void>; resolve: () => void } {
    let resolve!: () => void
    const promise = new Promise<void>((r) => (resolve = r))
    return { promise, resolve }
  }

  private notify(): void {
    const c = this.changed
    this.changed = this.newChange()
    c.resolve()
  }

  // ---- subscribing -------------------------------------------------------------------------

  messages$<T = unknown>(pattern: string, options?: DurableReadOptions): Observable<T> {
    return this.watch<T>(pattern, options, (subscriber) => (_topic, data) => subscriber.next(data as T))
  }

  envelopes$<T = unknown>(pattern: string, options?: DurableReadOptions): Observable<BusMessage<T>> {
    return this.watch<BusMessage<T>>(pattern, options, (subscriber) => (topic, data, origin, seq) => subscriber.next({ topic, data: data as T, origin, seq }))
  }

  private watch<T>(pattern: string, options: DurableReadOptions | undefined, make: (subscriber: Subscriber<T>) => Deliver): Observable<T> {
    return new Observable<T>((subscriber) => {
      try {
        compileTopic(pattern)
        if (options !== undefined) checkKeys('messages$', options, ['from', 'consumer'])
      } catch (e) {
        subscriber.error(e)
        return
      }
      if (this.closed) {
        if (this.fatal !== null) subscriber.error(this.fatal)
        else subscriber.complete()
        return
      }
      const deliver = make(subscriber)
      const listener: Listener = { complete: () => subscriber.complete(), error: (e) => subscriber.error(e) }
      if (options !== undefined && (options.from !== undefined || options.consumer !== undefined)) {
        if (this.durable === undefined) {
          subscriber.error(new InvalidArgumentError('messages$: from / consumer need durable topics (connectBus(url, { durable: { stream, subjects } }))'))
          return
        }
        this.readers.add(listener)
        const stop = readDurable(this.durableContext(), pattern, options, deliver, listener.error)
        return () => {
          this.readers.delete(listener)
          const stopping = stop().catch(() => {})
          this.stopping.add(stopping)
          void stopping.then(() => this.stopping.delete(stopping))
        }
      }
      let interest = this.interests.get(pattern)
      if (interest === undefined) {
        interest = { listeners: new Map(), filter: new SenderFilter(), raw: false, pattern, subs: [] }
        this.interests.set(pattern, interest)
        if (this.nc !== null) this.subscribeInterest(pattern, interest)
      }
      interest.listeners.set(deliver, listener)
      const own = interest
      return () => {
        own.listeners.delete(deliver)
        if (own.listeners.size === 0 && this.interests.get(pattern) === own) {
          this.interests.delete(pattern)
          for (const s of own.subs) s.unsubscribe()
          own.subs = []
        }
      }
    })
  }

  private durableContext(): DurableContext {
    return {
      ready: async () => {
        while (this.js === null) {
          if (this.closed) throw this.fatal ?? new ClosedError('bus')
          await this.changed.promise
        }
        return { js: this.js, nc: this.nc!, stream: this.durable!.stream }
      },
      codec: this.codec,
      stats: this.stats,
      makeHeaders: () => this.makeHeaders!(),
    }
  }

  private subscribeInterest(pattern: string, interest: Interest): void {
    const nc = this.nc!
    interest.subs = [nc.subscribe(pattern, { callback: (err, msg) => void (err === null && this.onMessage(interest, msg)) })]
    // Replies to this client's requests come on `<inbox>.<n>` (see emit): one wildcard per inbox.
    if (pattern.startsWith('_inbox.') && !pattern.includes('*') && !pattern.includes('>')) {
      interest.subs.push(nc.subscribe(`${pattern}.*`, { callback: (err, msg) => void (err === null && this.onReply(interest, pattern, msg)) }))
    }
  }

  /**
   * Calls `deliver` with every message on `pattern`, payload undecoded, once per sender seq over
   * all raw watches (a message two overlapping patterns match comes once). Returns the unsubscribe.
   */
  watchRaw(pattern: string, deliver: (topic: string, payload: Uint8Array, origin: string, seq: number) => void): () => void {
    const interest: Interest = { listeners: new Map([[deliver as Deliver, { complete: () => {}, error: () => {} }]]), filter: this.rawFilter, raw: true, pattern, subs: [] }
    const key = `raw:${pattern}`
    this.interests.get(key)?.subs.forEach((s) => s.unsubscribe())
    this.interests.set(key, interest)
    if (this.nc !== null) this.subscribeInterest(pattern, interest)
    return () => {
      if (this.interests.get(key) !== interest) return
      this.interests.delete(key)
      for (const s of interest.subs) s.unsubscribe()
    }
  }

  private onMessage(interest: Interest, msg: Msg): void {
    const { origin, seq, noResponders } = readMessageMeta(msg)
    if (noResponders) return
    if (origin !== '' && !interest.filter.accept(origin, seq)) {
      this.stats.duplicates++
      return
    }
    if (interest.raw) {
      this.stats.received++
      for (const deliver of interest.listeners.keys()) deliver(msg.subject, msg.data, origin, seq)
      return
    }
    let data: unknown
    try {
      data = decodeBody(this.codec, msg.data)
    } catch {
      this.stats.undecodable++
      return
    }
    // A message with a NATS reply subject is a request (rxnet's or a plain nc.request()): reply() answers it there.
    // A durable emit is a JetStream publish (its reply subject is for the stream's ack): not a request.
    if (msg.reply && msg.headers?.has(MSG_ID_HEADER) !== true) data = { $rx: 'req', id: msg.reply, body: data, to: msg.reply }
    this.stats.received++
    for (const deliver of interest.listeners.keys()) deliver(msg.subject, data, origin, seq)
  }

  private onReply(interest: Interest, inbox: string, msg: Msg): void {
    const { origin, seq, noResponders, error } = readMeta(msg.headers)
    if (noResponders) return // nobody listens on the request's topic: the request times out, as on the local bus
    const id = this.pendingReplies.get(msg.subject)
    if (id === undefined) return
    this.pendingReplies.delete(msg.subject)
    let data: unknown
    if (error !== undefined) data = { $rx: 'res', id, error }
    else {
      try {
        data = { $rx: 'res', id, body: decodeBody(this.codec, msg.data) }
      } catch {
        this.stats.undecodable++
        return
      }
    }
    this.stats.received++
    for (const deliver of interest.listeners.keys()) deliver(inbox, data, origin, seq)
  }

  // ---- closing -----------------------------------------------------------------------------

  close(): Promise<void> {
    // The first call reports what was undelivered (ERR_UNDELIVERED); later ones just wait for the end.
    return this.closing.close(() => this.shutdown())
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  private async shutdown(): Promise<void> {
    let undelivered = 0
    let why: unknown
    if (this.outbox.length > 0 && this.fatal === null) {
      await this.flush({ timeout: this.closeTimeout }).catch((e: unknown) => {
        // Confirmed by one round trip but kept for the second: delivered. The rest is not.
        const q = this.outbox
        for (let i = q.head; i < q.items.length; i++) {
          const x = q.items[i]!
          if (x.durable && this.js !== null ? !x.acked : x.seq > this.confirmed) undelivered++
        }
        why = this.live ? e : (this.lastError ?? e)
      })
    }
    const nc = this.nc
    const live = this.live
    this.closed = true
    this.live = false
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
    if (this.durableRetry !== null) clearTimeout(this.durableRetry)
    this.durableRetry = null
    this.writableWaiters.rejectAll(this.fatal ?? new ClosedError('bus'))
    // Subscribers complete first: their teardowns stop the durable consumers (and unsubscribe).
    const listeners = [...this.readers, ...[...this.interests.values()].flatMap((i) => [...i.listeners.values()])]
    this.readers.clear()
    this.interests.clear()
    if (this.fatal === null) for (const l of listeners) l.complete()
    this.stats.undelivered += undelivered
    this.stats.buffered = 0
    this.outbox.clear()
    this.notify()
    this.nc = null
    this.js = null
    await waitFor(Promise.all(this.stopping), { timeout: this.closeTimeout, unref: true }).catch(noop)
    // One round trip before the connection goes: the server has then processed this client's acks
    // and unsubscribes (a durable consumer's deliveries stop here, not when the server notices the
    // closed socket, which could be after another client's next publish).
    if (nc !== null && live) await waitFor(nc.flush(), { timeout: this.closeTimeout, unref: true }).catch(noop)
    this.status.next({ type: 'closed' })
    this.status.complete()
    this.events.complete()
    if (nc !== null) await nc.close().catch(() => {})
    if (undelivered > 0) throw new UndeliveredError(undelivered, why)
  }
}
