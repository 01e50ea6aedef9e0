/**
 * Options, defaults and public types of the bus on NATS: `connectBus('nats://...')`
 * (`./client.ts`) and the hub's NATS bridge (`./bridge.ts`).
 * @module
 */
import type { Observable } from 'rxjs'
import { resolveCodec, type Codec } from '../../codec/index.js'
import { InvalidArgumentError } from '../../errors.js'
import { checkOverflow } from '../../options.js'
import { DEFAULT_OVERFLOW, type OverflowPolicy } from '../../queue.js'
import { DEFAULT_BUS_HIGH_WATER_MARK, DEFAULT_CLOSE_TIMEOUT, DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_MAX_RECONNECT_DELAY, DEFAULT_MIN_RECONNECT_DELAY, positive, type Bus, type BusMessage, type BusOptions } from '../options.js'

/**
 * Header carrying the id of the rxnet client that emitted a message (its `origin`).
 * @example
 * ```ts
 * nc.subscribe('log.>', { callback: (_e, m) => console.log(m.headers?.get(ORIGIN_HEADER)) })
 * ```
 */
export const ORIGIN_HEADER = 'Rx-Origin'
/**
 * Header carrying the sender's sequence number (1, 2, 3 ... in emit order, over all topics).
 * @example
 * ```ts
 * nc.subscribe('log.>', { callback: (_e, m) => console.log(m.headers?.get(SEQ_HEADER)) })
 * ```
 */
export const SEQ_HEADER = 'Rx-Seq'

/**
 * Default JetStream duplicate window of a stream `connectBus` creates, ms (publishes with the
 * same message id within it are stored once).
 * @example
 * ```ts
 * connectBus('nats://127.0.0.1:4222', { durable: { stream: 'EVENTS', subjects: ['orders.>'], duplicateWindow: 2 * DEFAULT_DUPLICATE_WINDOW } })
 * ```
 */
export const DEFAULT_DUPLICATE_WINDOW = 120_000

/**
 * Durable topics: emits on `subjects` are stored in the JetStream stream `stream` (created when
 * missing, its subjects extended when it lacks some), acknowledged by the stream before they
 * leave the outbox, and stored once (message id = sender id + seq).
 * @example
 * ```ts
 * const durable: DurableOptions = { stream: 'EVENTS', subjects: ['orders.>'] }
 * const bus = connectBus('nats://127.0.0.1:4222', { durable })
 * ```
 */
export interface DurableOptions {
  /** Stream name (letters, digits, `-`, `_`). */
  stream: string
  /** Subjects (topics or patterns) stored in the stream. */
  subjects: string[]
  /** Replicas when the stream is created (1 on a single server, 3 on a 3-server cluster). @default 1 */
  replicas?: number
  /** Duplicate window when the stream is created, ms. @default 120000 ({@link DEFAULT_DUPLICATE_WINDOW}) */
  duplicateWindow?: number
}

/**
 * Options of `connectBus('nats://...')`: the bus options (reconnect delays are NATS's own here:
 * set them in `nats`), plus `nats` and `durable`.
 * @example
 * ```ts
 * const bus = connectBus('nats://127.0.0.1:4222', { nats: { name: 'billing', user: 'u', pass: 'p' }, durable: { stream: 'EVENTS', subjects: ['orders.>'] } })
 * ```
 */
export interface NatsBusOptions extends BusOptions {
  /**
   * Any `@nats-io/transport-node` connection option (auth, TLS, `name`, `reconnectTimeWait` ...);
   * `servers` defaults to the URL list given to `connectBus`. rxnet sets `noEcho` from `echo`,
   * reconnects forever (`maxReconnectAttempts: -1`) and waits for the first connection unless
   * you say otherwise here.
   * @default {}
   */
  nats?: Record<string, unknown>
  /** Durable topics stored in a JetStream stream. @default undefined (core NATS only) */
  durable?: DurableOptions
}

/**
 * Where a subscription starts reading a durable stream: `'start'` (everything stored), a stream
 * sequence number, a `Date`, or `'new'` (only what arrives from now on).
 * @example
 * ```ts
 * const from: DurableStart = new Date(Date.now() - 60_000)
 * bus.messages$('orders.>', { from }).subscribe(console.log)
 * ```
 */
export type DurableStart = 'start' | 'new' | number | Date

/**
 * Options of `messages$` / `envelopes$` on a NATS bus with durable topics.
 * @example
 * ```ts
 * bus.messages$('orders.>', { from: 'start' })                  // history, then live
 * bus.messages$('orders.>', { consumer: 'billing' })            // resumes where 'billing' left off
 * ```
 */
export interface DurableReadOptions {
  /** Read history from here (an ordered consumer, or where a new durable consumer starts). @default 'start' with `consumer`, otherwise live only */
  from?: DurableStart
  /** Durable consumer name: messages are acknowledged once delivered, and a later subscription with the same name resumes after the last one. @default undefined */
  consumer?: string
}

/**
 * The bus on NATS: a {@link Bus} whose `messages$` / `envelopes$` can also read the durable stream.
 * @example
 * ```ts
 * const bus: NatsBus = connectBus('nats://127.0.0.1:4222', { durable: { stream: 'EVENTS', subjects: ['orders.>'] } })
 * bus.messages$('orders.>', { from: 'start' }).subscribe(console.log)
 * ```
 */
export interface NatsBus extends Bus {
  /** Cold: like {@link Bus.messages$}; with `options`, read the durable stream (history, or a durable consumer). */
  messages$<T = unknown>(pattern: string, options?: DurableReadOptions): Observable<T>
  /** Like {@link NatsBus.messages$}, with topic, origin (`''` for a plain NATS publisher) and seq (`0` then). */
  envelopes$<T = unknown>(pattern: string, options?: DurableReadOptions): Observable<BusMessage<T>>
}

/** True when `target` names NATS servers (`nats://host:port`, comma-separated) rather than a socket path. */
export function isNatsUrl(target: string): boolean {
  return typeof target === 'string' && /^(nats|tls):\/\//.test(target)
}

/**
 * `startHub({ nats })`: bridge the hub through NATS.
 * @example
 * ```ts
 * const nats: HubNatsOptions = { servers: ['nats://10.0.0.1:4222', 'nats://10.0.0.2:4222'], options: { name: 'hub-a' } }
 * await startHub({ path: '/tmp/app.sock', nats })
 * ```
 */
export interface HubNatsOptions {
  /** NATS server URL(s): a list, or one string (comma-separated for several). */
  servers: string | string[]
  /** Any `@nats-io/transport-node` connection option (auth, TLS, `name` ...). @default {} */
  options?: Record<string, unknown>
  /** Bytes of forwarded messages held until NATS confirms them; the oldest are dropped (counted in `hub.nats.stats.dropped`) beyond. @default 32 MiB (`DEFAULT_BRIDGE_HIGH_WATER_MARK`) */
  highWaterMark?: number
}

/** {@link NatsBusOptions} checked, with their defaults (internal: `./client.ts`). */
export interface NatsBusSettings {
  readonly servers: string[]
  readonly codec: Codec<unknown>
  readonly echo: boolean
  readonly highWaterMark: number
  readonly overflow: OverflowPolicy
  readonly minDelay: number
  readonly maxDelay: number
  readonly maxMessageSize: number
  readonly closeTimeout: number
  readonly nats: Record<string, unknown>
}

/** Reads the servers of `url` and the bus options (not `durable`: `./durable.ts`); `ERR_INVALID_ARGUMENT` on a bad one. */
export function natsBusSettings(url: string, options: NatsBusOptions): NatsBusSettings {
  const servers = url.split(',').map((s) => s.trim()).filter((s) => s.length > 0)
  if (servers.length === 0) throw new InvalidArgumentError('connectBus: no NATS server in the URL')
  const overflow = options.overflow ?? DEFAULT_OVERFLOW
  checkOverflow(overflow)
  const minDelay = positive('minReconnectDelay', options.minReconnectDelay, DEFAULT_MIN_RECONNECT_DELAY)
  if (options.nats !== undefined && (typeof options.nats !== 'object' || options.nats === null)) throw new InvalidArgumentError('connectBus: nats must be an object of NATS connection options')
  return {
    servers,
    codec: resolveCodec(options.codec ?? 'json'),
    echo: options.echo ?? false,
    highWaterMark: positive('highWaterMark', options.highWaterMark, DEFAULT_BUS_HIGH_WATER_MARK),
    overflow,
    minDelay,
    maxDelay: Math.max(minDelay, positive('maxReconnectDelay', options.maxReconnectDelay, DEFAULT_MAX_RECONNECT_DELAY)),
    maxMessageSize: positive('maxMessageSize', options.maxMessageSize, DEFAULT_MAX_MESSAGE_SIZE),
    closeTimeout: positive('closeTimeout', options.closeTimeout, DEFAULT_CLOSE_TIMEOUT),
    nats: options.nats ?? {},
  }
}
