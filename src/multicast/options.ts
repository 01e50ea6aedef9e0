/**
 * Options, defaults, public types and option validation of `multicast()` (`./multicast.ts`, which
 * imports this file; nothing here imports it back).
 * @module
 */
import { isIPv4 } from 'node:net'
import type { Observable } from 'rxjs'
import type { ChannelStats } from '../channel.js'
import type { Connection } from '../connection.js'
import { AbortError, InvalidArgumentError, type BadDatagramError } from '../errors.js'
import { DEFAULT_OVERFLOW, type OverflowPolicy } from '../queue.js'
import { checkInt, checkKeys, checkOverflow, withDefaults } from '../options.js'
import { MAX_UDP_PAYLOAD, overhead } from './datagram.js'

/**
 * Default group: administratively scoped (239.0.0.0/8, RFC 2365), never routed off-site.
 * @example
 * ```ts
 * multicast({ group: DEFAULT_MULTICAST_GROUP, interface: '127.0.0.1' })
 * ```
 */
export const DEFAULT_MULTICAST_GROUP = '239.255.0.2'
/**
 * Default UDP port of the group.
 * @example
 * ```ts
 * multicast({ port: DEFAULT_MULTICAST_PORT + 1, interface: '127.0.0.1' }) // a second, separate group
 * ```
 */
export const DEFAULT_MULTICAST_PORT = 4455
/**
 * Default largest datagram (UDP payload), header included: 1400 bytes fits a 1500-byte Ethernet
 * MTU with room for IP options and common tunnel / VPN encapsulations, so nothing is IP-fragmented.
 * @example
 * ```ts
 * multicast({ interface: '127.0.0.1', maxDatagram: 8 * DEFAULT_MAX_DATAGRAM }) // loopback only: lo has a 64 KiB MTU
 * ```
 */
export const DEFAULT_MAX_DATAGRAM = 1400
/**
 * Default byte budget of the send buffer: 1 MiB.
 * @example
 * ```ts
 * multicast({ interface: '127.0.0.1', highWaterMark: 4 * DEFAULT_MULTICAST_HIGH_WATER_MARK, overflow: 'drop-oldest' })
 * ```
 */
export const DEFAULT_MULTICAST_HIGH_WATER_MARK = 1024 * 1024

/**
 * Options of `multicast()`.
 * @example
 * ```ts
 * const options: MulticastOptions = { group: '239.255.0.9', port: 5000, interface: '127.0.0.1', secret: process.env.MC_SECRET }
 * ```
 */
export interface MulticastOptions {
  /** IPv4 multicast group to join and send to. @default '239.255.0.2' ({@link DEFAULT_MULTICAST_GROUP}) */
  group?: string
  /** UDP port every member binds (shared with `reuseAddr`). @default 4455 ({@link DEFAULT_MULTICAST_PORT}) */
  port?: number
  /**
   * IPv4 address of the interface used for membership and for sending (`'127.0.0.1'` keeps
   * everything on this host, unprivileged). @default undefined: the system's default multicast interface
   */
  interface?: string
  /** IP time-to-live of sent datagrams (1 = this link only). @default 1 */
  ttl?: number
  /** Deliver our datagrams to other sockets on this host (our own echoes are dropped either way). @default true */
  loopback?: boolean
  /** Shared secret: datagrams are sealed with AES-256-GCM under a key derived by HKDF-SHA256. @default undefined (plain) */
  secret?: string | Uint8Array
  /** Largest datagram sent, header included; small messages are packed up to it. @default 1400 ({@link DEFAULT_MAX_DATAGRAM}) */
  maxDatagram?: number
  /** Most bytes buffered for sending before `overflow` applies. @default 1 MiB ({@link DEFAULT_MULTICAST_HIGH_WATER_MARK}) */
  highWaterMark?: number
  /** What a full send buffer does with one more message. @default 'error' (the channel fails with ERR_BUFFER_OVERFLOW) */
  overflow?: OverflowPolicy
  /** Datagrams handed to the socket and not yet confirmed sent, at most. @default 64 */
  maxInFlight?: number
  /** Per-sender duplicate / replay window, in datagrams (a power of two, 32..65536). @default 1024 */
  replayWindow?: number
  /** Senders tracked at once; the oldest is forgotten beyond it. @default 4096 */
  maxSenders?: number
  /**
   * Local address the socket binds. On Linux binding the group address means the socket only
   * receives that group's datagrams (a socket bound to 0.0.0.0 gets every group joined on the
   * port by anyone on the host). @default the group on Linux, '0.0.0.0' elsewhere
   */
  bind?: string
  /** SO_RCVBUF in bytes (capped by the OS). @default undefined (the OS default) */
  recvBufferSize?: number
  /** SO_SNDBUF in bytes (capped by the OS). @default undefined (the OS default) */
  sendBufferSize?: number
  /** Period of `stats$` snapshots, ms. @default 1000 */
  statsInterval?: number
  /** Closes the channel when aborted. @default undefined */
  signal?: AbortSignal
  /**
   * Most inbound messages held while nobody subscribes to `source` (a late subscriber gets them
   * first, in order); beyond it new ones are dropped and counted in `stats.droppedIn`. 0 holds nothing.
   * @default 1024
   */
  maxHeldMessages?: number
  /** How long `close()` waits for the queue to drain before it aborts, ms. @default 1000 */
  closeTimeout?: number
}

/**
 * Defaults of {@link MulticastOptions} (`interface`, `secret`, `bind`, buffer sizes and `signal` have none).
 * @example
 * ```ts
 * console.log(DEFAULT_MULTICAST_OPTIONS.maxDatagram) // 1400
 * ```
 */
export const DEFAULT_MULTICAST_OPTIONS = {
  group: DEFAULT_MULTICAST_GROUP,
  port: DEFAULT_MULTICAST_PORT,
  ttl: 1,
  loopback: true,
  maxDatagram: DEFAULT_MAX_DATAGRAM,
  highWaterMark: DEFAULT_MULTICAST_HIGH_WATER_MARK,
  overflow: DEFAULT_OVERFLOW as OverflowPolicy,
  maxInFlight: 64,
  replayWindow: 1024,
  maxSenders: 4096,
  statsInterval: 1000,
  maxHeldMessages: 1024,
  closeTimeout: 1000,
} as const satisfies MulticastOptions

/** Every option name {@link multicast} knows (anything else is refused with `ERR_INVALID_ARGUMENT`). */
export const MULTICAST_OPTION_KEYS: readonly (keyof MulticastOptions)[] = [
  ...(Object.keys(DEFAULT_MULTICAST_OPTIONS) as (keyof MulticastOptions)[]),
  'interface', 'secret', 'bind', 'recvBufferSize', 'sendBufferSize', 'signal',
]

/**
 * Who sent a message: the datagram's source address and the sender's channel id.
 * @example
 * ```ts
 * mc.source.subscribe(({ from }) => console.log(`${from.address}:${from.port} ${from.senderId}`))
 * ```
 */
export interface MulticastSender {
  /** Source IP address of the datagram. */
  readonly address: string
  /** Source UDP port of the datagram. */
  readonly port: number
  /** The sending channel's id (16 hex digits, see {@link MulticastChannel.id}). */
  readonly senderId: string
}

/**
 * One message received from the group.
 * @example
 * ```ts
 * mc.source.subscribe(({ data }: MulticastMessage) => console.log(new TextDecoder().decode(data)))
 * ```
 */
export interface MulticastMessage {
  /** The message bytes, as sent. */
  readonly data: Uint8Array
  /** Its sender. */
  readonly from: MulticastSender
}

/**
 * Why a received datagram was dropped.
 * @example
 * ```ts
 * mc.rejected$.pipe(filter((r) => r.reason === 'forged')).subscribe((r) => console.warn('forgery from', r.from.address))
 * ```
 */
export type DatagramRejectReason =
  | 'truncated' // shorter than a header
  | 'foreign' // not an rxnet datagram (wrong magic byte)
  | 'version' // unknown wire version or flags
  | 'malformed' // body lengths do not add up
  | 'unsealed' // plain datagram on a channel with a secret
  | 'sealed' // sealed datagram on a channel without a secret
  | 'forged' // failed AES-GCM authentication (wrong key, forged or garbled)
  | 'replayed' // sealed datagram already accepted, or older than the replay window
  | 'duplicate' // plain datagram already accepted, or older than the window

/**
 * A dropped datagram, as reported on {@link MulticastChannel.rejected$}.
 * @example
 * ```ts
 * mc.rejected$.subscribe(({ reason, from, error }) => console.warn(reason, from.address, error.code))
 * ```
 */
export interface DatagramRejection {
  readonly reason: DatagramRejectReason
  /** Source of the datagram. */
  readonly from: { readonly address: string; readonly port: number }
  /** The typed error describing it (`code` `ERR_BAD_DATAGRAM`). */
  readonly error: BadDatagramError
}

/**
 * Everything that happens to a {@link MulticastChannel}, as {@link MulticastChannel.events$}
 * emits it (one union, the same name as the mesh's, the hub's and the bus client's): today a
 * rejected datagram, `{ type: 'rejected', reason, from, error }`. `rejected$` is its filtered view.
 * @example
 * ```ts
 * mc.events$.subscribe((e) => {
 *   if (e.type === 'rejected') console.warn(e.reason, e.from.address, e.error.code)
 * })
 * ```
 */
export type MulticastEvent = { readonly type: 'rejected' } & DatagramRejection

/**
 * Counters of a {@link MulticastChannel}. `messages*` / `bytes*` count messages, `datagrams*` datagrams.
 * @example
 * ```ts
 * mc.stats$.subscribe((s) => console.log(`lost ~${s.gaps - s.reordered}, forged ${s.bad}, replayed ${s.replayed}`))
 * ```
 */
export interface MulticastStats extends ChannelStats {
  /** Inbound messages dropped because more than `maxHeldMessages` were held while nobody subscribed. */
  droppedIn: number
  /** Datagrams accepted (their messages went to `source`). */
  datagramsIn: number
  /** Datagrams sent. */
  datagramsOut: number
  /** Our own datagrams looped back to us, dropped. */
  echoes: number
  /** Plain datagrams received twice (or too old for the window), dropped. */
  duplicates: number
  /** Sealed datagrams received twice (or too old for the replay window), dropped. */
  replayed: number
  /** Malformed, foreign, forged or mis-sealed datagrams, dropped. */
  bad: number
  /** Sequence numbers skipped, over all senders (datagrams lost, unless they arrive late: see `reordered`). */
  gaps: number
  /** Datagrams that arrived after a later one of the same sender (each fills a gap). */
  reordered: number
  /** Datagrams the socket failed to send. */
  sendErrors: number
  /** Senders tracked now. */
  senders: number
}

/**
 * What this receiver knows about one sender.
 * @example
 * ```ts
 * for (const s of mc.senders()) console.log(s.senderId, s.address, s.gaps)
 * ```
 */
export interface SenderInfo {
  readonly senderId: string
  readonly address: string
  readonly port: number
  /** Datagrams accepted from it. */
  readonly datagrams: number
  /** Its sequence numbers skipped (lost, unless they arrived late). */
  readonly gaps: number
  /** Its datagrams that arrived late. */
  readonly reordered: number
  /** Its datagrams dropped as duplicates or replays. */
  readonly duplicates: number
}

/**
 * A UDP multicast group as a Channel: `source` emits `{ data, from }`, `send(bytes)` sends to the group.
 * `source` is hot: it emits what arrives while it is subscribed.
 * @example
 * ```ts
 * const mc: MulticastChannel = multicast({ interface: '127.0.0.1' })
 * await mc.ready
 * mc.send(new Uint8Array([1]))
 * await mc.close()
 * ```
 */
export interface MulticastChannel extends Connection<MulticastMessage, Uint8Array> {
  /** This channel's sender id (16 hex digits), carried in every datagram it sends. */
  readonly id: string
  /** Live counters. */
  readonly stats: MulticastStats
  /** Snapshots of `stats`: one on subscribe, then every `statsInterval` ms; completes on close. */
  readonly stats$: Observable<MulticastStats>
  /** Everything that happens to this channel, one union (hot; completes on close): the common lifecycle stream name. */
  readonly events$: Observable<MulticastEvent>
  /** Every dropped datagram except own echoes (hot; the `rejected` events of `events$`); completes on close. */
  readonly rejected$: Observable<DatagramRejection>
  /** Largest message `send` accepts (`maxDatagram` minus framing). */
  readonly maxMessageSize: number
  /** Resolves once the socket is bound and has joined the group (sends before that are queued). */
  readonly ready: Promise<void>
  /** Per-sender counters. */
  senders(): SenderInfo[]
}

/** Options with defaults applied. */
export type Resolved = Required<Omit<MulticastOptions, 'interface' | 'secret' | 'recvBufferSize' | 'sendBufferSize' | 'signal'>> &
  Pick<MulticastOptions, 'interface' | 'secret' | 'recvBufferSize' | 'sendBufferSize' | 'signal'>

/** Merges defaults once and validates; throws ERR_INVALID_ARGUMENT (or ERR_ABORTED for an aborted signal). */
export function resolveOptions(options: MulticastOptions): Resolved {
  checkKeys('multicast()', options, MULTICAST_OPTION_KEYS)
  const r = withDefaults(DEFAULT_MULTICAST_OPTIONS, options) as unknown as Resolved
  const int = (k: keyof Resolved, min: number, max: number): void => void checkInt(String(k), r[k], min, max)
  if (typeof r.group !== 'string' || !isIPv4(r.group) || Number(r.group.split('.')[0]) < 224 || Number(r.group.split('.')[0]) > 239) {
    throw new InvalidArgumentError(`group must be an IPv4 multicast address (224.0.0.0/4), got ${String(r.group)}`)
  }
  if (r.interface !== undefined && (typeof r.interface !== 'string' || !isIPv4(r.interface))) {
    throw new InvalidArgumentError(`interface must be the IPv4 address of an interface, got ${String(r.interface)}`)
  }
  if (r.bind === undefined) r.bind = process.platform === 'linux' ? r.group : '0.0.0.0'
  if (typeof r.bind !== 'string' || !isIPv4(r.bind)) throw new InvalidArgumentError(`bind must be an IPv4 address, got ${String(r.bind)}`)
  int('port', 1, 65535)
  int('ttl', 0, 255)
  const sealed = r.secret !== undefined
  int('maxDatagram', overhead(sealed) + 2, MAX_UDP_PAYLOAD)
  int('highWaterMark', 1, Number.MAX_SAFE_INTEGER)
  int('maxInFlight', 1, 1 << 20)
  int('replayWindow', 32, 65536)
  if ((r.replayWindow & (r.replayWindow - 1)) !== 0) throw new InvalidArgumentError(`replayWindow must be a power of two, got ${r.replayWindow}`)
  int('maxSenders', 1, 1 << 24)
  int('statsInterval', 1, 2 ** 31 - 1)
  int('maxHeldMessages', 0, 2 ** 31 - 1)
  int('closeTimeout', 0, 2 ** 31 - 1)
  if (r.recvBufferSize !== undefined) int('recvBufferSize', 1, 2 ** 31 - 1)
  if (r.sendBufferSize !== undefined) int('sendBufferSize', 1, 2 ** 31 - 1)
  if (typeof r.loopback !== 'boolean') throw new InvalidArgumentError('loopback must be a boolean')
  checkOverflow(r.overflow)
  if (r.signal?.aborted) throw new AbortError(r.signal.reason)
  return r
}
