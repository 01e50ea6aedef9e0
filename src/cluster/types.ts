/**
 * Public types, options and defaults of {@link cluster}.
 * @module
 */
import type { Observable } from 'rxjs'
import type { AddressInfo } from 'node:net'
import type { Connection } from '../connection.js'
import type { CodecLike } from '../codec/index.js'
import type { CrashLoopError, RxnetError } from '../errors.js'
import type { OverflowPolicy } from '../queue.js'

/**
 * When and how fast a dead worker is restarted.
 * @example
 * ```ts
 * cluster({ workers: 4, restart: { initialDelay: 200, maxRestarts: 10, window: 120_000 } })
 * ```
 */
export interface RestartOptions {
  /** First restart delay; each further restart of the same slot doubles it. @default 100 */
  initialDelay?: number
  /** Largest restart delay. @default 10_000 */
  maxDelay?: number
  /** Exits of one slot within `window` ms that make it a crash loop (the slot is given up). @default 5 */
  maxRestarts?: number
  /** Length of the crash-loop window, in ms. @default 60_000 */
  window?: number
}

/**
 * Defaults of {@link RestartOptions}.
 * @example
 * ```ts
 * cluster({ restart: { ...DEFAULT_RESTART_OPTIONS, maxDelay: 60_000 } })
 * ```
 */
export const DEFAULT_RESTART_OPTIONS: Required<RestartOptions> = {
  initialDelay: 100,
  maxDelay: 10_000,
  maxRestarts: 5,
  window: 60_000,
}

/**
 * Options of {@link cluster}.
 * @example
 * ```ts
 * const node = cluster({ workers: 2, codec: 'msgpack', overflow: 'drop-oldest', shutdownTimeout: 5_000 })
 * ```
 */
export interface ClusterOptions {
  /** Number of worker processes (ids 1..workers). @default os.availableParallelism() */
  workers?: number
  /** Restart dead workers (`true` uses {@link DEFAULT_RESTART_OPTIONS}); `false` leaves them dead. @default true */
  restart?: boolean | RestartOptions
  /** Codec of the values carried by links. @default 'json' */
  codec?: CodecLike
  /** Send-buffer budget of each link, in bytes. @default 8 MiB */
  highWaterMark?: number
  /** What a link does with a value that does not fit its send buffer. @default 'error' */
  overflow?: OverflowPolicy
  /** Largest value a link accepts, in encoded bytes. @default 4 MiB */
  maxLength?: number
  /** How long a graceful shutdown lets in-flight connections finish, in ms. @default 10_000 */
  shutdownTimeout?: number
  /** How long a rolling restart waits for a new worker to serve before giving up on it, in ms. @default 30_000 */
  readyTimeout?: number
  /** Directory of the link sockets (created 0700, removed on close). @default a fresh dir under os.tmpdir() */
  socketDir?: string
  /** Handle SIGTERM/SIGINT (graceful shutdown then exit) and SIGHUP (rolling restart, primary). @default true */
  handleSignals?: boolean
  /** Arguments for the workers' script (node:cluster `setupPrimary({ args })`). @default process.argv.slice(2) */
  args?: string[]
  /**
   * The primary serves the cluster view (its snapshots and every worker's, which then report theirs
   * over IPC every second) on a 0600 Unix socket in this user's private directory, for
   * `rxnet dashboard --cluster` and `watchCluster()`; removed on close. Off by default: it adds a
   * socket file and a report per worker per second that most clusters never read. @default false
   */
  metricsSocket?: boolean
}

/** Every option name {@link cluster} knows (anything else is refused with `ERR_INVALID_ARGUMENT`). */
export const CLUSTER_OPTION_KEYS: readonly (keyof ClusterOptions)[] = [
  'workers', 'restart', 'codec', 'highWaterMark', 'overflow', 'maxLength', 'shutdownTimeout', 'readyTimeout', 'socketDir', 'handleSignals', 'args', 'metricsSocket',
]

/**
 * Defaults of {@link ClusterOptions} that are plain values.
 * @example
 * ```ts
 * cluster({ shutdownTimeout: DEFAULT_CLUSTER_OPTIONS.shutdownTimeout * 3 })
 * ```
 */
export const DEFAULT_CLUSTER_OPTIONS = {
  restart: true,
  codec: 'json',
  highWaterMark: 8 * 1024 * 1024,
  overflow: 'error' as OverflowPolicy,
  maxLength: 4 * 1024 * 1024,
  shutdownTimeout: 10_000,
  readyTimeout: 30_000,
  handleSignals: true,
  metricsSocket: false,
} as const

/**
 * Options of {@link ClusterNode.serve}.
 * @example
 * ```ts
 * await node.serve(server, { port: 8080, host: '127.0.0.1', primaryServes: false })
 * ```
 */
export interface ServeOptions {
  /** TCP port every process accepts on (0: one random port, shared by all). */
  port: number
  /** Address to listen on. @default all addresses (as `net.Server.listen`) */
  host?: string
  /** The primary accepts connections too (multi-node's `masterListen`). @default true */
  primaryServes?: boolean
  /**
   * How connections reach the processes. `'round-robin'`: the primary accepts and hands each
   * connection to the next process in turn (itself included when `primaryServes`), balanced like
   * node:cluster's default. `'shared'`: every process accepts on the shared socket directly (no hop
   * through the primary, but the kernel may give one process most connections).
   * @default 'round-robin'
   */
  distribution?: 'round-robin' | 'shared'
  /** Listen backlog. @default node's default */
  backlog?: number
  /** Cancels waiting for the listening socket. */
  signal?: AbortSignal
}

/**
 * Default of {@link ServeOptions.distribution}.
 * @example
 * ```ts
 * await node.serve(server, { port: 8080, distribution: DEFAULT_DISTRIBUTION })
 * ```
 */
export const DEFAULT_DISTRIBUTION = 'round-robin' as const

/**
 * Default of {@link ServeOptions.primaryServes}: the primary accepts connections too.
 * @example
 * ```ts
 * await node.serve(server, { port: 8080, primaryServes: DEFAULT_PRIMARY_SERVES })
 * ```
 */
export const DEFAULT_PRIMARY_SERVES = true

/**
 * A process's direct link to another process of the cluster: a {@link Connection} of decoded values
 * (see the Connection contract: `send` never throws, `source` errors typed when the link fails and
 * completes only on a clean close, inbound values are held while nobody subscribes).
 * @example
 * ```ts
 * node.links$.subscribe(async (link) => {
 *   for (let i = 0; i < 1e6; i++) {
 *     link.send({ i })
 *     if (!link.writable) await link.whenWritable() // bounded: wait instead of overflowing
 *   }
 *   await link.close({ timeout: 2_000 })
 * })
 * ```
 */
export interface Link<T = unknown> extends Connection<T, T> {
  /** Cluster id of the far process (0 = primary). */
  readonly id: number
  /** pid of the far process. */
  readonly pid: number
}

/**
 * Counters of one cluster process's links, live.
 * @example
 * ```ts
 * setInterval(() => console.log(`${node.stats.redials} redials, ${node.stats.linksRefused} refused`), 10_000).unref()
 * ```
 */
export interface ClusterStats {
  /** Incoming link handshakes refused: garbage, wrong token or version, an id the roster does not give that pid (`ERR_NOT_ROSTERED`). */
  linksRefused: number
  /** Links dialled again after a link to a process still in the roster ended or a dial to it failed. */
  redials: number
}

/**
 * A worker lifecycle event, emitted by {@link ClusterNode.workers$} in the primary.
 * @example
 * ```ts
 * node.workers$.subscribe((e) => {
 *   if (e.type === 'gave-up') console.error(e.error.code, e.error.message) // ERR_CRASH_LOOP
 *   if (e.type === 'restarting') console.warn(`worker ${e.id} restarts in ${e.delay} ms`)
 * })
 * ```
 */
export type WorkerEvent =
  | { type: 'online'; id: number; pid: number }
  | { type: 'listening'; id: number; pid: number; address: AddressInfo | string | null }
  | { type: 'exit'; id: number; pid: number; code: number | null; signal: NodeJS.Signals | null; expected: boolean }
  | { type: 'restarting'; id: number; delay: number; attempt: number }
  | { type: 'gave-up'; id: number; error: CrashLoopError }

/**
 * Everything that happens to a {@link ClusterNode}, as {@link ClusterNode.events$} emits it: the
 * worker lifecycle ({@link WorkerEvent}, primary only) and `{ type: 'error' }` for a non-fatal
 * link problem (a refused link handshake, a failed dial). `workers$` and `errors$` are filtered
 * views of it.
 * @example
 * ```ts
 * node.events$.subscribe((e) => {
 *   if (e.type === 'error') console.warn('link problem:', e.error.code)
 *   else if (e.type === 'gave-up') console.error(e.error.code) // ERR_CRASH_LOOP
 * })
 * ```
 */
export type ClusterEvent = WorkerEvent | { type: 'error'; error: RxnetError }

/**
 * State of one worker slot, as {@link ClusterNode.status} reports it.
 * @example
 * ```ts
 * console.table(node.status())
 * ```
 */
export interface WorkerStatus {
  id: number
  pid: number | null
  state: 'starting' | 'online' | 'listening' | 'draining' | 'restarting' | 'dead' | 'gave-up'
  restarts: number
}

/**
 * A message received over cluster IPC (`process.send` / `worker.send`).
 * @example
 * ```ts
 * node.ipc$.subscribe(({ from, data }) => console.log(`from ${from}:`, data))
 * ```
 */
export interface IpcMessage {
  /** Cluster id of the sender (0 = primary). */
  from: number
  data: unknown
}

/**
 * Where a served server accepts connections in this process.
 * @example
 * ```ts
 * const { port, serving } = await node.serve(server, { port: 0, host: '127.0.0.1' })
 * ```
 */
export interface ServeInfo {
  /** The port all processes share. */
  port: number
  host: string | undefined
  /** Whether this process accepts connections on it. */
  serving: boolean
}

/**
 * One process of a cluster, as returned by {@link cluster}.
 * @example
 * ```ts
 * const node = cluster({ workers: 2 })
 * if (node.isPrimary) process.on('SIGUSR2', () => void node.reload())
 * ```
 */
export interface ClusterNode {
  /** True in the primary (the process that was started). */
  readonly isPrimary: boolean
  /** 0 in the primary, 1..n in workers; a restarted worker keeps its predecessor's id. */
  readonly id: number
  /** Number of worker slots. */
  readonly size: number
  /** Every link to another process: the live ones first, then new ones as they open. */
  readonly links$: Observable<Link>
  /** Everything that happens to this node from now on, one union: the worker lifecycle (primary) and link errors (the common name for every long-lived object's lifecycle stream). */
  readonly events$: Observable<ClusterEvent>
  /** Primary: worker lifecycle events from now on (`events$` without the errors). Workers: completes at once. */
  readonly workers$: Observable<WorkerEvent>
  /** Messages received over cluster IPC (internal rxnet messages are filtered out). */
  readonly ipc$: Observable<IpcMessage>
  /** Non-fatal problems: refused link handshakes, failed dials (the `error` events of `events$`). */
  readonly errors$: Observable<RxnetError>
  /** Link counters of this process. */
  readonly stats: ClusterStats
  /**
   * Sends a value over cluster IPC: a worker can send to 0 (the primary) or to another worker id
   * (relayed by the primary), the primary to any worker id. False when the target is not running;
   * `undefined` data throws `ERR_INVALID_ARGUMENT`.
   */
  ipcSend(to: number, data: unknown): boolean
  /** Accepts connections for `server` on one port shared by every process. */
  serve(server: import('node:net').Server, options: ServeOptions): Promise<ServeInfo>
  /** Rolling restart: replaces workers one at a time, each only after its successor serves. */
  reload(options?: { signal?: AbortSignal }): Promise<void>
  /** Primary: the worker slots now. */
  status(): WorkerStatus[]
  /** Graceful shutdown of this process (primary: of the whole cluster). Does not exit the process. */
  close(options?: { signal?: AbortSignal }): Promise<void>
}
