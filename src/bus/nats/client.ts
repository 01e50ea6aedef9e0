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
import type { NatsConnection } from '@nats-io/transport-node'
import type { JetStreamClient } from '@nats-io/jetstream'
import { backoffDelay } from '../../backoff.js'
import { deadline, waitFor, Waiters } from '../../wait.js'
import { checkKeys } from '../../options.js'
import { AbortError, ClosedError, ConnectionError, InvalidArgumentError, RxnetError, UndeliveredError } from '../../errors.js'
import { compileTopic, validateTopic } from '../topics.js'
import { publicHost, topicChannel, type BusChannel, type BusChannelOptions } from '../channel.js'
import { BUS_OPTION_KEYS, type BusEvent, type BusMessage, type BusStats, type BusStatus } from '../options.js'
import { loadJetStream, loadTransport } from './load.js'
import { natsBusSettings, type DurableReadOptions, type NatsBus, type NatsBusOptions, type NatsBusSettings } from './options.js'
import { checkDurable, DurableReaders, ensureStream } from './durable.js'
import { Sender } from './sender.js'
import { Outbox } from './outbox.js'
import { NatsRpc } from './rpc.js'
import { Interests, type Deliver, type Listener } from './interests.js'
import { CloseOnce } from '../close.js'

const noop = (): void => {}
const KNOWN_KEYS = [...BUS_OPTION_KEYS, 'nats', 'durable']
/** How long after a failed JetStream publish the unacked durable emits are published again, ms. */
const RETRY_DELAY = 1000

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

/** The bus on NATS; also the connection of a hub's NATS bridge (`./bridge.ts`: {@link NatsBusImpl.forward}, {@link NatsBusImpl.watchRaw}). */
export class NatsBusImpl implements NatsBus {
  readonly id = randomBytes(8).toString('hex')
  readonly stats: BusStats = { emitted: 0, received: 0, duplicates: 0, implausible: 0, lost: 0, undecodable: 0, dropped: 0, undelivered: 0, overflows: 0, buffered: 0, reconnects: 0 }
  readonly status$: Observable<BusStatus>
  /** Nothing to report over NATS yet (the hub's `lost` reports have no NATS counterpart); completes on close. */
  readonly events$: Observable<BusEvent>

  private readonly status = new BehaviorSubject<BusStatus>({ type: 'connecting', attempt: 0 })
  private readonly events = new Subject<BusEvent>()
  private readonly o: NatsBusSettings
  private readonly outbox: Outbox
  private readonly durable: NatsBusOptions['durable']
  private readonly rpc = new NatsRpc()
  private readonly interests: Interests
  /** Turns emits into outbox entries and entries into NATS publishes. */
  private readonly sender: Sender
  /** Durable subscriptions: close() waits for their consumers to stop before its last round trip. */
  private readonly readers: DurableReaders
  private nc: NatsConnection | null = null
  private js: JetStreamClient | null = null
  /** Connected and the outbox republished. */
  private live = false
  /** Bumped on every disconnect: a round trip started in an older generation confirms nothing. */
  private gen = 0
  private pinging = false
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
    this.o = natsBusSettings(url, options)
    this.outbox = new Outbox(this.o.highWaterMark, this.o.overflow)
    this.durable = options.durable
    if (this.durable !== undefined) checkDurable(this.durable)
    this.sender = new Sender(this.id, this.outbox, this.o, this.durable?.subjects ?? [], this.rpc, {
      acked: () => this.release(),
      notStored: () => this.retryDurable(),
    })
    this.interests = new Interests(this.o.codec, this.stats, this.rpc)
    this.readers = new DurableReaders({
      ready: async () => {
        while (this.js === null) {
          if (this.closed) throw this.fatal ?? new ClosedError('bus')
          await this.changed.promise
        }
        return { js: this.js, nc: this.nc!, stream: this.durable!.stream }
      },
      codec: this.o.codec,
      stats: this.stats,
      makeHeaders: () => this.sender.makeHeaders!(),
    })
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
      this.sender.makeHeaders = headers
      nc = await connect({ maxReconnectAttempts: -1, ...this.o.nats, servers: (this.o.nats['servers'] as string[] | undefined) ?? this.o.servers, noEcho: !this.o.echo })
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
    this.sender.attach(nc, this.js)
    this.interests.attach(nc)
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
    const delay = backoffDelay(attempt, { initialDelay: this.o.minDelay, maxDelay: this.o.maxDelay })
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
    this.outbox.forEach((slot) => this.sender.publish(slot))
    this.status.next({ type: 'connected', hubId: nc.info?.server_id ?? '' })
    this.notify()
    this.ping()
  }

  private onDown(error: RxnetError | null): void {
    if (!this.live) return
    this.live = false
    this.gen++
    this.outbox.lost()
    if (!this.closed) this.status.next({ type: 'disconnected', error })
    this.notify()
  }

  /** The NATS client gave up on its own (e.g. an authorization error): start over. */
  private onClosed(nc: NatsConnection, e: void | Error): void {
    if (nc !== this.nc || this.closed) return
    this.onDown(e instanceof Error ? new ConnectionError(`NATS connection closed: ${e.message}`, e) : null)
    this.nc = null
    this.interests.detach()
    this.timer = setTimeout(() => void this.start(1), this.o.minDelay)
  }

  private fail(e: RxnetError): void {
    if (this.closed) return
    this.fatal = e
    this.status.next({ type: 'disconnected', error: e })
    for (const l of [...this.readers.listeners(), ...this.interests.listeners()]) l.error(e)
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
    let slot: number
    try {
      slot = this.sender.emit(topic, data)
    } finally {
      this.stats.overflows = this.outbox.overflows
    }
    this.pushed(slot)
  }

  /**
   * Publishes `payload` (already encoded) on `topic` as `origin`'s message number `seq`, through the
   * outbox like an emit: a hub's NATS bridge forwards its clients' messages with this.
   */
  forward(topic: string, payload: Uint8Array, origin: string, seq: number): void {
    if (this.closed || this.closing.started) return
    let slot: number
    try {
      slot = this.sender.forward(topic, payload, origin, seq)
    } finally {
      this.stats.overflows = this.outbox.overflows
    }
    this.pushed(slot)
  }

  /** After a push (`slot` -1: dropped by the overflow policy): counts, and publishes when live. */
  private pushed(slot: number): void {
    this.stats.dropped = this.outbox.dropped
    this.stats.buffered = this.outbox.length
    if (slot < 0) return
    this.stats.emitted++
    if (this.live) {
      this.sender.publish(slot)
      this.ping()
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
      this.outbox.forEach((slot) => {
        const x = this.outbox.extraOf(slot)
        if (x?.durable === true && x.acked !== true) this.sender.publish(slot)
      })
    }, RETRY_DELAY)
  }

  /** Keeps one round trip in flight while the outbox holds core messages. */
  private ping(): void {
    if (this.pinging || !this.live || this.outbox.length === 0) return
    const nc = this.nc!
    const gen = this.gen
    const upTo = this.outbox.seq
    this.pinging = true
    nc.flush().then(
      () => {
        this.pinging = false
        if (gen !== this.gen) return
        this.outbox.roundTrip(upTo)
        this.release()
        this.ping()
      },
      () => {
        this.pinging = false
      },
    )
  }

  private release(): void {
    this.outbox.release(this.js !== null)
    this.stats.buffered = this.outbox.length
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
        this.flushed(this.outbox.seq, () => done).then(resolve, reject)
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
      while (!cancelled() && !this.closed && this.outbox.oldest <= target) await this.changed.promise
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
    return this.watch<T>(pattern, options, false, (subscriber) => (_topic, data) => subscriber.next(data as T))
  }

  envelopes$<T = unknown>(pattern: string, options?: DurableReadOptions): Observable<BusMessage<T>> {
    return this.watch<BusMessage<T>>(pattern, options, true, (subscriber) => (topic, data, origin, seq) => subscriber.next({ topic, data: data as T, origin, seq }))
  }

  private watch<T>(pattern: string, options: DurableReadOptions | undefined, topic: boolean, make: (subscriber: Subscriber<T>) => Deliver): Observable<T> {
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
      const listener: Listener = { complete: () => subscriber.complete(), error: (e) => subscriber.error(e), topic }
      if (options !== undefined && (options.from !== undefined || options.consumer !== undefined)) {
        if (this.durable === undefined) {
          subscriber.error(new InvalidArgumentError('messages$: from / consumer need durable topics (connectBus(url, { durable: { stream, subjects } }))'))
          return
        }
        return this.readers.read(pattern, options, deliver, listener)
      }
      return this.interests.add(pattern, deliver, listener)
    })
  }

  /**
   * Calls `deliver` with every message on `pattern`, payload undecoded, once per sender seq over
   * all raw watches (a message two overlapping patterns match comes once). Returns the unsubscribe.
   */
  watchRaw(pattern: string, deliver: (topic: string, payload: Uint8Array, origin: string, seq: number) => void): () => void {
    return this.interests.watchRaw(pattern, deliver)
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
      await this.flush({ timeout: this.o.closeTimeout }).catch((e: unknown) => {
        // Confirmed by one round trip but kept for the second: delivered. The rest is not.
        undelivered = this.outbox.unconfirmed(this.js !== null)
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
    const listeners = [...this.readers.listeners(), ...this.interests.listeners()]
    this.readers.clear()
    this.interests.clear()
    if (this.fatal === null) for (const l of listeners) l.complete()
    this.stats.undelivered += undelivered
    this.stats.buffered = 0
    this.outbox.clear()
    this.notify()
    this.nc = null
    this.js = null
    this.sender.detach()
    await waitFor(this.readers.stopped(), { timeout: this.o.closeTimeout, unref: true }).catch(noop)
    // One round trip before the connection goes: the server has then processed this client's acks
    // and unsubscribes (a durable consumer's deliveries stop here, not when the server notices the
    // closed socket, which could be after another client's next publish).
    if (nc !== null && live) await waitFor(nc.flush(), { timeout: this.o.closeTimeout, unref: true }).catch(noop)
    this.status.next({ type: 'closed' })
    this.status.complete()
    this.events.complete()
    if (nc !== null) await nc.close().catch(() => {})
    if (undelivered > 0) throw new UndeliveredError(undelivered, why)
  }
}
