/**
 * Options, defaults and public types of `startHub()` (`./hub.ts`), which imports this file; nothing
 * here imports it back; `hubSettings` resolves them. The client's are in `./options.ts`.
 * @module
 */
import type { Observable } from 'rxjs'
import type { MulticastChannel, MulticastOptions } from '../multicast/index.js'
import type { HubNatsOptions } from './nats/options.js'
import type { NatsBridge } from './nats/bridge.js'
import { InvalidArgumentError, type RxnetError } from '../errors.js'
import { checkKeys } from '../options.js'
import { DEFAULT_MAX_MESSAGE_SIZE, positive } from './options.js'
import { frameLimit, MAX_BATCH_BYTES, MSG_OVERHEAD } from './protocol.js'

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

/**
 * Refuses `startHub` options with an unknown name (closest valid one suggested) or a signal that is
 * not an `AbortSignal`; `ERR_INVALID_ARGUMENT`. (Internal; called by `startHub`; numbers are
 * checked where they are read, with {@link positive}.)
 */
export function checkHubOptions(options: HubOptions): void {
  checkKeys('startHub', options, HUB_OPTION_KEYS)
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) throw new InvalidArgumentError('signal must be an AbortSignal')
}

/** @internal `startHub` options resolved once: every number checked (`ERR_INVALID_ARGUMENT`), defaults filled in. */
export interface HubSettings {
  readonly path: string
  readonly maxMessageSize: number
  readonly clientHighWaterMark: number
  readonly slowClientTimeout: number
  readonly helloTimeout: number
  readonly recoveryTimeout: number
  readonly maxClients: number
  readonly maxPartialBytes: number
  readonly frameTimeout: number
}

/** @internal Resolves `startHub` options (after {@link checkHubOptions}). */
export function hubSettings(options: HubOptions): HubSettings {
  if (typeof options.path !== 'string') throw new InvalidArgumentError('startHub needs { path }')
  const maxMessageSize = positive('maxMessageSize', options.maxMessageSize, DEFAULT_MAX_MESSAGE_SIZE)
  const o = {
    path: options.path,
    maxMessageSize,
    clientHighWaterMark: positive('clientHighWaterMark', options.clientHighWaterMark, DEFAULT_CLIENT_HIGH_WATER_MARK),
    slowClientTimeout: positive('slowClientTimeout', options.slowClientTimeout, DEFAULT_SLOW_CLIENT_TIMEOUT),
    helloTimeout: positive('helloTimeout', options.helloTimeout, DEFAULT_HELLO_TIMEOUT),
    recoveryTimeout: positive('recoveryTimeout', options.recoveryTimeout, DEFAULT_RECOVERY_TIMEOUT),
    maxClients: positive('maxClients', options.maxClients, DEFAULT_MAX_CLIENTS),
    maxPartialBytes: positive('maxPartialBytes', options.maxPartialBytes, DEFAULT_MAX_PARTIAL_BYTES),
    frameTimeout: positive('frameTimeout', options.frameTimeout, DEFAULT_FRAME_TIMEOUT),
  }
  // One frame of the largest size must fit, or a client sending one would be dropped forever.
  if (o.maxPartialBytes < frameLimit(maxMessageSize)) throw new InvalidArgumentError(`maxPartialBytes (${o.maxPartialBytes}) must be at least max(maxMessageSize, ${MAX_BATCH_BYTES}) + ${MSG_OVERHEAD} (${frameLimit(maxMessageSize)})`)
  return o
}
