/**
 * The mesh state machine: the listening server and discovery feeding the dialer, the handshake on
 * every connection, the tie-break that keeps exactly one link per pair, links joining and leaving,
 * and the close sequence. Reads top to bottom: listen, accept path, dial path, establish / leave,
 * close. Around it: `targets.ts` (dial targets, their scheduling and backoff), `sockets.ts` (server
 * and outbound sockets, TLS, refusals before the handshake), `peer.ts` (one link: heartbeats,
 * failure detection, send budget), `options.ts` (options and public types).
 * @module
 */
import { BehaviorSubject, Observable, Subject } from 'rxjs'
import net from 'node:net'
import { lookup } from 'node:dns/promises'
import { type Codec, encodeWith, resolveCodec } from '../codec/index.js'
import { AbortError, ClosedError, ConnectionError, DuplicateIdError, HandshakeError, InvalidArgumentError, NameMismatchError, PeerTimeoutError, type RxnetError, VersionMismatchError } from '../errors.js'
import { Discovery, isWildcard, reachableThrough } from './discovery.js'
import { readHandshake, whenConnected } from './connection.js'
import { waitFor } from '../wait.js'
import { CAPABILITIES, encodeHandshake, type HandshakeKind, type HandshakeMessage, PROTOCOL_VERSION, type RefuseReason } from './handshake.js'
import { Observers } from './observer.js'
import { PeerSummaries } from './summaries.js'
import { createLink, type LeaveReason, type MeshPeer, type Peer } from './peer.js'
import { type Mesh, type MeshAddress, type MeshEvent, type MeshOptions, type MeshStats, type Resolved, resolveOptions } from './options.js'
import { listenAddresses, MeshSockets, normalize } from './sockets.js'
import { type DialHost, Dialer, type Target } from './targets.js'

/** An outbound dial to a known id, in flight: `settled` resolves once it is established or has failed. */
interface PendingDial {
  abort: () => void
  settled: Promise<void>
}

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
  private readonly pendingOut = new Map<string, PendingDial>()
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
  /** Server and outbound sockets, and every socket not a link yet (sockets.ts). */
  private readonly sockets: MeshSockets
  /** Where and when to dial (targets.ts). */
  private readonly dialer: Dialer
  /** Connections of observers: welcomed, sent summaries, never members. */
  private readonly observers: Observers
  /** Stats summaries to and from peers (summaries.ts). */
  private readonly summaries: PeerSummaries

  constructor(private readonly o: Resolved) {
    this.id = o.id
    this.name = o.name
    this.codec = resolveCodec(o.codec)
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
        let n = self.droppedPast
        for (const p of self.peers.values()) n += p.stats.dropped
        return n
      },
      get targets() {
        return self.dialer.size
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
        return self.dialer.inFlight
      },
      peakDialsInFlight: 0,
    }
    this.sockets = new MeshSockets(o, this.stats, {
      get closing() {
        return self.closing !== undefined
      },
      accepted: (socket) => this.onConnection(socket),
      answer: (kind, reason) => this.handshake(kind, reason),
      event: (e) => this.eventsSubject.next(e),
      error: (e) => this.errorsSubject.next(e),
    })
    const dialHost: DialHost = {
      get closing() {
        return self.closing !== undefined
      },
      connected: (id) => this.peers.has(id),
      handshaking: (id) => this.pendingOut.has(id),
      dialOnce: (t, h) => this.dialOnce(t, h),
      event: (e) => this.eventsSubject.next(e),
      error: (e) => this.errorsSubject.next(e),
    }
    this.dialer = new Dialer(dialHost, o, this.stats, reachableThrough(o.interface))
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
    const server = this.sockets.createServer()
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
      d.events.subscribe((ev) => (ev.type === 'up' ? this.dialer.discovered(ev.node.id, ev.node.addresses, ev.node.port, ev.node.ttl) : this.dialer.serviceDown(ev.id)))
      this.dialer.startSweep()
    }
    for (const seed of this.o.seeds) this.dialer.seed(seed)
    const addr = this.address()!
    this.eventsSubject.next({ type: 'listening', address: addr })
    return addr
  }

  address(): MeshAddress | null {
    if (this.bound === undefined || this.closing) return null
    return listenAddresses(this.bound.port, this.bound.host)
  }

  private readonly onServerError = (e: Error): void => this.report(new ConnectionError(`mesh server: ${e.message}`, e))

  // ---------------------------------------------------------------- accept path

  /** A socket accepted and past TLS (sockets.ts): read its hello. */
  private onConnection(socket: net.Socket): void {
    readHandshake(socket, this.o.handshakeTimeout, (message, cause) => new HandshakeError(message, cause)).then(
      (m) => this.decide(socket, m),
      (e: RxnetError) => this.sockets.refuse(socket, e, e instanceof HandshakeError && socket.writable && !socket.readableEnded ? 'malformed' : undefined),
    )
  }

  private decide(socket: net.Socket, m: HandshakeMessage): void {
    const refuse = (error: RxnetError, reason: RefuseReason, routine?: boolean): void => this.sockets.refuse(socket, error, reason, routine)
    if (this.closing) return refuse(new ClosedError('mesh'), 'closing')
    if (m.kind === 'observe') return this.adoptObserver(socket, m)
    if (m.kind !== 'hello') return refuse(new HandshakeError(`expected hello, got ${m.kind}`), 'malformed')
    if (m.version !== PROTOCOL_VERSION) return refuse(new VersionMismatchError(PROTOCOL_VERSION, m.version), 'version')
    if (m.name !== this.name) return refuse(new NameMismatchError(this.name, m.name), 'name')
    if (m.id === this.id) return refuse(new DuplicateIdError(m.id), 'duplicate')
    // A second link from a node already connected (several seeds / addresses for one node) is routine.
    if (this.peers.has(m.id)) return refuse(new DuplicateIdError(m.id), 'duplicate', true)
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
      if (socket.destroyed) return this.sockets.forget(socket)
      if (this.closing) return this.sockets.refuse(socket, new ClosedError('mesh'), 'closing')
      if (this.peers.has(m.id)) return this.sockets.answer(socket, 'tiebreak')
      this.pendingOut.get(m.id)?.abort() // ours is stuck: take theirs
      socket.write(this.handshake('welcome'))
      this.establish(socket, m.id, m.port, false, m.flags)
    })
  }

  /** An observer (`rxnet peers`, the dashboard): welcomed and sent summaries, never a member (observer.ts). */
  private adoptObserver(socket: net.Socket, m: HandshakeMessage): void {
    if (m.version !== PROTOCOL_VERSION) return this.sockets.refuse(socket, new VersionMismatchError(PROTOCOL_VERSION, m.version), 'version')
    if (m.name !== this.name) return this.sockets.refuse(socket, new NameMismatchError(this.name, m.name), 'name')
    if (this.o.observer || this.observers.full) return this.sockets.refuse(socket, new HandshakeError(this.o.observer ? 'an observer does not take observers' : 'too many observers'), 'closing', true)
    socket.write(this.handshake('welcome'))
    this.sockets.admitted(socket)
    this.observers.add(socket, m.id)
  }

  private handshake(kind: HandshakeKind, reason?: RefuseReason): Buffer {
    return encodeHandshake({ kind, name: this.name, id: this.id, port: this.bound?.port ?? 0, reason, flags: this.o.observer ? 0 : CAPABILITIES.summaries | CAPABILITIES.goodbye })
  }

  // ---------------------------------------------------------------- dial path

  /** One connection attempt (targets.ts decides when): connect (TLS), hello, answer. Resolves once established or superseded by the tie-break. */
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
      socket = this.sockets.connect(host, t.port)
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
      if (socket !== undefined && !established) this.sockets.drop(socket)
    }
  }

  // ---------------------------------------------------------------- establish / leave

  private establish(socket: net.Socket, id: string, port: number, outbound: boolean, flags: number): void {
    this.sockets.admitted(socket)
    const address = normalize(socket.remoteAddress)
    const peer = createLink<In, Out>(id, address, port, outbound, socket, this.codec, this.o, (flags & CAPABILITIES.goodbye) !== 0)
    this.peers.set(id, peer)
    this.dialer.learned(id, address, port)
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
    this.dialer.peerLeft(peer.id, peer.saidGoodbye)
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
    this.dialer.close()
    for (const p of [...this.pendingOut.values()]) p.abort()
    this.sockets.abortHandshakes()
    const server = this.server
    const serverClosed = server === undefined || !server.listening ? Promise.resolve() : new Promise<void>((resolve) => server.close(() => resolve()))
    const discoveryClosed = this.discovery?.close() ?? Promise.resolve()
    // Each link closes gracefully and aborts itself after its close timeout.
    const linksClosed = Promise.all([...[...this.peers.values()].map((p) => p.close()), this.observers.close()])
    this.summaries.close()
    await linksClosed
    this.sockets.destroyInbound()
    await Promise.all([linksClosed, serverClosed, discoveryClosed])
    if (server !== undefined) {
      server.off('error', this.onServerError)
      this.sockets.detach(server)
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

function noop(): void {}
