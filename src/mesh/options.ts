/**
 * The mesh's public shapes: {@link MeshOptions} with its defaults and validation, {@link Mesh},
 * its events and counters. The state machine that implements them is in `mesh.ts`.
 * @module
 */
import type { SummaryStats } from './summaries.js'
import { hkdfSync, randomBytes } from 'node:crypto'
import net from 'node:net'
import type tls from 'node:tls'
import type { Observable } from 'rxjs'
import type { CodecLike } from '../codec/index.js'
import { InvalidArgumentError, type RxnetError } from '../errors.js'
import { DEFAULT_MAX_LENGTH } from '../framing/decoder.js'
import { checkInt, checkKeys, checkOverflow, describeValue, withDefaults } from '../options.js'
import { isLoopback } from './discovery.js'
import { DEFAULT_MAX_HELD_MESSAGES } from '../lifecycle.js'
import { DEFAULT_HIGH_WATER_MARK, DEFAULT_OVERFLOW, type OverflowPolicy } from '../queue.js'
import type { LeaveReason, Peer } from './peer.js'

/**
 * Options of {@link createMesh}: the mesh name is the only setting nodes must share.
 *
 * @example
 * ```ts
 * import { createMesh, type MeshOptions } from 'rxnet'
 * const options: MeshOptions = { name: 'my-cluster', interface: '127.0.0.1', codec: 'json', secret: 'k' }
 * const mesh = createMesh<{ n: number }, { n: number }>(options)
 * ```
 */
export interface MeshOptions {
  /** Mesh (service) name: the only setting nodes must share. */
  name: string
  /** This node's id; must be unique in the mesh. @default 12 random hex digits */
  id?: string
  /** `'127.0.0.1'` (or `'::1'`, `'localhost'`): discovery and listening on loopback only; an IPv4 address: that NIC; unset: every interface. @default undefined */
  interface?: string
  /** `'host:port'` entries dialled directly (no multicast needed). @default [] */
  seeds?: string[]
  /** Discover peers over mDNS / DNS-SD. @default true */
  discovery?: boolean
  /** Advertise this node over mDNS (false: it still finds and dials the others). @default true */
  advertise?: boolean
  /** Pre-shared key: every connection is TLS 1.3 (AES-128-GCM, PSK with ECDHE) keyed from it, TLS 1.2 ECDHE-PSK with 0.1 nodes; see {@link PSK_CIPHERS}. @default undefined */
  secret?: string
  /** Certificates for mutual TLS (`key`, `cert`, `ca`); peers must present a certificate the `ca` signed. @default undefined */
  tls?: tls.SecureContextOptions
  /** How messages are encoded: `'raw'` (bytes / strings), `'json'`, `'msgpack'`, `'utf8'` or a custom codec. @default 'raw' */
  codec?: CodecLike<any>
  /** Heartbeat period on every link, in ms. @default 400 */
  heartbeatInterval?: number
  /** A peer silent for longer than this (ms) is dropped. @default 1500 */
  failureTimeout?: number
  /** Time allowed for the handshake of a connection (TLS included), in ms. @default 2000 */
  handshakeTimeout?: number
  /** Time allowed for a TCP connect, in ms. @default 2000 */
  connectTimeout?: number
  /** First reconnect delay in ms (doubled per failure, jittered ±50%). @default 100 */
  reconnectDelay?: number
  /** Largest reconnect delay in ms. @default 2000 */
  maxReconnectDelay?: number
  /** Largest inbound message, in bytes. @default 4 MiB */
  maxLength?: number
  /** Per-peer send buffer budget in bytes. @default 8 MiB */
  highWaterMark?: number
  /** What a full per-peer send buffer does with one more message. @default 'error' */
  overflow?: OverflowPolicy
  /** Inbound messages a peer holds while nobody subscribes to its `source`; beyond it they are dropped and counted in `peer.stats.droppedIn`. @default 65536 */
  maxHeldMessages?: number
  /** UDP port of mDNS (change only to isolate test meshes). @default 5353 */
  mdnsPort?: number
  /** Most nodes discovered over mDNS kept as dial targets; a new one beyond it replaces one that keeps failing, else it is refused (counted in `stats.targetsRefused`). @default 256 */
  maxTargets?: number
  /** A discovered node whose dials failed this many times in a row is forgotten until it is announced again. @default 8 */
  maxDialFailures?: number
  /** Most outbound dials in flight at once. @default 8 */
  maxConcurrentDials?: number
  /** Most outbound dials started per second (a burst of `maxConcurrentDials` is allowed). @default 20 */
  maxDialsPerSecond?: number
  /** Most inbound connections in their handshake at once; one more is refused with `ERR_LIMIT` (counted). @default 64 */
  maxPendingHandshakes?: number
  /**
   * Watch the mesh without joining it: dial every node found as an observer (never a member of
   * theirs, never advertised); this node's members are the nodes watched, and each sends its stats
   * summary as a message every second (see `observeMesh`). @default false
   */
  observer?: boolean
}

/**
 * Defaults of {@link MeshOptions}, merged once by {@link createMesh}.
 *
 * @example
 * ```ts
 * import { DEFAULT_MESH_OPTIONS } from 'rxnet'
 * console.log(DEFAULT_MESH_OPTIONS.failureTimeout) // 1500: a silent peer leaves within 2 s
 * ```
 */
export const DEFAULT_MESH_OPTIONS = {
  seeds: [] as string[],
  discovery: true,
  advertise: true,
  codec: 'raw' as CodecLike<any>,
  heartbeatInterval: 400,
  failureTimeout: 1500,
  handshakeTimeout: 2000,
  connectTimeout: 2000,
  reconnectDelay: 100,
  maxReconnectDelay: 2000,
  maxLength: DEFAULT_MAX_LENGTH,
  highWaterMark: DEFAULT_HIGH_WATER_MARK,
  overflow: DEFAULT_OVERFLOW,
  maxHeldMessages: DEFAULT_MAX_HELD_MESSAGES,
  mdnsPort: 5353,
  maxTargets: 256,
  maxDialFailures: 8,
  maxConcurrentDials: 8,
  maxDialsPerSecond: 20,
  maxPendingHandshakes: 64,
  observer: false,
} as const

/** @internal Every option name {@link createMesh} accepts. */
export const MESH_OPTION_KEYS: readonly string[] = Object.keys({ name: 1, id: 1, interface: 1, secret: 1, tls: 1, ...DEFAULT_MESH_OPTIONS } satisfies Record<keyof MeshOptions, unknown>)

/**
 * Where a mesh listens: `port` and every address it can be reached on.
 *
 * @example
 * ```ts
 * import { createMesh, type MeshAddress } from 'rxnet'
 * const mesh = createMesh({ name: 'my-cluster', interface: '127.0.0.1' })
 * const { port, addresses }: MeshAddress = await mesh.listen(0, '127.0.0.1')
 * for (const a of addresses) console.log(`- ${a}:${port}`)
 * await mesh.close()
 * ```
 */
export interface MeshAddress {
  port: number
  addresses: string[]
}

/**
 * Lifecycle of a mesh as data (a discriminated union on `type`).
 *
 * @example
 * ```ts
 * import { createMesh } from 'rxnet'
 * const mesh = createMesh({ name: 'my-cluster', interface: '127.0.0.1' })
 * mesh.events$.subscribe((e) => {
 *   if (e.type === 'join') console.log('joined', e.peer.id)
 *   if (e.type === 'leave') console.log('left', e.peer.id, e.reason.type === 'failed' ? e.reason.error.code : 'closed')
 * })
 * ```
 */
export type MeshEvent<In = Uint8Array, Out = Uint8Array | string> =
  | { type: 'listening'; address: MeshAddress }
  | { type: 'discovered'; id: string; addresses: string[]; port: number }
  | { type: 'join'; peer: Peer<In, Out> }
  | { type: 'leave'; peer: Peer<In, Out>; reason: LeaveReason }
  | { type: 'refused'; error: RxnetError; remote: string }
  | { type: 'dial-failed'; error: RxnetError; target: string }
  | { type: 'error'; error: RxnetError }
  | { type: 'close' }

/**
 * Live counters of a mesh.
 *
 * @example
 * ```ts
 * import { createMesh } from 'rxnet'
 * const mesh = createMesh({ name: 'my-cluster', interface: '127.0.0.1', secret: 'k' })
 * setInterval(() => console.log(mesh.stats.refusedByCode.ERR_AUTH ?? 0, 'refused with a wrong secret'), 5000).unref()
 * ```
 */
export interface MeshStats {
  /** Inbound TCP connections accepted (before the handshake). */
  accepted: number
  /** Outbound connection attempts. */
  dialed: number
  /** Outbound attempts that failed (refused, timed out, handshake rejected). */
  dialFailures: number
  /** Inbound connections refused: bad handshake, wrong mesh / version / secret, duplicate id, timeout. */
  refused: number
  /** `refused` broken down by error code (`ERR_HANDSHAKE`, `ERR_NAME_MISMATCH`, `ERR_AUTH` ...). */
  refusedByCode: Record<string, number>
  /** Simultaneous dials resolved by the id tie-break (the losing connection was closed). */
  tiebreaks: number
  /** Links that ended with an error (timeouts included). */
  failures: number
  /** Links dropped by failure detection. */
  timeouts: number
  /** Outbound messages discarded by the overflow policy, over every link past and present. */
  readonly dropped: number
  /** Dial targets known now (discovered, seeds, and peers' announced listen ports). */
  readonly targets: number
  /** Discovered nodes not kept because `maxTargets` was reached. */
  targetsRefused: number
  /** Stats summaries exchanged with peers: sent, received, garbage (ignored), dropped (src/mesh/summaries.ts). */
  readonly summaries: SummaryStats
  /** Discovered nodes forgotten: TTL ran out, goodbye, or `maxDialFailures` failed dials in a row. */
  targetsExpired: number
  /** mDNS answers ignored because they came from an address the interface does not reach. */
  readonly ignoredAnswers: number
  /** Outbound dials in flight now (at most `maxConcurrentDials`). */
  readonly dialsInFlight: number
  /** Most outbound dials ever in flight at once. */
  peakDialsInFlight: number
}

/**
 * A zero-config TCP mesh node: see {@link createMesh}.
 *
 * @example
 * ```ts
 * import { createMesh, type Mesh } from 'rxnet'
 * const mesh: Mesh = createMesh('my-cluster')
 * mesh.members$.subscribe((members) => console.log([...members.keys()]))
 * ```
 * @typeParam In - what peers' `source` emits. @typeParam Out - what `send` / `broadcast` take.
 */
export interface Mesh<In = Uint8Array, Out = Uint8Array | string> extends AsyncDisposable {
  /** This node's id. */
  readonly id: string
  /** The mesh name. */
  readonly name: string
  /** Starts listening, advertising, browsing and dialling seeds. Resolves with {@link Mesh.address}. */
  listen(port?: number, address?: string, options?: { signal?: AbortSignal }): Promise<MeshAddress>
  /** Where the mesh listens, or `null` before `listen` resolved. */
  address(): MeshAddress | null
  /** Every connected peer: the current ones first, then each new one. Completes on close. */
  readonly peers$: Observable<Peer<In, Out>>
  /** The current member map now, then again on every join and leave. Completes on close. */
  readonly members$: Observable<ReadonlyMap<string, Peer<In, Out>>>
  /** The current members. */
  readonly members: ReadonlyMap<string, Peer<In, Out>>
  /** Lifecycle events: listening, discovered (on every mDNS answer), join, leave, refused, dial-failed, error, close. */
  readonly events$: Observable<MeshEvent<In, Out>>
  /** Errors worth a human's attention (server, mDNS, refused handshakes, failed handshakes when dialling). Never errors itself. */
  readonly errors$: Observable<RxnetError>
  /** Live counters. */
  readonly stats: MeshStats
  /** Sends `value` to every current member, encoded once. Returns how many peers it was sent to. */
  broadcast(value: Out): number
  /** Closes every link gracefully, stops advertising and browsing, releases every handle. Idempotent. */
  close(): Promise<void>
}

/** @internal {@link MeshOptions} with the defaults merged. */
export type Resolved = Required<Omit<MeshOptions, 'interface' | 'secret' | 'tls' | 'id'>> & Pick<MeshOptions, 'interface' | 'secret' | 'tls'> & { id: string }

/**
 * Cipher suites used with `secret`, in order of preference, every one forward-secret:
 * - TLS 1.3 `TLS_AES_128_GCM_SHA256`, then `TLS_CHACHA20_POLY1305_SHA256` (the PSK is an
 *   external PSK, used only in `psk_dhe_ke` mode: every session also runs an X25519 / ECDHE
 *   exchange; OpenSSL refuses `psk_ke` unless told otherwise, and rxnet never tells it);
 * - TLS 1.2 ECDHE-PSK suites, for nodes of rxnet 0.1 (TLS 1.2 only).
 * Plain-PSK suites (no ephemeral exchange) are never offered nor accepted. TLS 1.3 suites with
 * SHA-384 are left out: OpenSSL keys an external PSK with SHA-256.
 *
 * @example
 * ```ts
 * import { PSK_CIPHERS } from 'rxnet'
 * console.log(PSK_CIPHERS.split(':')[0]) // 'TLS_AES_128_GCM_SHA256'
 * ```
 */
export const PSK_CIPHERS = 'TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:ECDHE-PSK-CHACHA20-POLY1305:ECDHE-PSK-AES256-CBC-SHA384:ECDHE-PSK-AES128-CBC-SHA256'
/** @internal The TLS settings of a `secret` mesh, the same on both ends: TLS 1.3 preferred, 1.2 for 0.1 nodes. */
export const PSK_TLS = { ciphers: PSK_CIPHERS, minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3' } as const
/** @internal PSK identity both sides use. */
export const PSK_IDENTITY = 'rxnet-mesh'
/** @internal The TLS pre-shared key of a `secret` mesh: HKDF-SHA256 of the secret, salt `rxnet-mesh-psk`, info the mesh name, 32 bytes. */
export function meshPsk(secret: string, name: string): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, 'rxnet-mesh-psk', name, 32))
}

const INT_OPTIONS = [
  'heartbeatInterval',
  'failureTimeout',
  'handshakeTimeout',
  'connectTimeout',
  'reconnectDelay',
  'maxReconnectDelay',
  'maxLength',
  'highWaterMark',
  'mdnsPort',
  'maxTargets',
  'maxDialFailures',
  'maxConcurrentDials',
  'maxDialsPerSecond',
  'maxPendingHandshakes',
] as const


/** @internal Validates `o` (typed `ERR_INVALID_ARGUMENT`) and merges the defaults. */
export function resolveOptions(o: MeshOptions): Resolved {
  if (o === null || typeof o !== 'object') throw new InvalidArgumentError('createMesh takes a name or an options object')
  if (typeof o.name !== 'string' || o.name.length === 0 || Buffer.byteLength(o.name) > 200) throw new InvalidArgumentError('mesh name must be a non-empty string of at most 200 bytes')
  checkKeys('createMesh', o, MESH_OPTION_KEYS)
  const r = withDefaults(DEFAULT_MESH_OPTIONS, o) as unknown as Resolved
  r.id = o.id ?? randomBytes(6).toString('hex')
  if (typeof r.id !== 'string' || r.id.length === 0 || Buffer.byteLength(r.id) > 48) throw new InvalidArgumentError('id must be a non-empty string of at most 48 bytes')
  for (const k of INT_OPTIONS) checkInt(k, r[k])
  checkInt('maxHeldMessages', r.maxHeldMessages, 0)
  checkOverflow(r.overflow)
  for (const k of ['discovery', 'advertise', 'observer'] as const) if (typeof r[k] !== 'boolean') throw new InvalidArgumentError(`${k} must be true or false, got ${describeValue(r[k])}`)
  if (r.failureTimeout < 2 * r.heartbeatInterval) {
    throw new InvalidArgumentError(`failureTimeout (${r.failureTimeout} ms) must be at least two heartbeat intervals (2 x ${r.heartbeatInterval} ms): one late heartbeat would drop a healthy peer`)
  }
  if (r.interface !== undefined && !(net.isIPv4(r.interface) || r.interface === '::1' || r.interface === 'localhost')) {
    throw new InvalidArgumentError(`interface must be an IPv4 address, '::1' or 'localhost' (mDNS runs over IPv4), got "${r.interface}"`)
  }
  if (!Array.isArray(r.seeds)) throw new InvalidArgumentError('seeds must be an array of "host:port"')
  for (const seed of r.seeds) {
    const { host } = parseSeed(seed)
    if (r.interface !== undefined && isLoopback(r.interface) && !isLoopback(host)) throw new InvalidArgumentError(`seed "${seed}" is not on loopback, but interface "${r.interface}" keeps this mesh on the machine`)
  }
  if (r.secret !== undefined && r.tls !== undefined) throw new InvalidArgumentError('use either secret (TLS-PSK) or tls (certificates), not both')
  if (r.secret !== undefined && (typeof r.secret !== 'string' || r.secret.length === 0)) throw new InvalidArgumentError('secret must be a non-empty string')
  return r
}

/**
 * Parses a seed, `'host:port'` or `'[v6]:port'`; throws `ERR_INVALID_ARGUMENT` on anything else.
 *
 * @example
 * ```ts
 * import { parseSeed } from 'rxnet'
 * parseSeed('[::1]:4000') // { host: '::1', port: 4000 }
 * ```
 */
export function parseSeed(seed: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(seed) ?? /^([^:]+):(\d+)$/.exec(seed)
  const port = m ? Number(m[2]) : NaN
  if (!m || !(port > 0 && port < 65536)) throw new InvalidArgumentError(`seed must be "host:port", got "${seed}"`)
  return { host: m[1]!, port }
}

