/**
 * Options, defaults and public types of the bus: `startHub()` (`./hub.ts`) and `connectBus()`
 * (`./client.ts`), which both import this file; nothing here imports them back.
 * @module
 */
import type { Observable } from 'rxjs'
import type { CodecLike } from '../codec/index.js'
import type { BusChannel, BusChannelOptions } from './channel.js'
import type { MulticastChannel, MulticastOptions } from '../multicast/index.js'
import type { OverflowPolicy } from '../queue.js'
import type { HubNatsOptions } from './nats/options.js'
import type { NatsBridge } from './nats/bridge.js'
import { InvalidArgumentError, type RxnetError } from '../errors.js'
import { checkInt, checkKeys } from '../options.js'

// ---- hub ----------------------------------------------------------------------------------
/**
 * Default largest hub frame (one message with its topic), 1 MiB.
 * @example
 * ```ts
 * await startHub({ path: '/tmp/app.sock', maxMessageSize: 4 * DEFAULT_MAX_MESSAGE_SIZE })
 * ```
 */
export const DEFAULT_MAX_MESSAGE_SIZE = 1024 * 1024
/**
 * Default send budget per client on the hub, 8 MiB; a client over it is dropped.
 * @example
 * ```ts
 * await startHub({ path: '/tmp/app.sock', clientHighWaterMark: 2 * DEFAULT_CLIENT_HIGH_WATER_MARK })
 * ```
 */
export const DEFAULT_CLIENT_HIGH_WATER_MARK = 8 * 1024 * 1024
/**
 * Default time a client may stay over half its send budget (not reading) before it is dropped, ms.
 * @example
 * ```ts
 * await startHub({ path: '/tmp/app.sock', slowClientTimeout: 5 * DEFAULT_SLOW_CLIENT_TIMEOUT })
 * ```
 */
export const DEFAULT_SLOW_CLIENT_TIMEOUT = 2_000

/**
 * Default time a new connection has to say HELLO, ms.
 * @example
 * ```ts
 * await startHub({ path: '/tmp/app.sock', helloTimeout: DEFAULT_HELLO_TIMEOUT / 5 })
 * ```
 */
export const DEFAULT_HELLO_TIMEOUT = 5_000

/**
 * Default most connections a hub accepts at once (HELLO'd or not); more are refused.
 * @example
 * ```ts
 * await startHub({ path: '/tmp/app.sock', maxClients: 4 * DEFAULT_MAX_CLIENTS })
 * ```
 */
export const DEFAULT_MAX_CLIENTS = 1024
/**
 * Default most bytes a hub holds for frames still arriving, all clients together, 64 MiB.
 * @example
 * ```ts
 * await startHub({ path: '/tmp/app.sock', maxPartialBytes: 4 * DEFAULT_MAX_PARTIAL_BYTES })
 * ```
 */
export const DEFAULT_MAX_PARTIAL_BYTES = 64 * 1024 * 1024
/**
 * Default longest time a frame may take to arrive from its first byte, ms.
 * @example
 * ```ts
 * await startHub({ path: '/tmp/app.sock', frameTimeout: DEFAULT_FRAME_TIMEOUT / 2 })
 * ```
 */
export const DEFAULT_FRAME_TIMEOUT = 10_000

/**
 * Default time a hub restarted after a crash holds messages for the clients its predecessor had
 * (listed in its roster file) until they are back, ms.
 * @example
 * ```ts
 * await startHub({ path: '/tmp/app.sock', recoveryTimeout: 2 * DEFAULT_RECOVERY_TIMEOUT })
 * ```
 */
export const DEFAULT_RECOVERY_TIMEOUT = 5_000

/**
 * Options of `startHub()`.
 * @example
 * ```ts
 * const hub = await startHub({ path: '/tmp/app.sock', multicast: { group: '239.255.0.1', port: 4454, interface: '127.0.0.1', secret: 'k' } })
 * ```
 */
export interface HubOptions {
  /**
   * Unix socket path or Windows named pipe (`\\?\pipe\name`, used as is). The socket is mode 0600 and
   * never reachable by another user; its directory must be owned by you or root and not writable
   * by others unless sticky (`/tmp` is fine), else `ERR_UNSAFE_PATH`.
   */
  path: string
  /**
   * Bridge this hub to other hosts' hubs over a multicast group: every message published by a
   * local client is sent to the group; messages from the group go to local clients only.
   * `overflow` defaults to `'drop-oldest'` here (losses show up as gaps on the receivers).
   * @default undefined (local only)
   */
  multicast?: MulticastOptions
  /**
   * Bridge this hub through NATS (with or without multicast): local clients' messages are
   * published on NATS, and the hub subscribes there to the union of its clients' patterns.
   * @default undefined (no NATS)
   */
  nats?: HubNatsOptions
  /** Largest frame a client may send (topic + payload + a few bytes). @default 1 MiB ({@link DEFAULT_MAX_MESSAGE_SIZE}) */
  maxMessageSize?: number
  /**
   * Send budget per client. Past half of it the hub stops reading all clients until that one
   * catches up (senders slow down); past all of it (plus 128 KiB of slack for reads in progress)
   * the client is dropped with `ERR_BUFFER_OVERFLOW`. @default 8 MiB ({@link DEFAULT_CLIENT_HIGH_WATER_MARK})
   */
  clientHighWaterMark?: number
  /**
   * How long a client may stay over half its budget before it is dropped (`ERR_TIMEOUT`). While
   * any client is that far behind, the hub reads no client and holds acknowledgements, so senders
   * slow down: this is also the longest one stuck client can stall the others. A client that has
   * not taken what was written to it within this time (acknowledgements wait for it) is dropped too.
   * @default 2000 ({@link DEFAULT_SLOW_CLIENT_TIMEOUT})
   */
  slowClientTimeout?: number
  /** Time a new connection has to send HELLO, ms. @default 5000 ({@link DEFAULT_HELLO_TIMEOUT}) */
  helloTimeout?: number
  /** Most connections at once; one more is closed at once (`ERR_LIMIT`, a `refuse` event, `stats.refused`). @default 1024 ({@link DEFAULT_MAX_CLIENTS}) */
  maxClients?: number
  /**
   * Most bytes held for frames still arriving, all clients together (a frame's declared length is
   * held from its first bytes; one client holds at most one frame, so at most `maxMessageSize`).
   * Past it, the client whose frame has been arriving the longest is dropped (`ERR_LIMIT`,
   * `stats.partialOverflows`). At least max(`maxMessageSize`, 16 KiB) + 65 (`ERR_INVALID_ARGUMENT` otherwise). @default 64 MiB ({@link DEFAULT_MAX_PARTIAL_BYTES})
   */
  maxPartialBytes?: number
  /** Longest a frame may take from its first byte to its last, ms (time the hub is not reading does not count); then its client is dropped (`ERR_TIMEOUT`, `stats.partialTimeouts`). @default 10000 ({@link DEFAULT_FRAME_TIMEOUT}) */
  frameTimeout?: number
  /**
   * After a crash, how long the new hub holds messages for each client of the old one (from the
   * roster file `<path>.roster`) until it reconnects; what it holds then is lost, counted in
   * `stats.lost`, reported as `lost` events and to the client if it comes back later. While it
   * holds anything, acknowledgements wait (senders keep their outbox). @default 5000 ({@link DEFAULT_RECOVERY_TIMEOUT})
   */
  recoveryTimeout?: number
  /** Aborts start-up (rejects with `ERR_ABORTED`). */
  signal?: AbortSignal
}

/**
 * Counters of a {@link Hub}.
 * @example
 * ```ts
 * const { clients, published, delivered, dropped }: HubStats = hub.stats
 * ```
 */
export interface HubStats {
  /** Clients connected now (after HELLO). */
  clients: number
  /** Messages published by local clients. */
  published: number
  /** Copies of messages written to local clients. */
  delivered: number
  /** Clients dropped for bad input, overflow or slowness. */
  dropped: number
  /** Messages sent to the multicast group. */
  bridgedOut: number
  /** Messages received from the multicast group. */
  bridgedIn: number
  /** Messages from the group that did not decode as hub frames (dropped). */
  bridgeBad: number
  /** Messages from the group claiming to come from one of this hub's own clients (forged; dropped). */
  bridgeSpoofed: number
  /** Local messages too large for one datagram (delivered locally, not bridged). */
  bridgeTooLarge: number
  /** Connections closed at once because `maxClients` were already connected. */
  refused: number
  /** Bytes held now for frames still arriving (see `maxPartialBytes`). */
  partialBytes: number
  /** Highest `partialBytes` so far. */
  partialBytesPeak: number
  /** Clients dropped to keep `partialBytes` under `maxPartialBytes`. */
  partialOverflows: number
  /** Clients dropped because a frame took longer than `frameTimeout`. */
  partialTimeouts: number
  /** Clients of a crashed predecessor this hub still waits for (0 once all are back or `recoveryTimeout` passed). */
  recovering: number
  /** Messages held for such a client and given up (it did not come back in time, or its `clientHighWaterMark` was full). */
  lost: number
}

/**
 * Something that happened on a hub.
 * @example
 * ```ts
 * hub.events$.subscribe((e: HubEvent) => { if (e.type === 'drop') console.warn('dropped', e.client, e.error.code) })
 * ```
 */
export type HubEvent =
  | { type: 'connect'; client: string }
  | { type: 'disconnect'; client: string }
  /** `count` messages from `origin` will never reach `client` (held for it after a crash, given up); the client is told too. */
  | { type: 'lost'; client: string; origin: string; count: number }
  | { type: 'drop'; client: string | null; error: RxnetError }
  | { type: 'bridge-error'; error: unknown }
  /** A connection was closed at once: `maxClients` were already connected (`ERR_LIMIT`). */
  | { type: 'refuse'; error: RxnetError }
  /** The listening server reported an error (e.g. `EMFILE` while accepting); the hub keeps listening. */
  | { type: 'server-error'; error: unknown }

/**
 * A running hub.
 * @example
 * ```ts
 * const hub: Hub = await startHub({ path: '/tmp/app.sock' })
 * console.log(hub.id, hub.stats.clients)
 * await hub.close()
 * ```
 */
export interface Hub {
  /** The path it listens on. */
  readonly path: string
  /** This hub's id (random, 16 hex digits). */
  readonly id: string
  /** Live counters. */
  readonly stats: HubStats
  /** Connects, disconnects, dropped clients (hot; completes on close). */
  readonly events$: Observable<HubEvent>
  /** The multicast bridge, when there is one. */
  readonly bridge: MulticastChannel | null
  /** The NATS bridge, when there is one. */
  readonly nats: NatsBridge | null
  /** Stops listening, closes every client and the bridge, removes the socket file. Idempotent. */
  close(): Promise<void>
  [Symbol.asyncDispose](): Promise<void>
}

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

/** Every option name `startHub` accepts (others are refused with `ERR_INVALID_ARGUMENT`). */
export const HUB_OPTION_KEYS = Object.keys({
  path: true,
  multicast: true,
  maxMessageSize: true,
  clientHighWaterMark: true,
  slowClientTimeout: true,
  helloTimeout: true,
  recoveryTimeout: true,
  maxClients: true,
  maxPartialBytes: true,
  frameTimeout: true,
  signal: true,
  nats: true,
} satisfies Record<keyof HubOptions, true>) as readonly (keyof HubOptions)[] // a new option that is not listed here fails to compile

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

/**
 * Refuses `startHub` options with an unknown name (closest valid one suggested) or a signal that is
 * not an `AbortSignal`; `ERR_INVALID_ARGUMENT`. (Internal; called by `startHub`; numbers are
 * checked where they are read, with {@link positive}.)
 */
export function checkHubOptions(options: HubOptions): void {
  checkKeys('startHub', options, HUB_OPTION_KEYS)
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) throw new InvalidArgumentError('signal must be an AbortSignal')
}
