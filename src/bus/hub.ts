/**
 * The bus hub's state machine: accepts clients on a Unix socket / named pipe, keeps each client's
 * interests (`./sessions.ts`) and forwards every published message once to every other client
 * with a matching interest (and to the bridges, `./bridges.ts`; messages from them go to local
 * clients only, so nothing loops); acknowledges a sender only once every copy is out of its hands
 * (`./acks.ts`), holds messages for a crashed predecessor's clients (`./recovery.ts`). Every
 * client connection is a {@link socketChannel}; a client that sends garbage, oversized frames, or
 * stops reading is dropped alone.
 * @module
 */
import net from 'node:net'
import { randomBytes } from 'node:crypto'
import { Observable, Subject } from 'rxjs'
import { socketChannel } from '../socket.js'
import { AbortError, LimitError, DuplicateIdError, FrameTooLongError, isRxnetError, InvalidArgumentError, ProtocolError, RxnetError, TimeoutError, VersionMismatchError } from '../errors.js'
import type { MulticastChannel } from '../multicast/index.js'
import type { BridgeHandle } from './nats/bridge.js'
import { varintLength } from '../framing/varint.js'
import { BUS_PROTOCOL_VERSION, decodeFrame, encodeLost, encodeMsg, encodePong, encodeWelcome, forEachEntry, frameLimit, pubToMsg, singleMsgs, sliceMsgs, FrameType, MAX_PATTERNS, MSG_OVERHEAD, type Batch } from './protocol.js'
import { Ghosts, removeRoster, rosterPath, writeRoster } from './recovery.js'
import { SYS_HUB_STATS_REQUEST, StatsLease, hubStatsReply, sysHubStatsTopic } from './sys.js'
import { PartialFrames, type PartialVerdict } from './limits.js'
import { compileTopic, validateTopic } from './topics.js'
import { sendTo, Sessions, type Session } from './sessions.js'
import { HubBridges } from './bridges.js'
import { Acks } from './acks.js'
import { listenOnPath } from './listen.js'
import { checkOwnFile } from './paths.js'
import { checkHubOptions, hubSettings, type HubSettings, type Hub, type HubEvent, type HubOptions, type HubStats } from './hub-options.js'

/** Room above `clientHighWaterMark` for frames already read when the hub stops reading. */
const READ_SLACK = 128 * 1024

/**
 * Starts a bus hub on a Unix socket or Windows named pipe.
 *
 * A stale socket file (nobody answers on it) is replaced; a path a live server answers on is
 * refused with `ERR_PATH_IN_USE`; a path longer than the platform allows with `ERR_PATH_TOO_LONG`.
 * @example
 * ```ts
 * import { startHub, connectBus } from 'rxnet'
 * const hub = await startHub({ path: '/tmp/app.sock' })
 * const bus = connectBus('/tmp/app.sock')
 * bus.messages$('log.>').subscribe((data) => console.log(data))
 * bus.emit('log.info', { line: 'hello' })
 * await bus.close(); await hub.close()
 * ```
 */
export async function startHub(options: HubOptions): Promise<Hub> {
  if (options === null || typeof options !== 'object') throw new InvalidArgumentError('startHub needs { path }')
  checkHubOptions(options)
  const hub = new HubImpl(options)
  await hub.start(options.signal)
  return hub
}


class HubImpl implements Hub {
  readonly path: string
  readonly id = randomBytes(8).toString('hex')
  readonly stats: HubStats = { clients: 0, published: 0, delivered: 0, dropped: 0, bridgedOut: 0, bridgedIn: 0, bridgeBad: 0, bridgeSpoofed: 0, bridgeTooLarge: 0, refused: 0, partialBytes: 0, partialBytesPeak: 0, partialOverflows: 0, partialTimeouts: 0, recovering: 0, lost: 0 }
  readonly events$: Observable<HubEvent>
  /** Sequence number of this hub's own `$SYS` messages. */
  private sysSeq = 0
  private readonly sys = new StatsLease(() => this.answerStats())

  private readonly events = new Subject<HubEvent>()
  private readonly server: net.Server
  private readonly sessions = new Sessions()
  private readonly bridges = new HubBridges({
    stats: this.stats,
    event: (e) => this.events.next(e),
    patterns: () => this.sessions.patterns(),
    speaksFor: (origin) => this.sessions.speaksFor(origin),
    route: (topic, msg, origin) => this.route(topic, msg, null, origin),
  })
  private readonly congested = new Set<Session>()
  /** Topics already validated (the check is not free; topics repeat). */
  private readonly validTopics = new Set<string>()
  /** Clients of the crashed hub this one replaced, not back yet. */
  private readonly ghosts: Ghosts
  private readonly acks: Acks
  private readonly rosterFile: string | null
  private rosterDirty = false
  private closing: Promise<void> | null = null
  private readonly o: HubSettings
  private readonly partials: PartialFrames<Session>
  private readonly welcome: Uint8Array

  constructor(private readonly options: HubOptions) {
    const o = (this.o = hubSettings(options))
    this.path = o.path
    this.rosterFile = rosterPath(o.path)
    this.ghosts = new Ghosts(this.o.clientHighWaterMark, (client, origin, count) => {
      this.stats.lost += count
      this.events.next({ type: 'lost', client, origin, count })
    })
    this.partials = new PartialFrames<Session>(o.maxPartialBytes, o.frameTimeout, this.onPartialVerdict)
    this.acks = new Acks({
      sessions: this.sessions,
      ghosts: this.ghosts,
      slowClientTimeout: o.slowClientTimeout,
      congested: () => this.congested.size > 0,
      beforeRelease: () => {
        if (this.rosterDirty) this.persistRoster() // the interests these ACKs rely on survive a crash
      },
      drop: (s, error) => this.drop(s, error),
    })
    this.events$ = this.events.asObservable()
    this.welcome = encodeWelcome(this.id)
    this.server = net.createServer(this.onConnection)
  }

  async start(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) throw new AbortError(signal.reason)
    if (this.rosterFile !== null) checkOwnFile(this.rosterFile) // another user's roster beside the socket: ERR_UNSAFE_PATH
    await listenOnPath(this.server, this.path, signal)
    // After listen, an 'error' with no listener (e.g. EMFILE on accept) would crash the process.
    this.server.on('error', this.onServerError)
    this.recover()
    if (signal?.aborted) {
      await this.close()
      throw new AbortError(signal.reason)
    }
    try {
      await this.bridges.start(this.options)
    } catch (e) {
      await this.close()
      throw e
    }
  }

  get bridge(): MulticastChannel | null {
    return this.bridges.multicast
  }

  get nats(): BridgeHandle | null {
    return this.bridges.nats
  }

  close(): Promise<void> {
    this.sys.close()
    this.closing ??= this.shutdown()
    return this.closing
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  private async shutdown(): Promise<void> {
    this.ghosts.giveUp()
    this.stats.recovering = 0
    this.partials.close()
    this.acks.close()
    if (this.rosterFile !== null) {
      const error = removeRoster(this.rosterFile) // a clean stop: clients will not be waited for
      if (error !== null) this.events.next({ type: 'server-error', error })
    }
    const serverClosed = new Promise<void>((resolve) => this.server.close(() => resolve()))
    // Each client ends gracefully, or is aborted after the channel's closeTimeout (1 s).
    const clients = [...this.sessions.all].map((s) => s.ch.close())
    await Promise.all([serverClosed, ...clients, this.bridges.close()])
    this.server.off('error', this.onServerError)
    this.events.complete()
  }

  private readonly onServerError = (error: Error): void => {
    this.events.next({ type: 'server-error', error })
  }

  private readonly onConnection = (socket: net.Socket): void => {
    if (this.closing !== null) {
      socket.destroy()
      return
    }
    if (this.sessions.size >= this.o.maxClients) {
      socket.destroy()
      this.stats.refused++
      this.events.next({ type: 'refuse', error: new LimitError('clients connected to the hub', this.o.maxClients) })
      return
    }
    // Inbound frames are checked against maxMessageSize below; outbound MSGs carry the origin id too.
    // Past half the budget the hub stops reading every client; what it is already processing (at
    // most one read of 64 KiB per client) still lands, hence the slack before the hard limit.
    const ch = socketChannel(socket, { maxLength: frameLimit(this.o.maxMessageSize), highWaterMark: this.o.clientHighWaterMark + READ_SLACK, overflow: 'error' })
    const s = this.sessions.open(ch, socket)
    s.helloTimer = setTimeout(() => this.drop(s, new TimeoutError('HELLO', this.o.helloTimeout)), this.o.helloTimeout)
    ch.source.subscribe({
      next: (frame) => this.onFrame(s, frame),
      // A connection that failed is a disconnect; anything else (oversized frame, overflow) is the client's fault.
      error: (e) => (isRxnetError(e) && e.code !== 'ERR_CONNECTION' ? this.drop(s, e) : this.remove(s)),
      complete: () => this.remove(s),
    })
    // After the channel's own listener: by then the decoder has taken the chunk (and allocated
    // for a frame it starts), so this sees what it holds.
    socket.on('data', (chunk: Buffer) => {
      if (s.closed) return
      this.partials.onData(s, chunk)
      this.stats.partialBytes = this.partials.bytes
      this.stats.partialBytesPeak = this.partials.peak
    })
    if (this.congested.size > 0) socket.pause()
  }

  private onFrame(s: Session, bytes: Uint8Array): void {
    if (s.closed) return
    try {
      // A batch may be longer than one message (each in it is checked below).
      if (bytes.length > this.o.maxMessageSize && (bytes[0] !== FrameType.PUBS || bytes.length > frameLimit(this.o.maxMessageSize) - MSG_OVERHEAD)) throw new FrameTooLongError(bytes.length, this.o.maxMessageSize)
      const f = decodeFrame(bytes)
      if (s.id === null) {
        if (f.type !== 'hello') throw new ProtocolError(`expected HELLO, got ${f.type.toUpperCase()}`)
        if (f.version !== BUS_PROTOCOL_VERSION) throw new VersionMismatchError(BUS_PROTOCOL_VERSION, f.version)
        this.hello(s, f.id, f.echo)
        return
      }
      if (s.adopted !== null && f.type !== 'sub') this.dropAdopted(s)
      switch (f.type) {
        case 'pub': {
          this.checkTopic(f.topic)
          if (f.seq <= s.ackSeq) return // a resend this hub has already forwarded
          s.ackSeq = f.seq
          if (f.topic === SYS_HUB_STATS_REQUEST) return this.onStatsRequest(s)
          this.stats.published++
          const msg = pubToMsg(bytes, s.origin!)
          this.route(f.topic, msg, s, s.id)
          this.bridges.forward(msg)
          this.acks.schedule(s)
          return
        }
        case 'pubs':
          return this.onBatch(s, bytes, f)
        case 'sub':
          if (s.adopted?.delete(f.pattern)) return // already there, from its ghost
          if (s.patterns.size >= MAX_PATTERNS && !s.patterns.has(f.pattern)) throw new ProtocolError(`more than ${MAX_PATTERNS} patterns`)
          s.patterns.set(f.pattern, compileTopic(f.pattern))
          this.interestsChanged()
          this.rosterDirty = true
          return
        case 'unsub':
          if (s.patterns.delete(f.pattern)) {
            this.interestsChanged()
            this.rosterDirty = true
          }
          return
        case 'ping':
          // After the ACKs of what came before it (a flush() means: nothing before it can be lost).
          this.acks.pong(s, encodePong(f.id))
          return
        default:
          throw new ProtocolError(`unexpected ${f.type.toUpperCase()} from a client`)
      }
    } catch (e) {
      this.drop(s, e instanceof RxnetError ? e : new ProtocolError('bad frame', e))
    }
  }

  /** PUBS: messages `f.seq..` of `s` on one topic, routed as one MSGS. */
  private onBatch(s: Session, bytes: Uint8Array, f: Batch<'pubs'>): void {
    this.checkTopic(f.topic)
    const last = f.seq + f.count - 1
    // Every message in it within maxMessageSize, as a PUB of its own.
    const head = 1 + varintLength(Buffer.byteLength(f.topic)) + Buffer.byteLength(f.topic)
    if (head + varintLength(last) + f.largest > this.o.maxMessageSize) {
      // Near the limit: each with its own seq (the client measured it so; a later seq's varint may be longer).
      forEachEntry(bytes, f, (seq, from, to) => {
        const single = head + varintLength(seq) + to - from
        if (single > this.o.maxMessageSize) throw new FrameTooLongError(single, this.o.maxMessageSize)
      })
    }
    if (last <= s.ackSeq) return // a resend this hub has already forwarded
    let msg = pubToMsg(bytes, s.origin!)
    let count = f.count
    if (f.seq <= s.ackSeq) {
      // Partly forwarded before a reconnect: the rest only.
      msg = sliceMsgs(msg, { ...f, type: 'msgs', origin: s.id!, body: f.body + s.origin!.length }, s.ackSeq + 1 - f.seq)
      count = last - s.ackSeq
    }
    s.ackSeq = last
    if (f.topic === SYS_HUB_STATS_REQUEST) return this.onStatsRequest(s)
    this.stats.published += count
    this.route(f.topic, msg, s, s.id!, count)
    this.bridges.forward(msg)
    this.acks.schedule(s)
  }

  private checkTopic(topic: string): void {
    if (this.validTopics.has(topic)) return
    validateTopic(topic)
    if (this.validTopics.size >= 10_000) this.validTopics.clear()
    this.validTopics.add(topic)
  }

  private hello(s: Session, id: string, echo: boolean): void {
    clearTimeout(s.helloTimer!)
    s.helloTimer = null
    const old = this.sessions.claim(s, id, echo)
    // The same client reconnecting before its old connection was noticed dead: the new one wins.
    if (old !== undefined) this.drop(old, new DuplicateIdError(id))
    this.stats.clients++
    const { ghost, lost } = this.ghosts.take(id)
    if (ghost !== undefined) {
      s.patterns = ghost.patterns // until its own SUBs arrive (they follow HELLO)
      s.adopted = new Set(ghost.patterns.keys())
      this.interestsChanged()
    }
    sendTo(s, this.welcome)
    if (s.ackSeq >= 0) this.acks.schedule(s) // tells a reconnecting client what it need not resend
    this.events.next({ type: 'connect', client: id })
    if (ghost !== undefined) {
      for (const h of ghost.held) sendTo(s, h.msg)
      if (this.ghosts.waiting.size === 0) this.endRecovery()
      this.acks.adopt(ghost, s)
    }
    // How many messages of each sender it will never get (LOST frames).
    for (const m of lost) for (const [origin, count] of m) sendTo(s, encodeLost(count, origin))
  }

  /** The client registered its interests again: patterns of its ghost it did not repeat are withdrawn. */
  private dropAdopted(s: Session): void {
    for (const p of s.adopted!) s.patterns.delete(p)
    if (s.adopted!.size > 0) this.interestsChanged()
    s.adopted = null
  }

  // ---- recovery after a crash ----------------------------------------------------------------

  /** Reads the roster a crashed hub on this path left: each client listed becomes a ghost until it is back. */
  private recover(): void {
    if (this.rosterFile === null) return
    this.ghosts.load(this.rosterFile, this.o.recoveryTimeout, () => {
      this.endRecovery()
      this.interestsChanged()
      this.acks.check()
    })
    this.stats.recovering = this.ghosts.waiting.size
  }

  private endRecovery(): void {
    this.stats.recovering = 0
    this.rosterDirty = true
  }

  private persistRoster(): void {
    this.rosterDirty = false
    if (this.rosterFile === null) return
    const clients = this.ghosts.entries()
    for (const s of this.sessions.all) if (s.id !== null && s.patterns.size > 0) clients.push({ id: s.id, echo: s.echo, patterns: s.patterns.keys() })
    try {
      writeRoster(this.rosterFile, clients)
    } catch (error) {
      this.events.next({ type: 'server-error', error })
    }
  }

  /** A `$SYS` stats request: answered now and every second for {@link SYS_LEASE} ms (sys.ts); neither routed nor bridged. */
  private onStatsRequest(s: Session): void {
    this.sys.request()
    this.acks.schedule(s)
  }

  /** The hub's counters and clients, to the local subscribers of its `$SYS` stats topic. */
  private answerStats(): void {
    const sessions = this.sessions.info()
    const topic = sysHubStatsTopic(this.id)
    const origin = `$hub-${this.id}`
    const payload = Buffer.from(JSON.stringify(hubStatsReply(this.id, this.path, this.stats, sessions)))
    this.route(topic, encodeMsg(this.sysSeq++, origin, topic, payload), null, origin)
  }

  /** Forwards `msg` (MSG, or MSGS of `count` messages) to every local session interested in `topic`, except `from` (unless it asked for echoes). */
  private route(topic: string, msg: Uint8Array, from: Session | null, origin: string, count = 1): void {
    const targets = this.sessions.targets(topic)
    for (let i = 0; i < targets.length; i++) {
      const t = targets[i]!
      if ((t === from && !t.echo) || t.closed) continue
      sendTo(t, msg)
      this.stats.delivered += count
      if (!t.ch.writable) this.congest(t)
    }
    if (this.ghosts.waiting.size > 0) for (const m of singleMsgs(msg)) this.ghosts.hold(topic, m, origin)
  }

  /** Some client's patterns changed: routes are recomputed, the NATS bridge resubscribes. */
  private interestsChanged(): void {
    this.sessions.changed()
    this.bridges.resync()
  }

  /**
   * A client over half its budget: stop reading every client (senders' outboxes fill, they slow
   * down) and hold acknowledgements until it catches up; drop it if it does not in time.
   */
  private congest(s: Session): void {
    if (this.congested.has(s)) return
    this.congested.add(s)
    if (this.congested.size === 1) for (const t of this.sessions.all) t.socket.pause()
    s.slowTimer = setTimeout(() => this.drop(s, new TimeoutError('client reading its messages', this.o.slowClientTimeout)), this.o.slowClientTimeout)
    s.ch.whenWritable().then(
      () => this.uncongest(s),
      () => this.uncongest(s),
    )
  }

  private uncongest(s: Session): void {
    if (!this.congested.delete(s)) return
    if (s.slowTimer !== null) clearTimeout(s.slowTimer)
    s.slowTimer = null
    if (this.congested.size === 0) {
      this.partials.restartClocks() // the time nobody was read does not count against their frames
      if (this.closing === null) for (const t of this.sessions.all) t.socket.resume()
      this.acks.schedule(null)
    }
  }

  private readonly onPartialVerdict = (s: Session, v: PartialVerdict): void => {
    if (v.kind === 'overflow') this.stats.partialOverflows++
    else this.stats.partialTimeouts++
    this.drop(s, v.error)
    this.stats.partialBytes = this.partials.bytes
  }

  private drop(s: Session, error: RxnetError): void {
    if (s.closed) return
    this.stats.dropped++
    this.events.next({ type: 'drop', client: s.id, error })
    this.remove(s)
    s.ch.sink.error(error)
  }

  private remove(s: Session): void {
    if (s.closed) return
    s.closed = true
    if (s.helloTimer !== null) clearTimeout(s.helloTimer)
    this.partials.forget(s)
    this.stats.partialBytes = this.partials.bytes
    this.sessions.forget(s)
    this.acks.forget(s)
    this.uncongest(s)
    if (s.patterns.size > 0) {
      this.interestsChanged()
      this.rosterDirty = true
    }
    if (s.id !== null) {
      this.stats.clients--
      this.events.next({ type: 'disconnect', client: s.id })
    }
  }
}
