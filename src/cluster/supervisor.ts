/**
 * The primary's supervisor: forks one worker per slot (ids 1..n), restarts dead ones with
 * exponential backoff, gives a slot up on a crash loop, replaces workers one at a time on a
 * rolling restart, hands the primary's listening sockets to workers, and keeps the roster of link
 * servers that every process dials from.
 * @module
 */
import nodeCluster, { type Worker } from 'node:cluster'
import type net from 'node:net'
import { Subject } from 'rxjs'
import { AbortError, ClosedError, CrashLoopError } from '../errors.js'
import { Balancer } from './balancer.js'
import { backoffDelay } from '../backoff.js'
import { deadline, waitFor } from '../wait.js'
import { rmSync } from 'node:fs'
import { TAG, isControl, type Control, type RosterEntry } from './ipc.js'
import { linkSocketPath } from './links.js'
import type { RestartOptions, WorkerEvent, WorkerStatus } from './types.js'

/** Environment variables a worker reads its identity from. */
export const ENV = { id: 'RXNET_CLUSTER_ID', dir: 'RXNET_CLUSTER_DIR', token: 'RXNET_CLUSTER_TOKEN', size: 'RXNET_CLUSTER_SIZE' } as const

interface Proc {
  id: number
  worker: Worker
  pid: number
  /** Keys it serves, with the address it reported. */
  served: Map<string, net.AddressInfo | string | null>
  /** Exit requested by us (drain, shutdown): not a crash. */
  expected: boolean
  exited: Promise<void>
  /** Its link server, once announced (non-null: linked up). */
  entry: RosterEntry | null
}

interface Slot {
  id: number
  current: Proc | null
  state: WorkerStatus['state']
  exits: number[]
  restarts: number
  timer: NodeJS.Timeout | null
}

/** Options of {@link Supervisor}. */
export interface SupervisorOptions {
  workers: number
  restart: Required<RestartOptions> | null
  dir: string
  token: string
  shutdownTimeout: number
  readyTimeout: number
  args: string[] | undefined
  self: RosterEntry
  /** Called with every live process (id, pid, link path) after each fork and exit: the primary's link roster. */
  onProcs?: (procs: RosterEntry[]) => void
}

/** Primary-side supervision of the worker slots. */
export class Supervisor {
  readonly events = new Subject<WorkerEvent>()
  /** User IPC from workers, as (from, data). */
  readonly user = new Subject<{ from: number; data: unknown }>()
  private readonly slots = new Map<number, Slot>()
  private readonly procs = new Set<Proc>()
  private readonly roster = new Map<number, RosterEntry>()
  /** What the primary serves each key with; null: nothing, the workers listen through node:cluster. */
  private readonly servers = new Map<string, { promise: Promise<net.Server | null>; resolve: (s: net.Server | null) => void }>()
  private readonly balancers = new Map<string, Balancer>()
  /** A process linked up or serves one more key (what a rolling restart waits for). */
  private readonly progress = new Subject<Proc>()
  private reloading: Promise<void> | null = null
  private stopping = false

  constructor(private readonly opts: SupervisorOptions) {
    this.roster.set(0, opts.self)
    if (opts.args !== undefined) nodeCluster.setupPrimary({ args: opts.args })
  }

  /** Forks every slot. */
  start(): void {
    for (let id = 1; id <= this.opts.workers; id++) {
      const slot: Slot = { id, current: null, state: 'starting', exits: [], restarts: 0, timer: null }
      this.slots.set(id, slot)
      slot.current = this.fork(id)
    }
  }

  /**
   * The primary listens on `server` under `key`. Round-robin: its connections are dealt to the
   * workers serving `key` (and to `server` itself when `selfServes`); shared: workers asking for
   * `key` get its listening socket.
   */
  provide(key: string, server: net.Server | null, roundRobin: boolean, selfServes: boolean): void {
    if (roundRobin && server !== null) this.balancers.set(key, new Balancer(key, server, selfServes))
    this.entry(key).resolve(server)
  }

  /**
   * Resolves with the address of the first worker that serves `key`: one that already does (a
   * worker listening through node:cluster may beat the primary's own `serve()` call), or the next
   * one. Rejects on shutdown (`ERR_CLOSED`) or abort.
   */
  firstServing(key: string, signal?: AbortSignal): Promise<net.AddressInfo | string | null> {
    for (const slot of this.slots.values()) {
      if (slot.current?.served.has(key)) return Promise.resolve(slot.current.served.get(key)!)
    }
    return deadline<net.AddressInfo | string | null>(
      ({ resolve, reject }) => {
        if (this.stopping) return reject(new ClosedError('cluster'))
        const sub = this.events.subscribe({
          next: (e) => {
            if (e.type === 'listening' && this.keyOf(e.id, key)) resolve(e.address)
          },
          complete: () => reject(new ClosedError('cluster')),
        })
        return () => sub.unsubscribe()
      },
      { signal },
    )
  }

  status(): WorkerStatus[] {
    return [...this.slots.values()].map((s) => ({ id: s.id, pid: s.current?.pid ?? null, state: s.state, restarts: s.restarts }))
  }

  /** Sends a user message to worker `id` (false if it is not running). */
  send(id: number, data: unknown): boolean {
    const proc = this.slots.get(id)?.current
    if (proc === null || proc === undefined || !proc.worker.isConnected()) return false
    return proc.worker.send(data as object)
  }

  /** Rolling restart; concurrent calls share one run. */
  reload(signal?: AbortSignal): Promise<void> {
    if (this.stopping) return Promise.reject(new ClosedError('cluster'))
    this.reloading ??= this.doReload(signal).finally(() => (this.reloading = null))
    return this.reloading
  }

  /** Drains every worker (no more restarts) and resolves once all have exited. */
  async shutdown(): Promise<void> {
    this.stopping = true
    for (const slot of this.slots.values()) {
      if (slot.timer !== null) clearTimeout(slot.timer)
      slot.timer = null
    }
    await Promise.all([...this.procs].map((p) => this.stop(p)))
    for (const b of this.balancers.values()) b.close()
    this.balancers.clear()
    this.events.complete()
    this.user.complete()
    this.progress.complete()
  }

  private keyOf(id: number, key: string): boolean {
    const p = this.slots.get(id)?.current
    return p != null && p.served.has(key)
  }

  private entry(key: string): { promise: Promise<net.Server | null>; resolve: (s: net.Server | null) => void } {
    let e = this.servers.get(key)
    if (e === undefined) {
      let resolve!: (s: net.Server | null) => void
      const promise = new Promise<net.Server | null>((r) => (resolve = r))
      e = { promise, resolve }
      this.servers.set(key, e)
    }
    return e
  }

  /** Forks a worker for slot `id`; a `candidate` (rolling restart) does not become the slot's current worker yet. */
  private fork(id: number, candidate = false): Proc {
    const slot = this.slots.get(id)!
    const worker = nodeCluster.fork({
      [ENV.id]: String(id),
      [ENV.dir]: this.opts.dir,
      [ENV.token]: this.opts.token,
      [ENV.size]: String(this.opts.workers),
    })
    let onExited!: () => void
    const proc: Proc = { id, worker, pid: worker.process.pid ?? -1, served: new Map(), expected: false, exited: new Promise((r) => (onExited = r)), entry: null }
    this.procs.add(proc)
    this.procsChanged()
    if (!candidate) slot.state = 'starting'

    const onOnline = (): void => {
      if (slot.current === proc) slot.state = 'online'
      this.events.next({ type: 'online', id, pid: proc.pid })
    }
    const onMessage = (m: unknown): void => this.onMessage(proc, m)
    const onError = (): void => {} // IPC send errors after the worker died: its exit event follows
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
      worker.off('online', onOnline)
      worker.off('message', onMessage)
      worker.off('exit', onExit)
      worker.off('error', onError)
      this.procs.delete(proc)
      // A worker that crashed could not remove its link socket file: without this they pile up.
      if (process.platform !== 'win32') rmSync(linkSocketPath(this.opts.dir, id, proc.pid), { force: true })
      this.procsChanged()
      for (const b of this.balancers.values()) b.remove(proc, true)
      this.events.next({ type: 'exit', id, pid: proc.pid, code, signal, expected: proc.expected })
      if (this.roster.get(id)?.pid === proc.pid) {
        this.roster.delete(id)
        this.broadcastRoster()
      }
      onExited()
      if (slot.current === proc) {
        slot.current = null
        slot.state = 'dead'
        if (!proc.expected && !this.stopping) this.scheduleRestart(slot)
      }
    }
    worker.on('online', onOnline)
    worker.on('message', onMessage)
    worker.on('exit', onExit)
    worker.on('error', onError)
    return proc
  }

  private onMessage(proc: Proc, m: unknown): void {
    if (!isControl(m)) {
      this.user.next({ from: proc.id, data: m })
      return
    }
    const c = m as Control
    switch (c[TAG]) {
      case 'links': {
        proc.entry = { id: c.id, pid: c.pid, path: c.path }
        // Only a slot's current worker is in the roster: a reload candidate joins when it is promoted.
        if (this.slots.get(proc.id)?.current === proc) this.publish(proc)
        this.progress.next(proc)
        break
      }
      case 'serve': {
        void this.entry(c.key).promise.then((server) => {
          if (!proc.worker.isConnected()) return
          if (server === null) return void proc.worker.send({ [TAG]: 'handle', key: c.key } satisfies Control) // no handle: listen through node:cluster
          if (!server.listening) return
          // (A worker asking for round-robin where the primary serves 'shared' gets the socket itself.)
          if (c.distribution === 'shared' || !this.balancers.has(c.key)) proc.worker.send({ [TAG]: 'handle', key: c.key } satisfies Control, server as never)
          else proc.worker.send({ [TAG]: 'rr', key: c.key, sockname: server.address() as net.AddressInfo | null } satisfies Control)
        })
        break
      }
      case 'conn-ack':
        this.balancers.get(c.key)?.ack(c.seq, c.accepted)
        break
      case 'serving': {
        proc.served.set(c.key, c.address)
        // A reload candidate gets connections as soon as it serves (its predecessor drains next).
        if (!proc.expected) this.balancers.get(c.key)?.add(proc)
        const slot = this.slots.get(proc.id)
        if (slot?.current === proc) slot.state = 'listening'
        this.events.next({ type: 'listening', id: proc.id, pid: proc.pid, address: c.address })
        this.progress.next(proc)
        break
      }
      case 'reload':
        this.reload().catch(() => {})
        break
      case 'user': {
        if (c.to === 0) this.user.next({ from: proc.id, data: c.data })
        else {
          const target = this.slots.get(c.to)?.current
          if (target?.worker.isConnected()) target.worker.send(c)
        }
        break
      }
      default:
        break
    }
  }

  private procsChanged(): void {
    const path = (id: number, pid: number): string => linkSocketPath(this.opts.dir, id, pid)
    this.opts.onProcs?.([this.opts.self, ...[...this.procs].map((p) => ({ id: p.id, pid: p.pid, path: path(p.id, p.pid) }))])
  }

  private rosterMessage(): Control {
    return { [TAG]: 'roster', peers: [...this.roster.values()] }
  }

  /** Puts `proc`'s link server in the roster and tells every current worker. */
  private publish(proc: Proc): void {
    if (proc.entry === null) return
    this.roster.set(proc.id, proc.entry)
    this.broadcastRoster()
  }

  private broadcastRoster(): void {
    const msg = this.rosterMessage()
    for (const slot of this.slots.values()) {
      const p = slot.current
      if (p !== null && p.entry !== null && p.worker.isConnected()) p.worker.send(msg)
    }
  }

  private scheduleRestart(slot: Slot): void {
    const r = this.opts.restart
    if (r === null) return
    const now = Date.now()
    slot.exits = slot.exits.filter((t) => now - t < r.window)
    slot.exits.push(now)
    if (slot.exits.length > r.maxRestarts) {
      slot.state = 'gave-up'
      this.events.next({ type: 'gave-up', id: slot.id, error: new CrashLoopError(slot.id, slot.exits.length, r.window) })
      return
    }
    const attempt = slot.exits.length
    const delay = backoffDelay(attempt - 1, { initialDelay: r.initialDelay, maxDelay: r.maxDelay, jitter: 0 })
    slot.state = 'restarting'
    this.events.next({ type: 'restarting', id: slot.id, delay, attempt })
    slot.timer = setTimeout(() => {
      slot.timer = null
      if (this.stopping || slot.current !== null) return
      slot.restarts++
      slot.current = this.fork(slot.id)
    }, delay)
  }

  /** Asks `proc` to drain and exit; kills it if it is still alive after the shutdown timeout. */
  private async stop(proc: Proc): Promise<void> {
    proc.expected = true
    for (const b of this.balancers.values()) b.remove(proc) // no new connections; those in flight are acked
    const slot = this.slots.get(proc.id)
    if (slot?.current === proc) slot.state = 'draining'
    // Before it announced its links the worker may not listen for 'shutdown' yet: a signal always lands.
    if (proc.entry !== null && proc.worker.isConnected()) proc.worker.send({ [TAG]: 'shutdown' } satisfies Control, undefined, () => {})
    else proc.worker.process.kill('SIGTERM')
    await waitFor(proc.exited, { timeout: this.opts.shutdownTimeout + 2_000 }).catch(() => {
      proc.worker.process.kill('SIGKILL') // still alive after the shutdown timeout
      return proc.exited
    })
  }

  private async doReload(signal?: AbortSignal): Promise<void> {
    for (const slot of this.slots.values()) {
      if (signal?.aborted) throw new AbortError(signal.reason)
      if (this.stopping) throw new ClosedError('cluster')
      const old = slot.current
      if (old === null) continue
      const next = this.fork(slot.id, true)
      try {
        await this.whenReady(next, old.served.keys(), signal)
      } catch (e) {
        // The successor did not come up: the predecessor keeps the slot, the successor is stopped.
        void this.stop(next)
        throw e
      }
      if (slot.current !== old) {
        if (slot.current === null && slot.timer !== null) {
          // The predecessor crashed meanwhile: the ready successor replaces the scheduled restart.
          clearTimeout(slot.timer)
          slot.timer = null
        } else {
          void this.stop(next) // the slot has moved on (restarted already, or given up)
          continue
        }
      }
      slot.current = next
      slot.state = next.served.size > 0 ? 'listening' : 'online'
      this.publish(next)
      await this.stop(old)
    }
  }

  /** Resolves when `proc` has linked up and serves every key in `keys`; rejects if it exits first, on timeout or abort. */
  private whenReady(proc: Proc, keys: Iterable<string>, signal?: AbortSignal): Promise<void> {
    const wanted = [...keys]
    return deadline<void>(
      ({ resolve, reject }) => {
        const check = (): void => {
          if (proc.entry !== null && wanted.every((k) => proc.served.has(k))) resolve()
        }
        const subs = [
          this.progress.subscribe((p) => p === proc && check()),
          this.events.subscribe((e) => {
            if (e.type === 'exit' && e.pid === proc.pid) reject(new ClosedError(`worker ${proc.id} (pid ${proc.pid}, exited with code ${e.code}, signal ${e.signal} before serving)`))
          }),
        ]
        check()
        return () => subs.forEach((s) => s.unsubscribe())
      },
      { signal, timeout: this.opts.readyTimeout, what: `worker ${proc.id} to serve during reload` },
    )
  }
}
