/**
 * Links: one direct Unix-socket connection between every pair of cluster processes. Each process
 * listens on its own socket; of every pair, the process with the higher id dials the lower one
 * (so a restarted worker dials the lower ids and is dialled by the higher ones). A one-line JSON
 * handshake (./handshake.ts) carries the cluster token, the protocol version, the far id and pid;
 * the accepting side adopts only the pid the roster gives that id. After it the socket is a
 * {@link socketChannel} and values are framed with the cluster codec. A link that ends while both
 * processes are rostered is redialled (by the dialling side) with exponential backoff.
 * @module
 */
import net from 'node:net'
import { readdirSync, rmSync } from 'node:fs'
import { unlink } from 'node:fs/promises'
import path from 'node:path'
import { Observable, Subject, filter, firstValueFrom, startWith, timeout } from 'rxjs'
import type { SocketChannelOptions } from '../socket.js'
import type { Codec } from '../codec/index.js'
import { createLink } from './link.js'
import { DuplicateIdError, HandshakeError, NotRosteredError, PathTooLongError, RxnetError } from '../errors.js'
import { MAX_SOCKET_PATH } from '../bus/listen.js'
import type { RosterEntry } from './ipc.js'
import { listenAsync } from './serve.js'
import { Backoff } from '../backoff.js'
import { HANDSHAKE_TIMEOUT, helloLine, parseHello, readLine } from './handshake.js'
import type { ClusterStats, Link } from './types.js'

/** First redial delay after a link to a rostered process ended, ms (before jitter); each failed attempt doubles it. */
export const INITIAL_REDIAL_DELAY = 100
/** Longest redial delay, ms; a link that stayed up this long resets the backoff. */
export const MAX_REDIAL_DELAY = 5_000

/** Path of the link socket of process `id` running as `pid` in `dir`. */
export function linkSocketPath(dir: string, id: number, pid: number): string {
  return process.platform === 'win32' ? `\\\\?\\pipe\\${path.basename(dir)}-${id}-${pid}` : path.join(dir, `${id}-${pid}.sock`)
}

/** Removes the link socket files in `dir` whose process is gone (a crashed process cannot remove its own). */
export function removeStaleLinkSockets(dir: string): void {
  if (process.platform === 'win32') return
  let names: string[]
  try {
    names = readdirSync(dir)
  } catch {
    return
  }
  for (const name of names) {
    const m = /^\d+-(\d+)\.sock$/.exec(name)
    if (m !== null && !alive(Number(m[1]))) rmSync(path.join(dir, name), { force: true })
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM' // exists, another user's
  }
}

/** Options of {@link LinkManager}. */
export interface LinkManagerOptions {
  id: number
  path: string
  token: string
  /** Highest id in the cluster (the number of workers). */
  maxId: number
  codec: Codec<unknown>
  channel: SocketChannelOptions
  /** How long closing a link may wait for the far side to close its end before the link is aborted, in ms. */
  closeTimeout: number
  /**
   * The roster given is complete (the primary's: it forked every pid): a handshake from an (id, pid)
   * it does not list is refused at once. Otherwise (a worker, whose roster arrives over IPC and may
   * lag a fresh worker's dial) such a handshake waits for the roster until the handshake deadline.
   */
  authoritative?: boolean
}

/** Owns this process's link server, dials the peers it should, and keeps the live links by far id. */
export class LinkManager {
  private server: net.Server | null = null
  private readonly live = new Map<number, Link>()
  private readonly dialing = new Set<string>()
  /** The roster entry of each id, per the latest roster: a dial to any other pid that completes late is stale. */
  private readonly rostered = new Map<number, RosterEntry[]>()
  private readonly rosterChanged = new Subject<void>()
  private readonly pending = new Set<net.Socket>()
  private readonly added = new Subject<Link>()
  /** Redial backoff per far id (the shared Backoff, jitter included), and the timer of the next attempt. */
  private readonly backoffs = new Map<number, Backoff>()
  private readonly redials = new Map<number, NodeJS.Timeout>()
  private closing = false
  /** Refused handshakes and failed dials. */
  readonly errors = new Subject<RxnetError>()
  /** Live counters. */
  readonly stats: ClusterStats = { linksRefused: 0, redials: 0 }

  /** Every live link now, then each new one; completes when the manager closes. */
  readonly links$: Observable<Link> = new Observable<Link>((subscriber) => {
    for (const link of this.live.values()) subscriber.next(link)
    return this.added.subscribe(subscriber)
  })

  constructor(private readonly opts: LinkManagerOptions) {}

  /** Path of this process's link socket. */
  get path(): string {
    return this.opts.path
  }

  /** Starts the link server (exclusive: never shared through node:cluster). */
  async listen(): Promise<string> {
    const { path } = this.opts
    if (process.platform !== 'win32' && Buffer.byteLength(path) > MAX_SOCKET_PATH) throw new PathTooLongError(path, MAX_SOCKET_PATH)
    const server = net.createServer(this.onConnection)
    this.server = server
    await listenAsync(server, { path, exclusive: true })
    server.on('error', this.onServerError)
    return path
  }

  /** Takes the roster (every process's id, pid and link path); dials every peer this process should dial and is not linked to yet. */
  roster(peers: readonly RosterEntry[]): void {
    if (this.closing) return
    this.rostered.clear()
    for (const peer of peers) this.rostered.set(peer.id, [...(this.rostered.get(peer.id) ?? []), peer])
    this.rosterChanged.next()
    for (const peer of peers) {
      if (peer.id >= this.opts.id) continue
      const current = this.live.get(peer.id)
      if (current !== undefined && current.pid === peer.pid) continue
      this.startDial(peer)
    }
  }

  /** Closes every link gracefully and stops the link server. */
  async close(): Promise<void> {
    if (this.closing) return
    this.closing = true
    for (const t of this.redials.values()) clearTimeout(t)
    this.redials.clear()
    this.rosterChanged.complete()
    for (const s of this.pending) s.destroy()
    const server = this.server
    const closed = server ? new Promise<void>((r) => server.close(() => r())) : Promise.resolve()
    const links = [...this.live.values()]
    this.live.clear()
    // A far process that never closes its end (frozen, SIGSTOPped) must not hold this one's shutdown.
    await Promise.all(links.map((l) => l.close({ timeout: this.opts.closeTimeout })))
    await closed
    server?.off('error', this.onServerError)
    if (process.platform !== 'win32') await unlink(this.opts.path).catch(() => {})
    this.added.complete()
    this.errors.complete()
  }

  private entry(id: number, pid: number): RosterEntry | undefined {
    return this.rostered.get(id)?.find((e) => e.pid === pid)
  }

  private readonly onServerError = (e: Error): void => {
    this.errors.next(e instanceof RxnetError ? e : new HandshakeError(`link server: ${e.message}`, e))
  }

  private startDial(peer: RosterEntry): void {
    const key = `${peer.id}:${peer.pid}`
    if (this.dialing.has(key)) return
    this.dialing.add(key)
    void this.dial(peer).finally(() => this.dialing.delete(key))
  }

  private async dial(peer: RosterEntry): Promise<void> {
    const socket = net.connect(peer.path)
    this.pending.add(socket)
    try {
      await new Promise<void>((resolve, reject) => {
        const onError = (e: Error): void => reject(e)
        socket.once('error', onError)
        socket.once('connect', () => {
          socket.off('error', onError)
          resolve()
        })
      })
      socket.write(helloLine(this.opts.token, this.opts.id))
      const reply = parseHello(await readLine(socket), this.opts.token)
      if (reply.id !== peer.id) throw new HandshakeError(`dialled link ${peer.id} but process ${reply.id} answered`)
      this.pending.delete(socket)
      if (this.entry(peer.id, peer.pid) === undefined) {
        // Replaced (or gone) while we dialled: adopting it would close the link to its successor.
        socket.destroy()
        return
      }
      this.adopt(socket, reply.id, reply.pid)
    } catch (e) {
      this.pending.delete(socket)
      socket.destroy()
      if (this.closing) return
      // Not listening (yet, or any more: it is exiting, and the next roster says so) is retried quietly.
      const code = (e as NodeJS.ErrnoException).code
      if (code !== 'ECONNREFUSED' && code !== 'ENOENT') this.errors.next(asRxnetError(e, `link to ${peer.id}`))
      this.scheduleRedial(peer.id, peer.pid)
    }
  }

  /** Dials `id` again after a backoff, if it is still rostered as `pid`, not linked and not being dialled. */
  private scheduleRedial(id: number, pid: number): void {
    if (this.closing || id >= this.opts.id || this.redials.has(id) || this.entry(id, pid) === undefined) return
    let backoff = this.backoffs.get(id)
    if (backoff === undefined) this.backoffs.set(id, (backoff = new Backoff({ initialDelay: INITIAL_REDIAL_DELAY, maxDelay: MAX_REDIAL_DELAY })))
    const delay = backoff.next()
    const timer = setTimeout(() => {
      this.redials.delete(id)
      const peer = this.entry(id, pid)
      if (this.closing || peer === undefined || this.live.has(id)) return
      this.stats.redials++
      this.startDial(peer)
    }, delay)
    timer.unref()
    this.redials.set(id, timer)
  }

  private readonly onConnection = (socket: net.Socket): void => {
    if (this.closing) {
      socket.destroy()
      return
    }
    const deadline = Date.now() + HANDSHAKE_TIMEOUT
    this.pending.add(socket)
    socket.on('error', noop) // errors before adoption are reported through readLine
    readLine(socket)
      .then(async (line) => {
        const hello = parseHello(line, this.opts.token)
        if (hello.id > this.opts.maxId) throw new HandshakeError(`link handshake from id ${hello.id}, this cluster has ids 0..${this.opts.maxId}`)
        if (hello.id === this.opts.id) throw new DuplicateIdError(String(hello.id))
        await this.whenRostered(hello.id, hello.pid, deadline - Date.now())
        if (socket.destroyed) throw new HandshakeError(`link from ${hello.id} closed during the handshake`)
        socket.write(helloLine(this.opts.token, this.opts.id))
        this.pending.delete(socket)
        socket.off('error', noop)
        this.adopt(socket, hello.id, hello.pid)
      })
      .catch((e: unknown) => {
        this.pending.delete(socket)
        socket.destroy()
        if (this.closing) return
        this.stats.linksRefused++
        this.errors.next(asRxnetError(e, 'incoming link'))
      })
  }

  /** Resolves once the roster gives `id` the pid `pid` (at once, or within `ms` on a worker); rejects with ERR_NOT_ROSTERED otherwise. */
  private async whenRostered(id: number, pid: number, ms: number): Promise<void> {
    const listed = (): boolean => this.entry(id, pid) !== undefined
    if (listed()) return
    if (this.opts.authoritative || ms <= 0) throw new NotRosteredError(id, pid)
    const ok = await firstValueFrom(
      this.rosterChanged.pipe(
        startWith(undefined),
        filter(listed),
        timeout({ first: ms, with: () => [false] }),
      ),
      { defaultValue: false },
    )
    if (ok === false) throw new NotRosteredError(id, pid)
  }

  /** Turns a handshaken socket into a Link; replaces (and closes) an older link to the same id; redials it when it ends. */
  private adopt(socket: net.Socket, id: number, pid: number): void {
    if (this.closing) {
      socket.destroy()
      return
    }
    const link = createLink(socket, id, pid, this.opts.codec, this.opts.channel)
    const old = this.live.get(id)
    this.live.set(id, link)
    if (old !== undefined) void old.close()
    const since = Date.now()
    void link.closed.then(() => {
      if (this.live.get(id) !== link) return // replaced, or the manager closed
      this.live.delete(id)
      if (Date.now() - since >= MAX_REDIAL_DELAY) this.backoffs.get(id)?.reset()
      this.scheduleRedial(id, pid)
    })
    this.added.next(link)
  }
}

function asRxnetError(e: unknown, what: string): RxnetError {
  if (e instanceof RxnetError) return e
  const err = e as Error
  return new HandshakeError(`${what}: ${err?.message ?? String(e)}`, e)
}

function noop(): void {}
