/**
 * The mesh state machine: one listening server, mDNS discovery and seeds feeding a table of dial
 * targets, the handshake on every connection, the tie-break that keeps exactly one link per pair,
 * and reconnects with jittered exponential backoff. Reads top to bottom: listen, accept path,
 * dial path, establish / leave, close. Options and public types are in `options.ts`, one link
 * (heartbeats, failure detection, send budget) in `peer.ts`.
 * @module
 */
import { hkdfSync } from 'node:crypto'
import { lookup } from 'node:dns/promises'
import net from 'node:net'
import os from 'node:os'
import tls from 'node:tls'
import { BehaviorSubject, Observable, Subject } from 'rxjs'
import { type Codec, encodeWith, resolveCodec } from '../codec/index.js'
import {
  AbortError,
  AuthenticationError,
  ClosedError,
  ConnectionError,
  DuplicateIdError,
  ForeignAddressError,
  HandshakeError,
  InvalidArgumentError,
  LimitError,
  NameMismatchError,
  PeerTimeoutError,
  RxnetError,
  TimeoutError,
  VersionMismatchError,
} from '../errors.js'
import { Discovery, isLoopback, isWildcard, reachableThrough } from './discovery.js'
import { readHandshake, whenConnected } from './connection.js'
import { backoffDelay } from '../backoff.js'
import { waitFor } from '../wait.js'
import { CAPABILITIES, encodeHandshake, type HandshakeKind, type HandshakeMessage, PROTOCOL_VERSION, type RefuseReason } from './handshake.js'
import { Observers } from './observer.js'
import { PeerSummaries } from './summaries.js'
import { createLink, type LeaveReason, type MeshPeer, type Peer } from './peer.js'
import { type Mesh, type MeshAddress, type MeshEvent, type MeshOptions, type MeshStats, parseSeed, PSK_CIPHERS, PSK_IDENTITY, type Resolved, resolveOptions } from './options.js'

/** An outbound dial to a known id, in flight: `settled` resolves once it is established or has failed. */
interface PendingDial {
  abort: () => void
  settled: Promise<void>
}

/** A place to dial (mDNS service, seed, or an inbound peer's announced listen port) and its backoff state. */
interface Target {
  key: string
  kind: 'mdns' | 'seed' | 'learned'
  addresses: string[]
  port: number
  id: string | undefined
  /** Dials that failed in a row. */
  attempt: number
  timer: NodeJS.Timeout | undefined
  dialing: boolean
  /** `'mdns'` only: when the announcement runs out (ms since the epoch), and how long one holds. */
  expires: number
  ttl: number
}

/** How often discovered targets are checked for expiry, ms. */
const SWEEP_INTERVAL = 5_000

/**
 * Creates a mesh node named `name` with the default options, as `createMesh({ name })` does.
 *
 * @example
 * ```ts
 * import { createMesh } from 'rxnet'
 * const mesh = createMesh('my-cluster')
 * await mesh.close()
 * ```
 */
export function createMesh(name: string): Mesh
/**
 * Creates a mesh node (nothing happens on the network until {@link Mesh.listen}).
 *
 * @example
 * ```ts
 * import { createMesh } from 'rxnet'
 * const mesh = createMesh({ name: 'my-cluster', interface: '127.0.0.1' })
 * await mesh.listen()
 * mesh.peers$.subscribe((peer) => peer.source.subscribe({ next: (m) => console.log(peer.id, Buffer.from(m).toString()), error: (e) => console.log(peer.id, 'failed', e.code) }))
 * setInterval(() => mesh.broadcast(`hello from ${mesh.id}`), 1000).unref()
 * ```
 */
export function createMesh<In = Uint8Array, Out = Uint8Array | string>(options: MeshOptions): Mesh<In, Out>
export function createMesh<In, Out>(options: string | MeshOptions): Mesh<In, Out> {
  return new MeshImpl<In, Out>(resolveOptions(typeof options === 'string' ? { name: options } : options))
}

class MeshImpl<In, Out> implements Mesh<In, Out> {
  readonly id: string
  readonly name: string
  readonly peers$: Observable<Peer<In, Out>>
  readonly members$: Observable<ReadonlyMap<string, Peer<In, Out>>>
  readonly events$: Observable<MeshEvent<In, Out>>
  readonly errors$: Observable<RxnetError>
  readonly stats: MeshStats

  private readonly codec: Codec<unknown>
  private readonly peers = new Map<string, MeshPeer<In, Out>>()
  private readonly targets = new Map<string, Target>()
  private readonly pendingOut = new Map<string, PendingDial>()
  private readonly handshaking = new Set<net.Socket>()
  /** Accepted TCP sockets whose handshake (TLS and mesh) has not finished: at most `maxPendingHandshakes`. */
  private readonly pendingIn = new Set<net.Socket>()
  /** Raw sockets refused before TLS: their TLS wrapper's error is not counted twice. */
  private readonly refusedRaw = new WeakSet<net.Socket>()
  /** Targets due for a dial, waiting for a slot (concurrency and rate bounded). */
  private readonly dialQueue = new Set<Target>()
  private dialing = 0
  private dialTokens: number
  private dialTokensAt = Date.now()
  private dialPumpTimer: NodeJS.Timeout | undefined
  private sweepTimer: NodeJS.Timeout | undefined
  private mdnsTargets = 0
  private readonly reachable: (address: string) => boolean
  /** Every accepted TCP socket still open (TLS ones included, before their handshake). */
  private readonly inbound = new Set<net.Socket>()
  private readonly joined = new Subject<Peer<In, Out>>()
  private readonly membersSubject = new BehaviorSubject<ReadonlyMap<string, Peer<In, Out>>>(new Map())
  private readonly eventsSubject = new Subject<MeshEvent<In, Out>>()
  private readonly errorsSubject = new Subject<RxnetError>()
  private server: net.Server | undefined
  private discovery: Discovery | undefined
  private listening: Promise<MeshAddress> | undefined
  private bound: { port: number; host: string } | undefined
  private closing: Promise<void> | undefined
  private droppedPast = 0
  private readonly psk: Buffer | undefined
  /** Connections of observers: welcomed, sent summaries, never members. */
  private readonly observers: Observers
  /** Stats summaries to and from peers (summaries.ts). */
  private readonly summaries: PeerSummaries

  constructor(private readonly o: Resolved) {
    this.id = o.id
    this.name = o.name
    this.codec = resolveCodec(o.codec)
    this.psk = o.secret === undefined ? undefined : Buffer.from(hkdfSync('sha256', o.secret, 'rxnet-mesh-psk', o.name, 32))
    this.reachable = reachableThrough(o.interface)
    this.dialTokens = o.maxConcurrentDials
    const peers = this.peers
    const droppedPast = (): number => this.droppedPast
    const self = this // eslint-disable-line @typescript-eslint/no-this-alias
    this.stats = {
      accepted: 0,
      dialed: 0,
      dialFailures: 0,
      refused: 0,
      refusedByCode: {},
      tiebreaks: 0,
      failures: 0,
      timeouts: 0,
      get dropped() {
        let n = droppedPast()
        for (const p of peers.values()) n += p.stats.dropped
        return n
      },
      get targets() {
        return self.targets.size
      },
      targetsRefused: 0,
      get summaries() {
        return self.summaries.stats
      },
      targetsExpired: 0,
      get ignoredAnswers() {
        return self.discovery?.ignored ?? 0
      },
      get dialsInFlight() {
        return self.dialing
      },
      peakDialsInFlight: 0,
    }
    this.peers$ = new Observable<Peer<In, Out>>((subscriber) => {
      for (const p of this.peers.values()) subscriber.next(p)
      return this.joined.subscribe(subscriber)
    })
    this.members$ = this.membersSubject.asObservable()
    this.events$ = this.eventsSubject.asObservable()
    this.errors$ = this.errorsSubject.asObservable()
    this.summaries = new PeerSummaries(this, o.failureTimeout)
    this.observers = new Observers(this, o, this.summaries)
  }

  get members(): ReadonlyMap<string, Peer<In, Out>> {
    return this.membersSubject.value
  }

  // ---------------------------------------------------------------- listen

  listen(port = 0, address?: string, options: { signal?: AbortSignal } = {}): Promise<MeshAddress> {
    if (this.closing) return Promise.reject(new ClosedError('mesh'))
    if (options.signal?.aborted) return Promise.reject(new AbortError(options.signal.reason))
    if (!Number.isInteger(port) || port < 0 || port > 65535) return Promise.reject(new InvalidArgumentError(`port must be 0..65535, got ${port}`))
    if (this.listening === undefined) {
      const started = this.start(port, address ?? (this.o.interface !== undefined && !isWildcard(this.o.interface) ? this.o.interface : '0.0.0.0'))
      this.listening = started
      // A failed listen (port in use, unknown host) can be retried with other arguments.
      started.catch(() => {
        if (this.listening === started) this.listening = undefined
      })
    }
    const signal = options.signal
    if (signal === undefined) return this.listening
    // An aborted listen closes the mesh (it rejects ERR_ABORTED either way).
    return waitFor(this.listening, { signal }).catch((e: unknown) => {
      if (signal.aborted) void this.close()
      throw e
    })
  }

  private async start(port: number, address: string): Promise<MeshAddress> {
    let host = address
    if (!net.isIP(address)) {
      try {
        host = (await lookup(address)).address
      } catch (e) {
        throw new ConnectionError(`cannot resolve ${address}: ${(e as Error).message}`, e)
      }
    }
    if (this.closing) throw new ClosedError('mesh')
    const server = this.createServer()
    this.server = server
    await new Promise<void>((resolve, reject) => {
      const onError = (e: Error): void => reject(new ConnectionError(`mesh cannot listen on ${host}:${port}: ${e.message}`, e))
      server.once('error', onError)
      server.listen(port, host, () => {
        server.off('error', onError)
        resolve()
      })
    })
    server.on('error', this.onServerError)
    if (this.closing) {
      // close() ran while the server was starting: it could not close what was not listening yet.
      server.close()
      throw new ClosedError('mesh')
    }
    this.bound = { port: (server.address() as net.AddressInfo).port, host }
    if (this.o.discovery) {
      const d = new Discovery({
        name: this.name,
        id: this.id,
        port: this.bound.port,
        interface: this.o.interface,
        listenAddress: isWildcard(host) ? undefined : host,
        mdnsPort: this.o.mdnsPort,
        advertise: this.o.advertise && !this.o.observer,
      })
      this.discovery = d
      d.errors.subscribe((e) => this.report(e))
      d.events.subscribe((ev) => (ev.type === 'up' ? this.onDiscovered(ev.node.id, ev.node.addresses, ev.node.port, ev.node.ttl) : this.onServiceDown(ev.id)))
      this.sweepTimer = setInterval(this.sweep, SWEEP_INTERVAL)
      this.sweepTimer.unref()
    }
    for (const seed of this.o.seeds) {
      const { host: h, port: p } = parseSeed(seed) // validated by createMesh
      const t = this.addTarget(`seed:${seed}`, 'seed', [h], p, undefined)
      this.scheduleDial(t, 0)
    }
    const addr = this.address()!
    this.eventsSubject.next({ type: 'listening', address: addr })
    return addr
  }

  address(): MeshAddress | null {
    if (this.bound === undefined || this.closing) return null
    const { port, host } = this.bound
    if (!isWildcard(host)) return { port, addresses: [host] }
    const v6 = host === '::'
    const addresses: string[] = []
    for (const list of Object.values(os.networkInterfaces())) {
      for (const a of list ?? []) if (a.family === 'IPv4' || v6) addresses.push(a.address)
    }
    return { port, addresses }
  }

  private createServer(): net.Server {
    const timeout = this.o.handshakeTimeout
    if (this.psk !== undefined) {
      const psk = this.psk
      const s = tls.createServer({ ciphers: PSK_CIPHERS, minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', handshakeTimeout: timeout, pskCallback: (_s, identity) => (identity === PSK_IDENTITY ? psk : null) })
      s.on('secureConnection', this.onConnection)
      s.on('tlsClientError', this.onTlsClientError)
      s.prependListener('connection', this.onRawConnection) // before TLS starts on it
      return s
    }
    if (this.o.tls !== undefined) {
      const s = tls.createServer({ ...this.o.tls, requestCert: true, rejectUnauthorized: true, handshakeTimeout: timeout })
      s.on('secureConnection', this.onConnection)
      s.on('tlsClientError', this.onTlsClientError)
      s.prependListener('connection', this.onRawConnection) // before TLS starts on it
      return s
    }
    const s = net.createServer()
    s.on('connection', this.onRawConnection)
    s.on('connection', this.onConnection)
    return s
  }

  private readonly onServerError = (e: Error): void => this.report(new ConnectionError(`mesh server: ${e.message}`, e))

  private readonly onRawConnection = (socket: net.Socket): void => {
    this.stats.accepted++
    if (this.closing) {
      socket.destroy()
      return
    }
    const remote = normalize(socket.remoteAddress)
    const iface = this.o.interface
    let refusal: RxnetError | undefined
    if (iface !== undefined && isLoopback(iface) && !isLoopback(remote)) refusal = new ForeignAddressError(remote, iface)
    else if (this.pendingIn.size >= this.o.maxPendingHandshakes) refusal = new LimitError('mesh handshakes in progress', this.o.maxPendingHandshakes)
    // Every accepted socket, refused ones included, is destroyed by shutdown() if it is still open
    // then: server.close() waits for all of them, and a refused far side may never hang up.
    this.inbound.add(socket)
    socket.once('close', () => {
      this.inbound.delete(socket)
      this.pendingIn.delete(socket)
    })
    if (refusal !== undefined) {
      this.refusedRaw.add(socket)
      this.refuse(socket, refusal, undefined)
      return
    }
    this.pendingIn.add(socket)
  }

  private readonly onTlsClientError = (e: Error & { code?: string }, socket: tls.TLSSocket): void => {
    if (this.refusedRaw.has(rawOf(socket))) return // refused (and counted) before TLS started
    // A client that sends nothing is a timeout, not a failed authentication.
    // (A hang-up stays ERR_AUTH: a client that rejects our certificate, or whose certificate we
    // reject, is often seen here as nothing more than a reset.)
    const error = e.code === 'ERR_TLS_HANDSHAKE_TIMEOUT' ? new TimeoutError('TLS handshake', this.o.handshakeTimeout) : new AuthenticationError(`TLS handshake failed: ${e.message}`, e)
    this.refuse(socket, error, undefined)
  }

  // ---------------------------------------------------------------- accept path

  private readonly onConnection = (socket: net.Socket): void => {
    if (socket.destroyed) return // refused in onRawConnection
    if (this.closing) {
      socket.destroy()
      return
    }
    this.handshaking.add(socket)
    socket.setNoDelay(true)
    readHandshake(socket, this.o.handshakeTimeout, (message, cause) => new HandshakeError(message, cause)).then(
      (m) => this.decide(socket, m),
      (e: RxnetError) => this.refuse(socket, e, e instanceof HandshakeError && socket.writable && !socket.readableEnded ? 'malformed' : undefined),
    )
  }

  private decide(socket: net.Socket, m: HandshakeMessage): void {
    if (this.closing) return this.refuse(socket, new ClosedError('mesh'), 'closing')
    if (m.kind === 'observe') return this.adoptObserver(socket, m)
    if (m.kind !== 'hello') return this.refuse(socket, new HandshakeError(`expected hello, got ${m.kind}`), 'malformed')
    if (m.version !== PROTOCOL_VERSION) return this.refuse(socket, new VersionMismatchError(PROTOCOL_VERSION, m.version), 'version')
    if (m.name !== this.name) return this.refuse(socket, new NameMismatchError(this.name, m.name), 'name')
    if (m.id === this.id) return this.refuse(socket, new DuplicateIdError(m.id), 'duplicate')
    // A second link from a node already connected (several seeds / addresses for one node) is routine.
    if (this.peers.has(m.id)) return this.refuse(socket, new DuplicateIdError(m.id), 'duplicate', true)
    const pending = this.pendingOut.get(m.id)
    if (pending !== undefined) {
      // Both dialled at once: the connection dialled by the smaller id wins, on both sides.
      this.stats.tiebreaks++
      if (this.id < m.id) return this.afterOwnDial(socket, m, pending)
      pending.abort()
    }
    socket.write(this.handshake('welcome'))
    this.establish(socket, m.id, m.port, false, m.flags)
  }

  /**
   * Our dial should win the tie-break, but it may never get through (a stale or unreachable
   * address): hold their connection until our dial settles, at most `handshakeTimeout / 2`, then
   * refuse it if ours won, else take theirs (the far side refuses nothing it has not seen work).
   */
  private afterOwnDial(socket: net.Socket, m: HandshakeMessage, pending: PendingDial): void {
    socket.on('error', noop) // a reset while held is seen as 'destroyed' below
    void waitFor(pending.settled, { timeout: this.o.handshakeTimeout >> 1, unref: true }).catch(noop).then(() => {
      socket.off('error', noop)
      if (socket.destroyed) {
        this.handshaking.delete(socket)
        return
      }
      if (this.closing) return this.refuse(socket, new ClosedError('mesh'), 'closing')
      if (this.peers.has(m.id)) {
        socket.end(this.handshake('refuse', 'tiebreak'))
        this.releaseLater(socket)
        return
      }
      this.pendingOut.get(m.id)?.abort() // ours is stuck: take theirs
      socket.write(this.handshake('welcome'))
      this.establish(socket, m.id, m.port, false, m.flags)
    })
  }

  /** Refuses a connection: counted, reported (on `errors$` too unless `routine`), answered with `reason` when given. */
  private refuse(socket: net.Socket, error: RxnetError, reason: RefuseReason | undefined, routine = false): void {
    this.stats.refused++
    this.stats.refusedByCode[error.code] = (this.stats.refusedByCode[error.code] ?? 0) + 1
    const remote = `${normalize(socket.remoteAddress)}:${socket.remotePort ?? 0}`
    this.eventsSubject.next({ type: 'refused', error, remote })
    if (!routine) this.errorsSubject.next(error)
    if (reason !== undefined && socket.writable) {
      socket.end(this.handshake('refuse', reason))
      this.releaseLater(socket)
    } else {
      socket.destroy()
      this.handshaking.delete(socket)
    }
    this.pendingIn.delete(rawOf(socket))
  }

  /** An observer (`rxnet peers`, the dashboard): welcomed and sent summaries, never a member (observer.ts). */
  private adoptObserver(socket: net.Socket, m: HandshakeMessage): void {
    if (m.version !== PROTOCOL_VERSION) return this.refuse(socket, new VersionMismatchError(PROTOCOL_VERSION, m.version), 'version')
    if (m.name !== this.name) return this.refuse(socket, new NameMismatchError(this.name, m.name), 'name')
    if (this.o.observer || this.observers.full) return this.refuse(socket, new HandshakeError(this.o.observer ? 'an observer does not take observers' : 'too many observers'), 'closing', true)
    socket.write(this.handshake('welcome'))
    this.handshaking.delete(socket)
    this.observers.add(socket, m.id)
  }

  /** Gives a refused socket a moment to flush its answer, then makes sure it is gone. */
  private releaseLater(socket: net.Socket): void {
    socket.on('error', noop)
    socket.resume()
    const t = setTimeout(() => socket.destroy(), 1000)
    t.unref()
    socket.once('close', () => {
      clearTimeout(t)
      this.handshaking.delete(socket)
    })
  }

  private handshake(kind: HandshakeKind, reason?: RefuseReason): Buffer {
    return encodeHandshake({ kind, name: this.name, id: this.id, port: this.bound?.port ?? 0, reason, flags: this.o.observer ? 0 : CAPABILITIES.summaries })
  }

  // ---------------------------------------------------------------- dial path

  private onDiscovered(id: string, addresses: string[], port: number, ttl: number): void {
    if (this.closing || addresses.length === 0) return
    let t = this.targets.get(id)
    if (t === undefined && this.mdnsTargets >= this.o.maxTargets && !this.evictTarget()) {
      this.stats.targetsRefused++
      return
    }
    this.eventsSubject.next({ type: 'discovered', id, addresses, port })
    t = this.addTarget(id, 'mdns', addresses, port, id)
    t.ttl = ttl
    t.expires = Date.now() + ttl
    if (this.peers.has(id) || t.dialing || t.timer !== undefined || this.dialQueue.has(t)) return
    // The smaller id dials first; the larger one waits a little so simultaneous dials are rare.
    this.scheduleDial(t, this.id < id ? 0 : jitter(this.o.reconnectDelay * 3))
  }

  /** Makes room for a newly discovered node: forgets the discovered target that failed most (never a fresh one). */
  private evictTarget(): boolean {
    let worst: Target | undefined
    for (const t of this.targets.values()) {
      if (t.kind !== 'mdns' || t.dialing || t.attempt === 0 || (t.id !== undefined && this.peers.has(t.id))) continue
      if (worst === undefined || t.attempt > worst.attempt) worst = t
    }
    if (worst !== undefined) this.forget(worst)
    return worst !== undefined
  }

  private onServiceDown(id: string): void {
    const t = this.targets.get(id)
    if (t !== undefined && t.kind === 'mdns') this.forget(t)
  }

  /** Drops a target and whatever dial it had pending; a discovered one is counted in `targetsExpired`. */
  private forget(t: Target): void {
    if (this.targets.get(t.key) !== t) return
    clearTimeout(t.timer)
    t.timer = undefined
    this.dialQueue.delete(t)
    this.targets.delete(t.key)
    if (t.kind === 'mdns') {
      this.mdnsTargets--
      this.stats.targetsExpired++
    }
  }

  /** Forgets discovered nodes whose announcement ran out (those connected now are kept fresh). */
  private readonly sweep = (): void => {
    const now = Date.now()
    for (const t of [...this.targets.values()]) {
      if (t.kind !== 'mdns') continue
      if (t.id !== undefined && this.peers.has(t.id)) t.expires = now + t.ttl
      else if (t.expires < now && !t.dialing) this.forget(t)
    }
  }

  private addTarget(key: string, kind: Target['kind'], addresses: string[], port: number, id: string | undefined): Target {
    let t = this.targets.get(key)
    if (t === undefined) {
      t = { key, kind, addresses, port, id, attempt: 0, timer: undefined, dialing: false, expires: Infinity, ttl: 0 }
      this.targets.set(key, t)
      if (kind === 'mdns') this.mdnsTargets++
    } else if (kind !== 'learned') {
      if (kind === 'mdns' && t.kind !== 'mdns') this.mdnsTargets++
      else if (kind !== 'mdns' && t.kind === 'mdns') this.mdnsTargets--
      t.kind = kind
      t.addresses = addresses
      t.port = port
    }
    return t
  }

  /** Queues a dial of `t` after `delay` ms; it starts when a dial slot and the rate allow. */
  private scheduleDial(t: Target, delay: number): void {
    if (this.closing) return
    clearTimeout(t.timer)
    t.timer = setTimeout(() => {
      t.timer = undefined
      if (this.closing || this.targets.get(t.key) !== t) return
      this.dialQueue.add(t)
      this.pumpDials()
    }, delay)
    t.timer.unref()
  }

  /**
   * Starts queued dials while fewer than `maxConcurrentDials` are in flight and the token bucket
   * (`maxDialsPerSecond`, burst `maxConcurrentDials`) allows; targets that never failed go first.
   */
  private pumpDials(): void {
    clearTimeout(this.dialPumpTimer)
    this.dialPumpTimer = undefined
    const { maxConcurrentDials: slots, maxDialsPerSecond: rate } = this.o
    while (this.dialQueue.size > 0 && this.dialing < slots && !this.closing) {
      const now = Date.now()
      this.dialTokens = Math.min(slots, this.dialTokens + ((now - this.dialTokensAt) * rate) / 1000)
      this.dialTokensAt = now
      if (this.dialTokens < 1) {
        this.dialPumpTimer = setTimeout(() => this.pumpDials(), Math.ceil(((1 - this.dialTokens) * 1000) / rate))
        this.dialPumpTimer.unref()
        return
      }
      let next: Target | undefined
      for (const t of this.dialQueue) {
        next ??= t
        if (t.attempt === 0) {
          next = t
          break
        }
      }
      this.dialQueue.delete(next!)
      this.dialTokens--
      void this.dialTarget(next!)
    }
  }

  private async dialTarget(t: Target): Promise<void> {
    if (this.closing || this.targets.get(t.key) !== t || t.dialing) return
    if (t.id !== undefined && (this.peers.has(t.id) || this.pendingOut.has(t.id))) return
    if (t.expires < Date.now()) return this.forget(t)
    // Seeds are the user's own choice (checked against a loopback interface by createMesh).
    const hosts = t.kind === 'seed' ? t.addresses : t.addresses.filter(this.reachable)
    if (hosts.length === 0) return this.forget(t)
    t.dialing = true
    this.dialing++
    this.stats.peakDialsInFlight = Math.max(this.stats.peakDialsInFlight, this.dialing)
    let error: RxnetError | undefined
    try {
      for (const host of hosts) {
        try {
          await this.dialOnce(t, host)
          t.attempt = 0
          return
        } catch (e) {
          error = e instanceof RxnetError ? e : new ConnectionError(String(e), e)
          if (error instanceof NameMismatchError || error instanceof VersionMismatchError || error instanceof DuplicateIdError) break
        }
      }
    } finally {
      t.dialing = false
      this.dialing--
      this.pumpDials()
    }
    if (this.closing || this.targets.get(t.key) !== t) return
    this.stats.dialFailures++
    if (error !== undefined) {
      this.eventsSubject.next({ type: 'dial-failed', error, target: `${t.addresses.join('|')}:${t.port}` })
      if (!(error instanceof ConnectionError) && !(error instanceof DuplicateIdError)) this.errorsSubject.next(error)
    }
    if (t.id !== undefined && this.peers.has(t.id)) return
    t.attempt++
    if (t.kind === 'mdns' && t.attempt >= this.o.maxDialFailures) return this.forget(t)
    this.scheduleDial(t, backoff(t.attempt, this.o.reconnectDelay, this.o.maxReconnectDelay))
  }

  /** One connection attempt: connect (TLS), hello, answer. Resolves once established or superseded by the tie-break. */
  private async dialOnce(t: Target, host: string): Promise<void> {
    this.stats.dialed++
    const what = `${host}:${t.port}`
    const expected = t.id
    let aborted = false
    let socket: net.Socket | undefined
    let settle!: () => void
    const pending: PendingDial = { abort: () => ((aborted = true), socket?.destroy()), settled: new Promise((resolve) => (settle = resolve)) }
    if (expected !== undefined) this.pendingOut.set(expected, pending)
    let established = false
    try {
      socket = this.connect(host, t.port)
      this.handshaking.add(socket)
      await whenConnected(socket, what, this.o.connectTimeout)
      socket.setNoDelay(true)
      socket.write(this.handshake(this.o.observer ? 'observe' : 'hello'))
      const m = await readHandshake(socket, this.o.handshakeTimeout, (message, cause) => new ConnectionError(`${what}: ${message}`, cause))
      if (aborted) return
      if (m.kind === 'refuse') {
        if (t.kind === 'seed' && m.id !== '') t.id ??= m.id
        if (m.reason !== 'tiebreak') throw refusal(m, this.name)
        this.stats.tiebreaks++ // the far side keeps the connection it dialled
        return
      }
      if (m.kind !== 'welcome') throw new HandshakeError(`expected welcome, got ${m.kind}`)
      if (m.version !== PROTOCOL_VERSION) throw new VersionMismatchError(PROTOCOL_VERSION, m.version)
      if (m.name !== this.name) throw new NameMismatchError(this.name, m.name)
      if (m.id === this.id) throw new DuplicateIdError(m.id)
      if (t.kind === 'seed') t.id ??= m.id
      const existing = this.peers.get(m.id)
      if (existing !== undefined) {
        // Two links for one pair (first contact through different sources): keep the one the smaller id dialled.
        this.stats.tiebreaks++
        if (!existing.outbound && this.id > m.id) return
        existing.terminate(new ConnectionError('superseded by a newer link to the same peer'))
      }
      this.establish(socket, m.id, t.port, true, m.flags)
      established = true
    } catch (e) {
      if (!aborted) throw e
    } finally {
      if (expected !== undefined && this.pendingOut.get(expected) === pending) this.pendingOut.delete(expected)
      settle()
      if (socket !== undefined && !established) {
        socket.destroy()
        this.handshaking.delete(socket)
      }
    }
  }

  private connect(host: string, port: number): net.Socket {
    if (this.psk !== undefined) {
      const psk = this.psk
      return tls.connect({ host, port, ciphers: PSK_CIPHERS, minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', checkServerIdentity: () => undefined, pskCallback: () => ({ psk, identity: PSK_IDENTITY }) })
    }
    if (this.o.tls !== undefined) return tls.connect({ ...this.o.tls, host, port, rejectUnauthorized: true, checkServerIdentity: () => undefined })
    return net.connect({ host, port })
  }

  // ---------------------------------------------------------------- establish / leave

  private establish(socket: net.Socket, id: string, port: number, outbound: boolean, flags: number): void {
    this.handshaking.delete(socket)
    this.pendingIn.delete(rawOf(socket))
    const address = normalize(socket.remoteAddress)
    const peer = createLink<In, Out>(id, address, port, outbound, socket, this.codec, this.o)
    this.peers.set(id, peer)
    if (port > 0 && ![...this.targets.values()].some((t) => t.id === id)) this.addTarget(`peer:${id}`, 'learned', [address], port, id)
    void peer.left.then((reason) => this.onLeave(peer, reason))
    this.summaries.attach(peer, flags)
    this.publishMembers()
    this.eventsSubject.next({ type: 'join', peer })
    this.joined.next(peer)
    peer.start()
  }

  private onLeave(peer: MeshPeer<In, Out>, reason: LeaveReason): void {
    this.droppedPast += peer.stats.dropped
    if (reason.type === 'failed') {
      this.stats.failures++
      if (reason.error instanceof PeerTimeoutError) this.stats.timeouts++
    }
    if (this.peers.get(peer.id) === peer) {
      this.peers.delete(peer.id)
      this.publishMembers()
    }
    this.eventsSubject.next({ type: 'leave', peer, reason })
    if (this.closing) return
    for (const t of this.targets.values()) {
      if (t.id !== peer.id) continue
      if (peer.saidGoodbye && t.kind === 'learned') {
        this.forget(t)
        continue
      }
      t.attempt = 0
      const base = peer.saidGoodbye ? this.o.maxReconnectDelay : this.o.reconnectDelay
      this.scheduleDial(t, jitter(this.id < peer.id ? base : base * 3))
    }
  }

  private publishMembers(): void {
    this.membersSubject.next(new Map(this.peers))
  }

  broadcast(value: Out): number {
    if (this.closing) throw new ClosedError('mesh')
    const bytes = encodeWith(this.codec, value)
    for (const p of this.peers.values()) p.sendBytes(bytes)
    return this.peers.size
  }

  private report(e: RxnetError): void {
    this.eventsSubject.next({ type: 'error', error: e })
    this.errorsSubject.next(e)
  }

  // ---------------------------------------------------------------- close

  close(): Promise<void> {
    this.closing ??= this.shutdown()
    return this.closing
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }

  private async shutdown(): Promise<void> {
    for (const t of this.targets.values()) clearTimeout(t.timer)
    this.targets.clear()
    this.dialQueue.clear()
    clearTimeout(this.dialPumpTimer)
    clearInterval(this.sweepTimer)
    for (const p of [...this.pendingOut.values()]) p.abort()
    for (const s of this.handshaking) s.destroy()
    this.handshaking.clear()
    const server = this.server
    const serverClosed = server === undefined || !server.listening ? Promise.resolve() : new Promise<void>((resolve) => server.close(() => resolve()))
    const discoveryClosed = this.discovery?.close() ?? Promise.resolve()
    // Each link closes gracefully and aborts itself after its close timeout.
    const linksClosed = Promise.all([...[...this.peers.values()].map((p) => p.close()), this.observers.close()])
    this.summaries.close()
    await linksClosed
    for (const s of this.inbound) s.destroy()
    await Promise.all([linksClosed, serverClosed, discoveryClosed])
    if (server !== undefined) {
      server.off('error', this.onServerError)
      server.off('connection', this.onRawConnection)
      server.off('connection', this.onConnection)
      server.off('secureConnection', this.onConnection)
      server.off('tlsClientError', this.onTlsClientError)
    }
    this.eventsSubject.next({ type: 'close' })
    this.joined.complete()
    this.membersSubject.complete()
    this.eventsSubject.complete()
    this.errorsSubject.complete()
  }
}

function refusal(m: HandshakeMessage, name: string): RxnetError {
  switch (m.reason) {
    case 'name':
      return new NameMismatchError(name, m.name)
    case 'version':
      return new VersionMismatchError(PROTOCOL_VERSION, m.version)
    case 'duplicate':
      return new DuplicateIdError(m.id)
    case 'closing':
      return new ConnectionError('peer is closing')
    default:
      return new HandshakeError(`peer refused the handshake (${m.reason})`)
  }
}

function jitter(ms: number, random = Math.random): number {
  return Math.round(ms * (0.5 + random()))
}

/**
 * @internal Delay before redial number `attempt` (1, 2, ...): `base` doubled per failure, jittered
 * ±50%, never above `max` (the jitter is applied before the cap, so `maxReconnectDelay` holds).
 */
export function backoff(attempt: number, base: number, max: number, random = Math.random): number {
  // The shared backoffDelay: 1.5 base 2^attempt less up to 2/3 of it is base 2^attempt ±50%; capped after the jitter.
  return Math.min(max, backoffDelay(attempt, { initialDelay: base * 1.5, maxDelay: Infinity, jitter: 2 / 3, random: () => 1 - random() }))
}

function normalize(a: string | undefined): string {
  if (a === undefined) return ''
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a
}

/** The TCP socket under a TLS socket (the socket itself for plain TCP). */
function rawOf(socket: net.Socket): net.Socket {
  return (socket as net.Socket & { _parent?: net.Socket })._parent ?? socket
}

function noop(): void {}

