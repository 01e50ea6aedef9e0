/**
 * Round-robin distribution of connections (the default): the primary owns the listening socket and
 * hands each accepted connection to the next process in turn — itself included when it serves —
 * over cluster IPC, like node:cluster's round-robin scheduler. A shared accept queue (`'shared'`)
 * lets the kernel pick instead, which on Linux routinely gives one process most connections.
 *
 * Node internals used, the same ones node:cluster's round-robin relies on: a listening server's
 * `_handle.onconnection`, and in the worker a stand-in handle installed with `server._listen2`.
 * {@link roundRobinAvailable} checks for them; where they are missing `serve()` falls back to
 * `'shared'` (or, without the primary serving, to node:cluster's own listen) instead of failing.
 * @module
 */
import net from 'node:net'
import type { Worker } from 'node:cluster'
import { TAG, type Control } from './ipc.js'

/** The raw libuv handle of an accepted connection (what `onconnection` receives). */
interface ClientHandle {
  close(cb?: () => void): void
}

/** The listening handle of a server, as far as the balancer touches it. */
interface ListenHandle {
  onconnection: (err: number, client?: ClientHandle) => void
}

/** A worker that receives connections for one key. */
export interface Target {
  readonly worker: Worker
}

/**
 * Whether this Node has the internals round-robin uses: `_listen2` on `net.Server` (worker side)
 * and, given a listening `server`, a `_handle` with an `onconnection` callback (primary side).
 */
export function roundRobinAvailable(server?: net.Server, proto: object = net.Server.prototype): boolean {
  if (typeof (proto as { _listen2?: unknown })._listen2 !== 'function') return false
  if (server === undefined) return true
  const handle = (server as unknown as { _handle?: { onconnection?: unknown } | null })._handle
  return handle != null && typeof handle.onconnection === 'function'
}

/** Most connections held while no process can take them (beyond: closed). */
const MAX_WAITING = 1024

/** Primary side: distributes the connections of one listening server. */
export class Balancer {
  private readonly targets: Target[] = []
  private turn = 0
  private seq = 0
  private readonly pending = new Map<number, { handle: ClientHandle; target: Target }>()
  private readonly waiting: ClientHandle[] = []
  private readonly accept: ListenHandle['onconnection']
  private readonly handle: ListenHandle

  /**
   * @param server - a listening server; its own connections (primary serving) go through its listener.
   * @param selfServes - whether the primary takes its turn.
   */
  constructor(
    readonly key: string,
    server: net.Server,
    private readonly selfServes: boolean,
  ) {
    this.handle = (server as unknown as { _handle: ListenHandle })._handle
    this.accept = this.handle.onconnection
    this.handle.onconnection = (err, client) => this.distribute(err, client)
  }

  /** Puts a worker in the rotation (it serves this key now). */
  add(target: Target): void {
    if (!this.targets.includes(target)) this.targets.push(target)
    while (this.waiting.length > 0) this.distribute(0, this.waiting.shift())
  }

  /** Takes a worker out of the rotation (draining or gone); connections in flight to it are acked or closed. */
  remove(target: Target, gone = false): void {
    const i = this.targets.indexOf(target)
    if (i >= 0) this.targets.splice(i, 1)
    if (!gone) return
    for (const [seq, p] of this.pending) {
      if (p.target !== target) continue
      this.pending.delete(seq)
      p.handle.close() // the worker died holding it: its client sees a reset
    }
  }

  /** Stops dealing: connections still waiting for a process, or in flight unanswered, are closed. */
  close(): void {
    this.handle.onconnection = this.accept
    for (const h of this.waiting.splice(0)) h.close()
    for (const p of this.pending.values()) p.handle.close()
    this.pending.clear()
    this.targets.length = 0
  }

  /** The worker's answer to a handed connection. */
  ack(seq: number, accepted: boolean): void {
    const p = this.pending.get(seq)
    if (p === undefined) return
    this.pending.delete(seq)
    if (accepted) p.handle.close() // the worker has its own copy now
    else this.distribute(0, p.handle, p.target)
  }

  private distribute(err: number, client: ClientHandle | undefined, exclude?: Target): void {
    if (err !== 0 || client === undefined) {
      this.accept.call(this.handle, err, client)
      return
    }
    const candidates = this.targets.filter((t) => t !== exclude && t.worker.isConnected())
    const n = candidates.length + (this.selfServes ? 1 : 0)
    if (n === 0) {
      if (this.waiting.length < MAX_WAITING) this.waiting.push(client)
      else client.close()
      return
    }
    const pick = this.turn++ % n
    if (pick === candidates.length) {
      this.accept.call(this.handle, 0, client) // the primary's turn: its server takes it as usual
      return
    }
    const target = candidates[pick]!
    const seq = ++this.seq
    this.pending.set(seq, { handle: client, target })
    target.worker.send({ [TAG]: 'conn', key: this.key, seq } satisfies Control, client as never, (e: Error | null) => {
      if (e !== null && this.pending.get(seq)?.target === target) {
        this.pending.delete(seq)
        this.distribute(0, client, target)
      }
    })
  }
}

/** Worker side: a stand-in listening handle fed by the primary's round-robin. */
export interface RoundRobinHandle {
  onconnection: ((err: number, client: unknown) => void) | null
  listen(): number
  close(cb?: () => void): void
  ref(): void
  unref(): void
  getsockname(out: Record<string, unknown>): number
}

/**
 * Makes `server` listen on a stand-in handle: it is `listening`, `address()` reports `sockname`,
 * and connections arrive when the primary hands them over. `onClose` runs when the server closes.
 * Resolves once `server` emitted 'listening' (its 'error' and 'listening' listeners removed).
 */
export function listenRoundRobin(server: net.Server, sockname: net.AddressInfo | null, backlog: number | undefined, onClose: () => void): Promise<RoundRobinHandle> {
  let keepAlive: NodeJS.Timeout | null = null
  const handle: RoundRobinHandle = {
    onconnection: null,
    listen: () => 0,
    close(cb) {
      handle.unref()
      handle.onconnection = null
      onClose()
      if (cb) process.nextTick(cb)
    },
    // Like a real listening handle, it keeps the process alive unless unref'd.
    ref() {
      keepAlive ??= setInterval(() => {}, 2 ** 31 - 1)
    },
    unref() {
      if (keepAlive !== null) clearInterval(keepAlive)
      keepAlive = null
    },
    getsockname(out) {
      if (sockname !== null) Object.assign(out, sockname)
      return 0
    },
  }
  return new Promise<RoundRobinHandle>((resolve, reject) => {
    const onError = (e: Error): void => {
      server.off('listening', onListening)
      reject(e)
    }
    const onListening = (): void => {
      server.off('error', onError)
      resolve(handle)
    }
    server.once('error', onError)
    server.once('listening', onListening)
    handle.ref()
    const s = server as unknown as { _handle: unknown; _listen2(a: null, p: number, t: number, backlog?: number): void }
    s._handle = handle
    s._listen2(null, -1, -1, backlog)
  })
}
