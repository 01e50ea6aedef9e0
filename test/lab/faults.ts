/**
 * In-process fault injection (`tc netem` is not available on our machines): a seeded fault model
 * (loss, duplication, reordering, delay) usable as an RxJS operator or inside a UDP forwarder, and
 * a TCP proxy that can delay, pause (freeze) and cut connections. Everything binds to the address
 * you give it (default 127.0.0.1), so it works on loopback and inside lab hosts alike.
 *
 * @example
 * ```ts
 * const fwd = await createUdpForwarder({ target: { address: '127.0.0.1', port: 5000 }, loss: 0.2, seed: 7 })
 * // send to fwd.port instead of 5000: one datagram in five vanishes, the same ones every run
 * await fwd.close()
 * ```
 */
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram'
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { Observable, type MonoTypeOperatorFunction } from 'rxjs'

/** Default seed of the fault model's random generator. */
export const DEFAULT_FAULT_SEED = 1
/** Default time a reordered item is held back at most waiting for a successor to overtake it, in ms. */
export const DEFAULT_REORDER_WINDOW_MS = 20
/** Default idle time after which a UDP forwarder forgets a client and closes its upstream socket, in ms. */
export const DEFAULT_UDP_IDLE_MS = 30_000
/** Default bytes a TCP proxy buffers per direction before it stops reading (backpressure). */
export const DEFAULT_PROXY_BUFFER = 1 << 20

/** What goes wrong, per item. Probabilities are in [0, 1]. */
export interface FaultOptions {
  /** Probability that an item is dropped. @default 0 */
  loss?: number
  /** Probability that an item is delivered twice. @default 0 */
  duplicate?: number
  /** Probability that an item is held back and delivered after the next one. @default 0 */
  reorder?: number
  /** Delay per item in ms: fixed, or uniform in [min, max] (which also reorders). @default 0 */
  delayMs?: number | [number, number]
  /** Seed of the random generator: same seed and input order, same faults. @default 1 */
  seed?: number
  /** Longest time a held-back item waits for a successor before it is delivered anyway. @default 20 */
  reorderWindowMs?: number
}

/** Counters of a fault gate. */
export interface FaultStats {
  received: number
  delivered: number
  dropped: number
  duplicated: number
  reordered: number
}

/** mulberry32: a tiny seeded PRNG returning floats in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function checkProbability(name: string, v: number | undefined): void {
  if (v !== undefined && !(v >= 0 && v <= 1)) throw new RangeError(`${name} must be in [0, 1], got ${v}`)
}

/** Applies a {@link FaultOptions} model to items pushed in; calls `deliver` for what survives. */
export class FaultGate<T> {
  readonly stats: FaultStats = { received: 0, delivered: 0, dropped: 0, duplicated: 0, reordered: 0 }
  private opts: Required<Omit<FaultOptions, 'seed'>>
  private rng: () => number
  private held: { item: T; timer: NodeJS.Timeout } | undefined
  private timers = new Set<NodeJS.Timeout>()
  private closed = false

  constructor(
    opts: FaultOptions,
    private readonly deliver: (item: T) => void,
  ) {
    this.rng = seededRandom(opts.seed ?? DEFAULT_FAULT_SEED)
    this.opts = this.merge(opts)
  }

  private merge(o: FaultOptions): Required<Omit<FaultOptions, 'seed'>> {
    checkProbability('loss', o.loss)
    checkProbability('duplicate', o.duplicate)
    checkProbability('reorder', o.reorder)
    return {
      loss: o.loss ?? 0,
      duplicate: o.duplicate ?? 0,
      reorder: o.reorder ?? 0,
      delayMs: o.delayMs ?? 0,
      reorderWindowMs: o.reorderWindowMs ?? DEFAULT_REORDER_WINDOW_MS,
    }
  }

  /** Changes the model from now on (the random sequence continues). */
  set(opts: FaultOptions): void {
    this.opts = this.merge(opts)
  }

  /** Number of items still waiting (delayed or held back). */
  get pending(): number {
    return this.timers.size + (this.held ? 1 : 0)
  }

  push(item: T): void {
    if (this.closed) return
    this.stats.received++
    const { loss, duplicate, reorder } = this.opts
    if (loss > 0 && this.rng() < loss) {
      this.stats.dropped++
      return
    }
    const copies = duplicate > 0 && this.rng() < duplicate ? 2 : 1
    if (copies === 2) this.stats.duplicated++
    for (let i = 0; i < copies; i++) {
      if (reorder > 0 && !this.held && this.rng() < reorder) {
        this.stats.reordered++
        const timer = setTimeout(() => this.releaseHeld(), this.opts.reorderWindowMs)
        this.held = { item, timer }
        continue
      }
      this.schedule(item)
      this.releaseHeld()
    }
  }

  private releaseHeld(): void {
    if (!this.held) return
    const { item, timer } = this.held
    clearTimeout(timer)
    this.held = undefined
    this.schedule(item)
  }

  private schedule(item: T): void {
    const d = this.opts.delayMs
    const ms = typeof d === 'number' ? d : d[0] + this.rng() * (d[1] - d[0])
    if (ms <= 0) return this.emit(item)
    const timer = setTimeout(() => {
      this.timers.delete(timer)
      this.emit(item)
    }, ms)
    this.timers.add(timer)
  }

  private emit(item: T): void {
    if (this.closed) return
    this.stats.delivered++
    this.deliver(item)
  }

  /** Delivers a held-back item now (delayed ones keep their schedule). */
  flush(): void {
    this.releaseHeld()
  }

  /** Drops everything pending and stops delivering. */
  close(): void {
    this.closed = true
    if (this.held) clearTimeout(this.held.timer)
    this.held = undefined
    for (const t of this.timers) clearTimeout(t)
    this.timers.clear()
  }
}

/**
 * RxJS operator applying the fault model to a stream: use it on a transport's `source` to simulate
 * a lossy, duplicating, reordering or slow network in-process. Completion waits for delayed items.
 * @example
 * ```ts
 * channel.source.pipe(lossy({ loss: 0.1, reorder: 0.05, seed: 42 })).subscribe(...)
 * ```
 */
export function lossy<T>(opts: FaultOptions): MonoTypeOperatorFunction<T> {
  return (source) =>
    new Observable<T>((subscriber) => {
      let completed = false
      const gate: FaultGate<T> = new FaultGate<T>(opts, (v) => {
        subscriber.next(v)
        if (completed && gate.pending === 0) subscriber.complete()
      })
      const sub = source.subscribe({
        next: (v) => gate.push(v),
        error: (err) => subscriber.error(err),
        complete: () => {
          completed = true
          gate.flush()
          if (gate.pending === 0) subscriber.complete()
        },
      })
      return () => {
        sub.unsubscribe()
        gate.close()
      }
    })
}

// ---------------------------------------------------------------- UDP forwarder

/** Options of {@link createUdpForwarder}. */
export interface UdpForwarderOptions extends FaultOptions {
  /** Where datagrams go. */
  target: { address: string; port: number }
  /** Where the forwarder listens. @default { address: '127.0.0.1', port: 0 } */
  listen?: { address?: string; port?: number }
  /** Forget a client (and close its upstream socket) after this much silence, ms. @default 30000 */
  idleMs?: number
}

/** A running UDP forwarder. */
export interface UdpForwarder {
  readonly address: string
  readonly port: number
  /** Client → target direction. */
  readonly upstream: FaultStats
  /** Target → client direction. */
  readonly downstream: FaultStats
  /** Changes the fault model of both directions. */
  setFaults(opts: FaultOptions): void
  close(): Promise<void>
}

/**
 * UDP forwarder (unicast) with seeded faults in both directions: clients send to it, it relays to
 * `target` from one socket per client, and relays replies back, like a NAT.
 * @example
 * ```ts
 * const fwd = await createUdpForwarder({ target: { address: '10.77.3.2', port: 9000 }, listen: { address: '10.77.3.254' }, delayMs: [5, 50] })
 * ```
 */
export async function createUdpForwarder(opts: UdpForwarderOptions): Promise<UdpForwarder> {
  const listen = createSocket('udp4')
  const up = new FaultGate<{ data: Buffer; sock: UdpSocket }>(opts, ({ data, sock }) =>
    sock.send(data, opts.target.port, opts.target.address, () => {}),
  )
  const down = new FaultGate<{ data: Buffer; to: RemoteInfo }>(opts, ({ data, to }) =>
    listen.send(data, to.port, to.address, () => {}),
  )
  const clients = new Map<string, { sock: UdpSocket; idle: NodeJS.Timeout }>()
  const idleMs = opts.idleMs ?? DEFAULT_UDP_IDLE_MS
  const forget = (key: string) => {
    const c = clients.get(key)
    if (!c) return
    clients.delete(key)
    clearTimeout(c.idle)
    c.sock.close()
  }
  const onMessage = (data: Buffer, from: RemoteInfo) => {
    const key = `${from.address}:${from.port}`
    let c = clients.get(key)
    if (!c) {
      const sock = createSocket('udp4')
      sock.on('message', (reply) => down.push({ data: reply, to: from }))
      sock.on('error', () => forget(key))
      c = { sock, idle: setTimeout(() => forget(key), idleMs) }
      clients.set(key, c)
    }
    c.idle.refresh()
    up.push({ data, sock: c.sock })
  }
  listen.on('message', onMessage)
  await new Promise<void>((resolve, reject) => {
    listen.once('error', reject)
    listen.bind(opts.listen?.port ?? 0, opts.listen?.address ?? '127.0.0.1', () => {
      listen.off('error', reject)
      resolve()
    })
  })
  listen.on('error', () => {}) // e.g. ICMP-induced errors; the datagram is lost, the forwarder lives
  const addr = listen.address()
  let closing: Promise<void> | undefined
  return {
    address: addr.address,
    port: addr.port,
    upstream: up.stats,
    downstream: down.stats,
    setFaults(o) {
      up.set(o)
      down.set(o)
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        up.close()
        down.close()
        for (const key of [...clients.keys()]) forget(key)
        listen.off('message', onMessage)
        listen.close(() => resolve())
      })
      return closing
    },
  }
}

// ---------------------------------------------------------------- TCP proxy

/** Options of {@link createTcpProxy}. */
export interface TcpProxyOptions {
  /** Where connections go. */
  target: { host: string; port: number }
  /** Where the proxy listens. @default { host: '127.0.0.1', port: 0 } */
  listen?: { host?: string; port?: number }
  /** Delay added to every chunk in both directions, ms (order is kept). @default 0 */
  delayMs?: number
  /** Bytes buffered per direction before the proxy stops reading. @default 1 MiB */
  bufferBytes?: number
}

/** A running TCP proxy. */
export interface TcpProxy {
  readonly host: string
  readonly port: number
  /** Open proxied connections. */
  readonly connections: number
  readonly stats: { accepted: number; bytesUp: number; bytesDown: number; cut: number }
  setDelay(ms: number): void
  /** Freezes every connection: nothing is forwarded (or read) until resume(); new ones freeze too. */
  pause(): void
  resume(): void
  /** Resets (RST) every open connection, both sides. */
  cut(): void
  /** While true, new connections are reset as soon as they are accepted. */
  refuse(on: boolean): void
  close(): Promise<void>
}

/** One direction of a proxied connection: ordered, delayed, pausable, bounded. */
class Pump {
  private queue: { chunk: Buffer; due: number }[] = []
  private bytes = 0
  private timer: NodeJS.Timeout | undefined
  private ended = false

  constructor(
    private readonly from: Socket,
    private readonly to: Socket,
    private readonly proxy: { delayMs: number; paused: boolean; bufferBytes: number },
    private readonly count: (n: number) => void,
  ) {
    from.on('data', (chunk: Buffer) => {
      this.queue.push({ chunk, due: Date.now() + this.proxy.delayMs })
      this.bytes += chunk.length
      if (this.bytes >= this.proxy.bufferBytes) from.pause()
      this.run()
    })
    from.on('end', () => {
      this.ended = true
      this.run()
    })
    to.on('drain', () => this.run())
  }

  run(): void {
    clearTimeout(this.timer)
    this.timer = undefined
    if (this.proxy.paused || this.to.destroyed) return
    const now = Date.now()
    while (this.queue.length > 0 && this.queue[0].due <= now && !this.to.writableNeedDrain) {
      const { chunk } = this.queue.shift()!
      this.bytes -= chunk.length
      this.count(chunk.length)
      this.to.write(chunk)
    }
    if (this.queue.length > 0) {
      if (!this.to.writableNeedDrain) this.timer = setTimeout(() => this.run(), this.queue[0].due - now)
      return
    }
    if (this.ended) this.to.end()
    else if (this.from.isPaused() && !this.proxy.paused) this.from.resume()
  }

  stop(): void {
    clearTimeout(this.timer)
  }
}

/**
 * TCP proxy that can delay, freeze and cut connections; put it between two lab processes (or
 * between the test and one) to simulate a slow or stuck peer without stopping the process.
 * @example
 * ```ts
 * const proxy = await createTcpProxy({ target: { host: '10.77.3.2', port: 4000 }, listen: { host: '10.77.3.254' } })
 * proxy.pause()  // the peer looks frozen
 * proxy.cut()    // every connection gets a RST
 * await proxy.close()
 * ```
 */
export async function createTcpProxy(opts: TcpProxyOptions): Promise<TcpProxy> {
  const state = { delayMs: opts.delayMs ?? 0, paused: false, bufferBytes: opts.bufferBytes ?? DEFAULT_PROXY_BUFFER }
  const stats = { accepted: 0, bytesUp: 0, bytesDown: 0, cut: 0 }
  const conns = new Set<{ client: Socket; upstream: Socket; pumps: Pump[] }>()
  let refusing = false

  const server: Server = createServer({ allowHalfOpen: true }, (client) => {
    stats.accepted++
    if (refusing) {
      client.resetAndDestroy()
      return
    }
    const upstream = connect({ host: opts.target.host, port: opts.target.port, allowHalfOpen: true })
    const conn = { client, upstream, pumps: [] as Pump[] }
    conn.pumps.push(
      new Pump(client, upstream, state, (n) => (stats.bytesUp += n)),
      new Pump(upstream, client, state, (n) => (stats.bytesDown += n)),
    )
    if (state.paused) {
      client.pause()
      upstream.pause()
    }
    conns.add(conn)
    const teardown = (err?: Error) => {
      if (!conns.delete(conn)) return
      for (const p of conn.pumps) p.stop()
      // An error on one side is passed on as a reset of the other, a clean close as a close.
      for (const s of [client, upstream]) {
        if (s.destroyed) continue
        if (err) s.resetAndDestroy()
        else s.destroy()
      }
    }
    client.on('error', teardown)
    upstream.on('error', teardown)
    // Half-closes pass through (Pump ends the other side); the pair goes once both sides are closed.
    const closedBoth = () => client.destroyed && upstream.destroyed && teardown()
    client.on('close', closedBoth)
    upstream.on('close', closedBoth)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.listen?.port ?? 0, opts.listen?.host ?? '127.0.0.1', () => {
      server.off('error', reject)
      resolve()
    })
  })
  const addr = server.address() as AddressInfo
  let closing: Promise<void> | undefined

  const cut = () => {
    for (const c of [...conns]) {
      stats.cut++
      for (const p of c.pumps) p.stop()
      conns.delete(c)
      if (!c.client.destroyed) c.client.resetAndDestroy()
      if (!c.upstream.destroyed) c.upstream.resetAndDestroy()
    }
  }
  return {
    host: addr.address,
    port: addr.port,
    get connections() {
      return conns.size
    },
    stats,
    setDelay(ms) {
      state.delayMs = ms
    },
    pause() {
      state.paused = true
      for (const c of conns) {
        c.client.pause()
        c.upstream.pause()
      }
    },
    resume() {
      state.paused = false
      for (const c of conns) {
        c.client.resume()
        c.upstream.resume()
        for (const p of c.pumps) p.run()
      }
    },
    cut,
    refuse(on) {
      refusing = on
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve())
        cut()
      })
      return closing
    },
  }
}
