/**
 * Options, defaults and public types of the bus client, `connectBus()` (`./client.ts`), and what
 * the hub shares with it (`DEFAULT_MAX_MESSAGE_SIZE`, `positive`); nothing here imports them back.
 * The hub's own are in `./hub-options.ts`.
 * @module
 */
import type { Observable } from 'rxjs'
import { resolveCodec, type Codec, type CodecLike } from '../codec/index.js'
import type { BusChannel, BusChannelOptions } from './channel.js'
import { DEFAULT_OVERFLOW, type OverflowPolicy } from '../queue.js'
import { InvalidArgumentError, UnsafePathError, type RxnetError } from '../errors.js'
import { checkInt, checkKeys, checkOverflow } from '../options.js'
import { checkSocketPath, isPipePath } from './listen.js'
import { CHECKS_PATHS, resolveSocketPath } from './paths.js'

// ---- hub ----------------------------------------------------------------------------------
/**
 * Default largest hub frame (one message with its topic), 1 MiB.
 * @example
 * ```ts
 * await startHub({ path: '/tmp/app.sock', maxMessageSize: 4 * DEFAULT_MAX_MESSAGE_SIZE })
 * ```
 */
export const DEFAULT_MAX_MESSAGE_SIZE = 1024 * 1024

// ---- client -------------------------------------------------------------------------------

/**
 * Default byte budget of the outbox (messages not yet acknowledged by the hub), 8 MiB.
 * @example
 * ```ts
 * connectBus('/tmp/app.sock', { highWaterMark: 4 * DEFAULT_BUS_HIGH_WATER_MARK })
 * ```
 */
export const DEFAULT_BUS_HIGH_WATER_MARK = 8 * 1024 * 1024
/**
 * Default first reconnect delay, ms (doubled per failed attempt, jittered).
 * @example
 * ```ts
 * connectBus('/tmp/app.sock', { minReconnectDelay: 2 * DEFAULT_MIN_RECONNECT_DELAY })
 * ```
 */
export const DEFAULT_MIN_RECONNECT_DELAY = 50
/**
 * Default longest reconnect delay, ms.
 * @example
 * ```ts
 * connectBus('/tmp/app.sock', { maxReconnectDelay: 5 * DEFAULT_MAX_RECONNECT_DELAY })
 * ```
 */
export const DEFAULT_MAX_RECONNECT_DELAY = 2_000
/**
 * Default time `close()` waits for the hub to take outstanding messages, ms.
 * @example
 * ```ts
 * connectBus('/tmp/app.sock', { closeTimeout: DEFAULT_CLOSE_TIMEOUT / 4 })
 * ```
 */
export const DEFAULT_CLOSE_TIMEOUT = 2_000

/**
 * Options of `connectBus()`.
 * @example
 * ```ts
 * const bus = connectBus('/tmp/app.sock', { codec: 'msgpack', echo: true, overflow: 'drop-oldest' })
 * ```
 */
export interface BusOptions {
  /** How `emit` encodes values and `messages$` decodes them; every client of a bus must agree. @default 'json' */
  codec?: CodecLike
  /** Receive this client's own messages too. @default false */
  echo?: boolean
  /** Bytes of emitted messages held until the hub acknowledges them. @default 8 MiB ({@link DEFAULT_BUS_HIGH_WATER_MARK}) */
  highWaterMark?: number
  /** What `emit` does when the outbox is full: `'error'` throws `ERR_BUFFER_OVERFLOW`, the others drop and count. @default 'error' */
  overflow?: OverflowPolicy
  /** First reconnect delay, ms; doubled per failed attempt, with jitter. @default 50 ({@link DEFAULT_MIN_RECONNECT_DELAY}) */
  minReconnectDelay?: number
  /** Longest reconnect delay, ms. @default 2000 ({@link DEFAULT_MAX_RECONNECT_DELAY}) */
  maxReconnectDelay?: number
  /** Largest message (topic + payload + a few bytes) `emit` sends (`ERR_FRAME_TOO_LONG` above it) and accepts from the hub; match the hub's. @default 1 MiB (`DEFAULT_MAX_MESSAGE_SIZE`) */
  maxMessageSize?: number
  /** How long `close()` waits for the hub to take what is still in the outbox, ms (then it rejects with `ERR_UNDELIVERED`). @default 2000 ({@link DEFAULT_CLOSE_TIMEOUT}) */
  closeTimeout?: number
}

/**
 * A message as received, with where it came from.
 * @example
 * ```ts
 * bus.envelopes$('log.>').subscribe(({ topic, data, origin, seq }: BusMessage) => console.log(topic, origin, seq, data))
 * ```
 */
export interface BusMessage<T = unknown> {
  readonly topic: string
  readonly data: T
  /** Id of the client that emitted it. */
  readonly origin: string
  /** Its sequence number at that client (1, 2, 3 ... in emit order). */
  readonly seq: number
}

/**
 * Connection state of a bus client.
 * @example
 * ```ts
 * bus.status$.subscribe((s: BusStatus) => { if (s.type === 'disconnected') console.warn('hub gone', s.error?.code) })
 * ```
 */
export type BusStatus =
  | { type: 'connecting'; attempt: number }
  | { type: 'connected'; hubId: string }
  | { type: 'disconnected'; error: RxnetError | null }
  | { type: 'closed' }

/**
 * Something that happened to a bus client (beside its connection status).
 * @example
 * ```ts
 * bus.events$.subscribe((e: BusEvent) => { if (e.type === 'lost') console.warn(`lost ${e.count} messages from ${e.origin}`) })
 * ```
 */
export type BusEvent =
  /** The hub gave up `count` messages from `origin` meant for this client (after a hub crash, it was not back within the new hub's `recoveryTimeout`). */
  { type: 'lost'; origin: string; count: number }

/**
 * Counters of a {@link Bus}.
 * @example
 * ```ts
 * const { emitted, received, duplicates, buffered }: BusStats = bus.stats
 * ```
 */
export interface BusStats {
  /** Messages accepted by `emit`. */
  emitted: number
  /** Messages delivered (once per message, however many local subscribers matched). */
  received: number
  /** Messages received again (after a hub restart or over two paths) and dropped. */
  duplicates: number
  /** Messages dropped because their sequence number was implausibly far (more than 2^24) from the sender's latest: forged, typically. */
  implausible: number
  /** Messages the hub told this client it will never get (held for it after a hub crash and given up); each report is also a `lost` event on `events$`. */
  lost: number
  /** Messages that did not decode with the codec, dropped. */
  undecodable: number
  /** Emitted messages discarded by the overflow policy. */
  dropped: number
  /** Emitted messages still unacknowledged when `close()` gave up on them (see `ERR_UNDELIVERED`). */
  undelivered: number
  /** Times the outbox was full when `emit` was called. */
  overflows: number
  /** Messages in the outbox (not yet acknowledged by the hub). */
  buffered: number
  /** Successful connections after the first. */
  reconnects: number
}

/**
 * A client of the bus.
 * @example
 * ```ts
 * const bus: Bus = connectBus('/tmp/app.sock')
 * bus.messages$('log.*').subscribe(console.log)
 * bus.emit('log.info', { line: 'hello' })
 * await bus.close()
 * ```
 */
export interface Bus {
  /** This client's id: random, fresh for every `connectBus` (the `origin` of its messages). */
  readonly id: string
  /** Live counters. */
  readonly stats: BusStats
  /** The current status, then every change; completes on close. */
  readonly status$: Observable<BusStatus>
  /** What happened to this client: `lost` reports (hot; completes on close). */
  readonly events$: Observable<BusEvent>
  /** True while connected to a hub. */
  readonly connected: boolean
  /** Cold: the data of every message whose topic matches `pattern` (`log`, `log.*`, `log.>`). */
  messages$<T = unknown>(pattern: string): Observable<T>
  /** Like {@link Bus.messages$}, with topic, origin and sequence number. */
  envelopes$<T = unknown>(pattern: string): Observable<BusMessage<T>>
  /**
   * `topic` (no wildcards) as a Connection: `source` is `messages$(topic)` (registered from now on;
   * held, bounded, while nobody subscribes), `send` emits on it; for `request` / `reply` / `encode`
   * and any operator written for Channels. Ends with its own `close()` / `abort()`, or cleanly when
   * this bus closes. Throws `ERR_INVALID_ARGUMENT` for an invalid topic, `ERR_CLOSED` after `close()`.
   */
  channel<T = unknown>(topic: string, options?: BusChannelOptions): BusChannel<T>
  /** Publishes `data` on `topic` (no wildcards). Throws on an invalid topic, an unencodable value, or a full outbox under `'error'`. */
  emit(topic: string, data: unknown): void
  /** True while the outbox is under half its budget. */
  readonly writable: boolean
  /** Resolves once the outbox is under half its budget. */
  whenWritable(options?: { signal?: AbortSignal }): Promise<void>
  /**
   * Resolves once the hub has processed everything emitted and subscribed so far; waits for a
   * connection, without limit unless `timeout` (ms; then `ERR_TIMEOUT`, whose `cause` is why it
   * is not connected, e.g. `ERR_NO_HUB`) or `signal` (`ERR_ABORTED`) says otherwise.
   */
  flush(options?: { signal?: AbortSignal; timeout?: number }): Promise<void>
  /**
   * Waits (up to `closeTimeout`) for the hub to take the outbox, then disconnects; subscribers
   * complete. Rejects with `ERR_UNDELIVERED` (`count`, `cause`: e.g. `ERR_NO_HUB`) after closing
   * if emitted messages were never acknowledged (they are discarded and counted in
   * `stats.undelivered`); resolves otherwise. Idempotent: later calls resolve once it is closed.
   */
  close(): Promise<void>
  [Symbol.asyncDispose](): Promise<void>
}

/** An optional positive-integer option, or its default; `ERR_INVALID_ARGUMENT` otherwise (a string says so). (Internal; used by the hub and the client.) */
export function positive(name: string, v: number | undefined, d: number): number {
  if (v === undefined) return d
  if (typeof v === 'string') throw new InvalidArgumentError(`${name} must be a number, got the string ${JSON.stringify(v)}`)
  return checkInt(name, v)
}

/** An optional boolean option, or its default; `ERR_INVALID_ARGUMENT` otherwise. (Internal.) */
export function flag(name: string, v: boolean | undefined, d: boolean): boolean {
  if (v === undefined) return d
  if (typeof v !== 'boolean') throw new InvalidArgumentError(`${name} must be true or false, got ${typeof v === 'string' ? `the string ${JSON.stringify(v)}` : String(v)}`)
  return v
}

/** Every option name `connectBus` accepts (others are refused with `ERR_INVALID_ARGUMENT`). */
export const BUS_OPTION_KEYS = Object.keys({
  codec: true,
  echo: true,
  highWaterMark: true,
  overflow: true,
  minReconnectDelay: true,
  maxReconnectDelay: true,
  maxMessageSize: true,
  closeTimeout: true,
} satisfies Record<keyof BusOptions, true>) as readonly (keyof BusOptions)[]

/** @internal `connectBus(path, options)` checked and resolved once (`ERR_INVALID_ARGUMENT`, `ERR_UNSAFE_PATH` thrown). */
export interface BusSettings {
  readonly codec: Codec<unknown>
  readonly echo: boolean
  readonly highWaterMark: number
  readonly overflow: OverflowPolicy
  readonly maxMessageSize: number
  readonly minReconnectDelay: number
  readonly maxReconnectDelay: number
  readonly closeTimeout: number
}

/** @internal Checks the path and every option of a local-hub `connectBus`, and fills in the defaults. */
export function busSettings(path: string, options: BusOptions): BusSettings {
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
  const overflow = options.overflow ?? DEFAULT_OVERFLOW
  checkOverflow(overflow)
  const minReconnectDelay = positive('minReconnectDelay', options.minReconnectDelay, DEFAULT_MIN_RECONNECT_DELAY)
  return {
    codec: resolveCodec(options.codec ?? 'json'),
    echo: flag('echo', options.echo, false),
    highWaterMark: positive('highWaterMark', options.highWaterMark, DEFAULT_BUS_HIGH_WATER_MARK),
    overflow,
    maxMessageSize: positive('maxMessageSize', options.maxMessageSize, DEFAULT_MAX_MESSAGE_SIZE),
    minReconnectDelay,
    maxReconnectDelay: Math.max(minReconnectDelay, positive('maxReconnectDelay', options.maxReconnectDelay, DEFAULT_MAX_RECONNECT_DELAY)),
    closeTimeout: positive('closeTimeout', options.closeTimeout, DEFAULT_CLOSE_TIMEOUT),
  }
}
