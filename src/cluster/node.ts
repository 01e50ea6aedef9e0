/**
 * `cluster(options)`: the same script runs in the primary and in every worker; this file gives each
 * process its {@link ClusterNode}: identity, links, serving, graceful shutdown and reload.
 * @module
 */
import nodeCluster from 'node:cluster'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createServer as createNetServer } from 'node:net'
import type net from 'node:net'
import { EMPTY, map, merge, type Observable } from 'rxjs'
import { resolveCodec } from '../codec/index.js'
import { checkInt, checkKeys, checkOverflow, withDefaults } from '../options.js'
import { AbortError, ClosedError, InvalidArgumentError, type RxnetError } from '../errors.js'
import { TAG, controlMessages, ipcMessages, type Control } from './ipc.js'
import { LinkManager, linkSocketPath, removeStaleLinkSockets } from './links.js'
import { ServedServer, listenAsync, serveKey } from './serve.js'
import { listenRoundRobin, roundRobinAvailable, type RoundRobinHandle } from './balancer.js'
import { ENV, Supervisor } from './supervisor.js'
import { deadline } from '../wait.js'
import { reportClusterMetrics } from '../metrics/cluster.js'
import { serveClusterView, type ClusterViewServer } from '../metrics/cluster-socket.js'
import {
  CLUSTER_OPTION_KEYS,
  DEFAULT_CLUSTER_OPTIONS,
  DEFAULT_DISTRIBUTION,
  DEFAULT_PRIMARY_SERVES,
  DEFAULT_RESTART_OPTIONS,
  type ClusterNode,
  type ClusterOptions,
  type ClusterStats,
  type IpcMessage,
  type Link,
  type RestartOptions,
  type ServeInfo,
  type ServeOptions,
  type ClusterEvent,
  type WorkerEvent,
  type WorkerStatus,
} from './types.js'

let current: ClusterNodeImpl | null = null

/**
 * Starts (in the primary) or joins (in a worker) a cluster. The same script runs in every process;
 * a second call in one process returns the same node.
 *
 * @example
 * ```ts
 * import http from 'node:http'
 * import { cluster } from 'rxnet'
 *
 * const node = cluster({ workers: 4, restart: true })
 * await node.serve(http.createServer((req, res) => res.end(`pid ${process.pid}\n`)), { port: 8080, host: '127.0.0.1' })
 * node.links$.subscribe((link) => {
 *   link.source.subscribe((msg) => console.log(`${node.id} got`, msg, 'from', link.id))
 *   link.send({ hello: node.id })
 * })
 * ```
 */
export function cluster(options: ClusterOptions = {}): ClusterNode {
  current ??= new ClusterNodeImpl(options)
  return current
}

class ClusterNodeImpl implements ClusterNode {
  readonly isPrimary: boolean
  readonly id: number
  readonly size: number
  readonly links$: Observable<Link>
  readonly events$: Observable<ClusterEvent>
  readonly workers$: Observable<WorkerEvent>
  readonly ipc$: Observable<IpcMessage>
  readonly errors$: Observable<RxnetError>
  readonly stats: ClusterStats

  private readonly links: LinkManager
  private readonly supervisor: Supervisor | null = null
  private readonly served = new Map<string, ServedServer>()
  /** serve() calls so far per host|port (see serve()). */
  private readonly serveCalls = new Map<string, number>()
  /** Worker: stand-in handles of the servers fed by the primary's round-robin, by key. */
  private readonly rr = new Map<string, RoundRobinHandle>()
  private readonly dir: string
  private readonly ownsDir: boolean
  private readonly shutdownTimeout: number
  private readonly readyTimeout: number
  private readonly ready: Promise<void>
  private closing: Promise<void> | null = null
  private readonly teardown: (() => void)[] = []
  /** Primary with metricsSocket: the cluster view server once it listens. */
  private viewServer: Promise<ClusterViewServer | undefined> = Promise.resolve(undefined)

  constructor(options: ClusterOptions) {
    checkKeys('cluster()', options, CLUSTER_OPTION_KEYS)
    const o: ClusterOptions & Required<Pick<ClusterOptions, keyof typeof DEFAULT_CLUSTER_OPTIONS>> = withDefaults(DEFAULT_CLUSTER_OPTIONS, options)
    this.isPrimary = nodeCluster.isPrimary
    // Every option is checked before anything is created (a bad one throws ERR_INVALID_ARGUMENT, nothing forked).
    this.shutdownTimeout = positive('shutdownTimeout', o.shutdownTimeout)
    this.readyTimeout = positive('readyTimeout', o.readyTimeout)
    const codec = resolveCodec(o.codec)
    const overflow = checkOverflow(o.overflow, 'cluster(): overflow')
    const channel = { highWaterMark: positive('highWaterMark', o.highWaterMark), overflow, maxLength: positive('maxLength', o.maxLength) }
    const restart = restartOptions(o.restart)

    let token: string
    if (this.isPrimary) {
      this.id = 0
      this.size = positive('workers', o.workers ?? os.availableParallelism())
      token = randomBytes(16).toString('hex')
      if (o.socketDir !== undefined) {
        mkdirSync(o.socketDir, { recursive: true, mode: 0o700 })
        removeStaleLinkSockets(o.socketDir) // left by processes of an earlier cluster that were killed
        this.dir = o.socketDir
        this.ownsDir = false
      } else {
        this.dir = mkdtempSync(path.join(os.tmpdir(), 'rxnet-'))
        this.ownsDir = true
      }
    } else {
      this.id = Number(process.env[ENV.id])
      if (!Number.isSafeInteger(this.id) || this.id < 1) throw new InvalidArgumentError(`cluster(): this worker was not forked by rxnet (${ENV.id} is not set)`)
      this.size = Number(process.env[ENV.size])
      this.dir = process.env[ENV.dir]!
      token = process.env[ENV.token]!
      this.ownsDir = false
    }

    const linkPath = linkSocketPath(this.dir, this.id, process.pid)
    // Link close gets at most 2 s of its own: the primary kills a worker shutdownTimeout + 2 s after asking it to stop.
    const closeTimeout = Math.min(this.shutdownTimeout, 2_000)
    // The primary forked every worker: its roster is complete, an unknown (id, pid) is refused at once.
    this.links = new LinkManager({ id: this.id, path: linkPath, token, maxId: this.size, codec, channel, closeTimeout, authoritative: this.isPrimary })
    this.stats = this.links.stats
    this.links$ = this.links.links$
    this.errors$ = this.links.errors.asObservable()

    if (this.isPrimary) {
      this.supervisor = new Supervisor({
        workers: this.size,
        restart,
        dir: this.dir,
        token,
        shutdownTimeout: this.shutdownTimeout,
        readyTimeout: this.readyTimeout,
        args: o.args,
        self: { id: 0, pid: process.pid, path: linkPath },
        onProcs: (procs) => this.links.roster(procs),
      })
      this.workers$ = this.supervisor.events.asObservable()
      this.ipc$ = this.supervisor.user.asObservable()
      this.ready = this.links.listen().then(() => this.supervisor!.start())
    } else {
      this.workers$ = EMPTY
      this.ipc$ = ipcMessages(process as never, 0, this.id)
      const roster = controlMessages(process as never, 'roster').subscribe(([m]) => this.links.roster(m.peers))
      const shutdown = controlMessages(process as never, 'shutdown').subscribe(() => this.exitGracefully())
      const conns = controlMessages(process as never, 'conn').subscribe(([m, client]) => this.onConnection(m.key, m.seq, client))
      this.teardown.push(() => roster.unsubscribe(), () => shutdown.unsubscribe(), () => conns.unsubscribe())
      this.ready = this.links.listen().then(() => this.toPrimary({ [TAG]: 'links', id: this.id, pid: process.pid, path: linkPath }))
    }
    this.events$ = merge(this.workers$, this.errors$.pipe(map((error): ClusterEvent => ({ type: 'error', error }))))
    if (this.isPrimary && this.ownsDir) {
      // Even when the primary dies of an uncaught error, its socket directory goes (SIGKILL aside).
      const removeDir = (): void => rmSync(this.dir, { recursive: true, force: true })
      process.on('exit', removeDir)
      this.teardown.push(() => process.off('exit', removeDir))
    }
    // A failure to start links is reported, not thrown out of a constructor.
    this.ready.catch((e: RxnetError) => this.links.errors.next(e))
    if (o.metricsSocket === true) this.startMetricsSocket()
    if (o.handleSignals) this.installSignals()
  }

  /** metricsSocket: the primary serves the view, each worker reports its snapshots; a failure is reported on errors$. */
  private startMetricsSocket(): void {
    if (!this.isPrimary) {
      const report = reportClusterMetrics(this)
      this.teardown.push(() => report.unsubscribe())
      return
    }
    this.viewServer = serveClusterView(this).catch((e: RxnetError) => {
      this.links.errors.next(e)
      return undefined
    })
  }

  ipcSend(to: number, data: unknown): boolean {
    // (process.send(undefined) would throw an untyped ERR_MISSING_ARGS.)
    if (data === undefined) throw new InvalidArgumentError('ipcSend(): data must not be undefined')
    if (this.isPrimary) return this.supervisor!.send(to, data)
    if (!process.connected || process.send === undefined) return false
    if (to === 0) return process.send(data as object)
    return process.send({ [TAG]: 'user', to, from: this.id, data } satisfies Control)
  }

  async serve(server: net.Server, options: ServeOptions): Promise<ServeInfo> {
    if (this.closing) throw new ClosedError('cluster node')
    const { port, host, backlog, signal } = options
    checkInt('serve(): port', port, 0, 65535)
    const distribution = options.distribution ?? DEFAULT_DISTRIBUTION
    if (distribution !== 'round-robin' && distribution !== 'shared') throw new InvalidArgumentError(`serve(): distribution must be 'round-robin' or 'shared', got ${distribution}`)
    if (signal?.aborted) throw new AbortError(signal.reason)
    // The n-th serve() of one host|port in this process matches the n-th in every other process (the
    // same script runs everywhere): two servers on port 0 get two ports, each fed to its own server.
    const base = serveKey(port, host)
    const nth = this.serveCalls.get(base) ?? 0
    this.serveCalls.set(base, nth + 1)
    const key = nth === 0 ? base : `${base}#${nth}`
    await this.ready // a cluster whose links could not start (e.g. ERR_PATH_TOO_LONG) fails here, loudly
    const primaryServes = options.primaryServes ?? DEFAULT_PRIMARY_SERVES
    // Round-robin relies on Node internals (see balancer.ts): without them, 'shared' is used instead.
    const roundRobin = distribution === 'round-robin' && roundRobinAvailable()
    const listenOptions = { port, host, backlog, exclusive: true }
    const info = (address: net.AddressInfo | string | null, serving: boolean): ServeInfo => ({
      port: typeof address === 'object' && address !== null ? address.port : port,
      host,
      serving,
    })

    if (this.isPrimary) {
      if (!primaryServes && !roundRobin) return info(await this.supervisor!.firstServing(key, signal), false)
      // Round-robin without the primary serving: an acceptor of its own holds the port and deals every connection out.
      const listening = primaryServes ? server : createNetServer()
      await listenAsync(listening, listenOptions, signal)
      const balanced = roundRobin && roundRobinAvailable(listening)
      if (!primaryServes && !balanced) {
        // The listening handle lacks what round-robin needs: the workers listen through node:cluster instead.
        await new Promise<void>((resolve) => listening.close(() => resolve()))
        this.supervisor!.provide(key, null, false, false)
        return info(await this.supervisor!.firstServing(key, signal), false)
      }
      this.track(key, listening)
      this.supervisor!.provide(key, listening, balanced, primaryServes)
      return info(listening.address(), primaryServes)
    }

    if (primaryServes || roundRobin) {
      // Ask the primary: round-robin -> where it listens; shared -> its listening socket itself (or none: listen through node:cluster).
      const [reply, handle] = await this.askPrimary(key, roundRobin ? 'round-robin' : 'shared', signal)
      if (reply[TAG] === 'rr') this.rr.set(key, await listenRoundRobin(server, reply.sockname, backlog, () => this.rr.delete(key)))
      else await listenAsync(server, handle ?? { port, host, backlog }, signal)
    } else {
      // Shared through node:cluster (the primary holds the socket but does not accept).
      await listenAsync(server, { port, host, backlog }, signal)
    }
    this.track(key, server)
    this.toPrimary({ [TAG]: 'serving', key, address: server.address() })
    return info(server.address(), true)
  }

  /** Worker: asks the primary to serve `key` and waits for its answer (it comes once the primary serves it too). */
  private askPrimary(key: string, distribution: 'round-robin' | 'shared', signal?: AbortSignal): Promise<[Control, unknown]> {
    return deadline<[Control, unknown]>(
      ({ resolve }) => {
        const onReply = ([m, h]: [Control & { key: string }, unknown]): void => {
          if (m.key === key) resolve([m, h])
        }
        const subs = [controlMessages(process as never, 'handle').subscribe(onReply), controlMessages(process as never, 'rr').subscribe(onReply)]
        this.toPrimary({ [TAG]: 'serve', key, distribution })
        return () => subs.forEach((s) => s.unsubscribe())
      },
      { signal, timeout: this.readyTimeout, what: `serve(): the primary to serve ${key} (it must call serve() with the same port and host)` },
    )
  }

  reload(options: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.isPrimary) return this.supervisor!.reload(options.signal)
    this.toPrimary({ [TAG]: 'reload' })
    return Promise.resolve()
  }

  status(): WorkerStatus[] {
    return this.supervisor?.status() ?? []
  }

  close(options: { signal?: AbortSignal } = {}): Promise<void> {
    if (options.signal?.aborted) return Promise.reject(new AbortError(options.signal.reason))
    this.closing ??= this.doClose()
    return this.closing
  }

  /** Worker: a connection dealt by the primary's round-robin; refused (the primary deals it again) once that server closed. */
  private onConnection(key: string, seq: number, client: unknown): void {
    const handle = this.rr.get(key)
    const accepted = handle?.onconnection != null
    if (accepted) handle!.onconnection!.call(handle, 0, client)
    else (client as { close(): void }).close() // our copy; the primary still holds its own
    this.toPrimary({ [TAG]: 'conn-ack', key, seq, accepted })
  }

  /** Worker: a control message to the primary (dropped if the IPC channel is gone: we are exiting then). */
  private toPrimary(message: Control): void {
    if (process.connected && process.send !== undefined) process.send(message, undefined, {}, noop)
  }

  private track(key: string, server: net.Server): void {
    this.served.set(key, new ServedServer(server))
  }

  private async doClose(): Promise<void> {
    const drains = [...this.served.values()].map((s) => s.drain(this.shutdownTimeout))
    if (this.supervisor) await Promise.all([...drains, this.supervisor.shutdown()])
    else await Promise.all(drains)
    await this.ready.catch(() => {})
    await this.links.close()
    await (await this.viewServer)?.close()
    for (const t of this.teardown.splice(0)) t()
    if (this.isPrimary && this.ownsDir) rmSync(this.dir, { recursive: true, force: true })
  }

  /** Worker: drain, close links, then leave (the primary asked, or a signal came). */
  private exitGracefully(): void {
    this.close().finally(() => {
      process.disconnect?.()
      process.exit(0)
    })
  }

  private installSignals(): void {
    let signalled = 0
    const onTerm = (): void => {
      if (++signalled > 1) process.exit(1) // a second signal: stop waiting
      if (this.isPrimary) this.close().finally(() => process.exit(0))
      else this.exitGracefully()
    }
    const onHup = (): void => {
      if (this.isPrimary) this.reload().catch((e: RxnetError) => this.links.errors.next(e))
    }
    process.on('SIGTERM', onTerm)
    process.on('SIGINT', onTerm)
    process.on('SIGHUP', onHup)
    this.teardown.push(() => {
      process.off('SIGTERM', onTerm)
      process.off('SIGINT', onTerm)
      process.off('SIGHUP', onHup)
    })
  }
}

function noop(): void {}

function positive(name: string, v: number): number {
  return checkInt(`cluster(): ${name}`, v)
}

/** `restart` merged with its defaults and checked (null: no restarts). */
function restartOptions(restart: ClusterOptions['restart']): Required<RestartOptions> | null {
  if (restart === false) return null
  if (restart !== true && (typeof restart !== 'object' || restart === null)) throw new InvalidArgumentError(`cluster(): restart must be true, false or RestartOptions, got ${String(restart)}`)
  if (restart !== true) checkKeys('cluster(): restart', restart, Object.keys(DEFAULT_RESTART_OPTIONS))
  const r = withDefaults(DEFAULT_RESTART_OPTIONS, restart === true ? {} : restart)
  for (const [name, min] of [['initialDelay', 0], ['maxDelay', 0], ['maxRestarts', 0], ['window', 1]] as const) checkInt(`cluster(): restart.${name}`, r[name], min)
  return r
}
