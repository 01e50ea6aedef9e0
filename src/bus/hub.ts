/**
 * The bus hub: accepts clients on a Unix socket / named pipe, keeps each client's interests and
 * forwards every published message once to every other client with a matching interest (and to
 * the multicast group when bridged; messages from the group go to local clients only, so nothing
 * loops). Every client connection is a {@link socketChannel}; a client that sends garbage,
 * oversized frames, or stops reading is dropped alone.
 * @module
 */
import net from 'node:net'
import { randomBytes } from 'node:crypto'
import { Observable, Subject } from 'rxjs'
import { socketChannel, type SocketChannel } from '../socket.js'
import { AbortError, LimitError, DuplicateIdError, FrameTooLongError, isRxnetError, InvalidArgumentError, ProtocolError, RxnetError, TimeoutError, VersionMismatchError } from '../errors.js'
import { multicast, type MulticastChannel } from '../multicast/index.js'
import { startNatsBridge, type BridgeHandle } from './nats/bridge.js'
import { varintLength } from '../framing/varint.js'
import { BUS_PROTOCOL_VERSION, decodeFrame, encodeAck, encodeLost, encodeMsg, encodePong, encodeString, encodeWelcome, forEachEntry, frameLimit, pubToMsg, singleMsgs, sliceMsgs, FrameType, MAX_BATCH_BYTES, MAX_PATTERNS, MSG_OVERHEAD, type Batch } from './protocol.js'
import { Ghosts, removeRoster, rosterPath, writeRoster, type Ghost } from './recovery.js'
import { SYS_HUB_STATS_REQUEST, SYS_LEASE, hubStatsReply, sysHubStatsTopic } from './sys.js'
import { PartialFrames, type PartialVerdict } from './limits.js'
import { compileTopic, validateTopic, type TopicMatcher } from './topics.js'
import { listenOnPath } from './listen.js'
import { checkOwnFile } from './paths.js'
import { DEFAULT_MAX_MESSAGE_SIZE, positive } from './options.js'
import {
  DEFAULT_CLIENT_HIGH_WATER_MARK,
  DEFAULT_FRAME_TIMEOUT,
  DEFAULT_HELLO_TIMEOUT,
  DEFAULT_MAX_CLIENTS,
  DEFAULT_MAX_PARTIAL_BYTES,
  DEFAULT_RECOVERY_TIMEOUT,
  DEFAULT_SLOW_CLIENT_TIMEOUT,
  checkHubOptions,
  type Hub,
  type HubEvent,
  type HubOptions,
  type HubStats,
} from './hub-options.js'

/** Room above `clientHighWaterMark` for frames already read when the hub stops reading. */
const READ_SLACK = 128 * 1024

interface Session {
  readonly ch: SocketChannel
  readonly socket: net.Socket
  id: string | null
  origin: Uint8Array | null
  echo: boolean
  patterns: Map<string, TopicMatcher>
  ackSeq: number
  acked: number
  slowTimer: NodeJS.Timeout | null
  helloTimer: NodeJS.Timeout | null
  closed: boolean
  /** Bytes of frames given to `ch` so far (what it has written to the kernel: `sent - ch.stats.bufferedBytes`). */
  sent: number
  /** Patterns adopted from this client's ghost that it has not registered again yet (dropped at its first other frame). */
  adopted: Set<string> | null
}

/**
 * ACKs and PONGs waiting until every copy of a message routed before them is out of the hub's
 * hands (in the receiver's kernel buffer, which survives the hub) or held for a ghost that has
 * since been adopted or given up.
 */
interface Barrier {
  readonly marks: { t: Session | Ghost; at: number }[]
  readonly frames: { s: Session; frame: Uint8Array }[]
  /** When it was raised (ms): a client holding it up for `slowClientTimeout` is dropped. */
  readonly since: number
}

const frameSize = (f: Uint8Array): number => f.length + varintLength(f.length)

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
  /** After a `$SYS` stats request the hub keeps answering every second until this time (it may not read the next request while congested). */
  private sysUntil = 0
  private sysTimer: NodeJS.Timeout | null = null
  bridge: MulticastChannel | null = null
  nats: BridgeHandle | null = null

  private readonly events = new Subject<HubEvent>()
  private readonly server: net.Server
  private readonly sessions = new Set<Session>()
  private readonly byId = new Map<string, Session>()
  /** Highest seq forwarded per client id, kept after a client leaves so a reconnect's resends are not forwarded twice. */
  private readonly lastSeq = new Map<string, number>()
  /** topic -> sessions interested; cleared whenever interests change. */
  private routes = new Map<string, Session[]>()
  private readonly congested = new Set<Session>()
  /** Topics already validated (the check is not free; topics repeat). */
  private readonly validTopics = new Set<string>()
  private readonly ackPending = new Set<Session>()
  private pongs: { s: Session; frame: Uint8Array }[] = []
  private ackScheduled = false
  private readonly barriers: Barrier[] = []
  private barrierTimer: NodeJS.Timeout | null = null
  /** Clients of the crashed hub this one replaced, not back yet. */
  private readonly ghosts: Ghosts
  private readonly rosterFile: string | null
  private rosterDirty = false
  private closing: Promise<void> | null = null
  private readonly maxMessageSize: number
  private readonly clientHighWaterMark: number
  private readonly slowClientTimeout: number
  private readonly helloTimeout: number
  private readonly recoveryTimeout: number
  private readonly maxClients: number
  private readonly partials: PartialFrames<Session>
  private readonly welcome: Uint8Array

  constructor(private readonly options: HubOptions) {
    if (typeof options.path !== 'string') throw new InvalidArgumentError('startHub needs { path }')
    this.path = options.path
    this.maxMessageSize = positive('maxMessageSize', options.maxMessageSize, DEFAULT_MAX_MESSAGE_SIZE)
    this.clientHighWaterMark = positive('clientHighWaterMark', options.clientHighWaterMark, DEFAULT_CLIENT_HIGH_WATER_MARK)
    this.slowClientTimeout = positive('slowClientTimeout', options.slowClientTimeout, DEFAULT_SLOW_CLIENT_TIMEOUT)
    this.helloTimeout = positive('helloTimeout', options.helloTimeout, DEFAULT_HELLO_TIMEOUT)
    this.recoveryTimeout = positive('recoveryTimeout', options.recoveryTimeout, DEFAULT_RECOVERY_TIMEOUT)
    this.rosterFile = rosterPath(options.path)
    this.ghosts = new Ghosts(this.clientHighWaterMark, (client, origin, count) => {
      this.stats.lost += count
      this.events.next({ type: 'lost', client, origin, count })
    })
    this.maxClients = positive('maxClients', options.maxClients, DEFAULT_MAX_CLIENTS)
    const maxPartialBytes = positive('maxPartialBytes', options.maxPartialBytes, DEFAULT_MAX_PARTIAL_BYTES)
    // One frame of the largest size must fit, or a client sending one would be dropped forever.
    if (maxPartialBytes < frameLimit(this.maxMessageSize)) throw new InvalidArgumentError(`maxPartialBytes (${maxPartialBytes}) must be at least max(maxMessageSize, ${MAX_BATCH_BYTES}) + ${MSG_OVERHEAD} (${frameLimit(this.maxMessageSize)})`)
    this.partials = new PartialFrames<Session>(
      maxPartialBytes,
      positive('frameTimeout', options.frameTimeout, DEFAULT_FRAME_TIMEOUT),
      this.onPartialVerdict,
    )
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
    if (this.options.multicast !== undefined) {
      try {
        const mc = this.options.multicast
        this.bridge = multicast({ ...mc, overflow: mc.overflow ?? 'drop-oldest' }) // an explicit `overflow: undefined` keeps this default too
        this.bridge.source.subscribe({
          next: ({ data }) => this.onBridgeMessage(data),
          error: (error) => this.events.next({ type: 'bridge-error', error }),
        })
        await this.bridge.ready
      } catch (e) {
        await this.close()
        throw e
      }
    }
    if (this.options.nats !== undefined) {
      try {
        this.nats = startNatsBridge(this.options.nats, { patterns: () => [...this.sessions].flatMap((t) => [...t.patterns.keys()]), deliver: (frame) => this.onBridgeMessage(frame) })
      } catch (e) {
        await this.close()
        throw e
      }
    }
  }

  close(): Promise<void> {
    if (this.sysTimer !== null) clearInterval(this.sysTimer)
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
    if (this.barrierTimer !== null) clearTimeout(this.barrierTimer)
    if (this.rosterFile !== null) {
      const error = removeRoster(this.rosterFile) // a clean stop: clients will not be waited for
      if (error !== null) this.events.next({ type: 'server-error', error })
    }
    const serverClosed = new Promise<void>((resolve) => this.server.close(() => resolve()))
    // Each client ends gracefully, or is aborted after the channel's closeTimeout (1 s).
    const clients = [...this.sessions].map((s) => s.ch.close())
    await Promise.all([serverClosed, ...clients, this.bridge?.close(), this.nats?.close()])
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
    if (this.sessions.size >= this.maxClients) {
      socket.destroy()
      this.stats.refused++
      this.events.next({ type: 'refuse', error: new LimitError('clients connected to the hub', this.maxClients) })
      return
    }
    // Inbound frames are checked against maxMessageSize below; outbound MSGs carry the origin id too.
    // Past half the budget the hub stops reading every client; what it is already processing (at
    // most one read of 64 KiB per client) still lands, hence the slack before the hard limit.
    const ch = socketChannel(socket, { maxLength: frameLimit(this.maxMessageSize), highWaterMark: this.clientHighWaterMark + READ_SLACK, overflow: 'error' })
    const s: Session = { ch, socket, id: null, origin: null, echo: false, patterns: new Map(), ackSeq: -1, acked: -1, slowTimer: null, helloTimer: null, closed: false, sent: 0, adopted: null }
    this.sessions.add(s)
    s.helloTimer = setTimeout(() => this.drop(s, new TimeoutError('HELLO', this.helloTimeout)), this.helloTimeout)
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
      if (bytes.length > this.maxMessageSize && (bytes[0] !== FrameType.PUBS || bytes.length > frameLimit(this.maxMessageSize) - MSG_OVERHEAD)) throw new FrameTooLongError(bytes.length, this.maxMessageSize)
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
          this.toBridge(msg)
          this.scheduleAck(s)
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
          this.pongs.push({ s, frame: encodePong(f.id) })
          this.scheduleAck(null)
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
    if (head + varintLength(last) + f.largest > this.maxMessageSize) {
      // Near the limit: each with its own seq (the client measured it so; a later seq's varint may be longer).
      forEachEntry(bytes, f, (seq, from, to) => {
        const single = head + varintLength(seq) + to - from
        if (single > this.maxMessageSize) throw new FrameTooLongError(single, this.maxMessageSize)
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
    this.toBridge(msg)
    this.scheduleAck(s)
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
    const old = this.byId.get(id)
    if (old !== undefined) {
      // The same client reconnecting before its old connection was noticed dead: the new one wins.
      this.drop(old, new DuplicateIdError(id))
    }
    s.ackSeq = this.lastSeq.get(id) ?? -1
    s.id = id
    s.origin = encodeString(id)
    s.echo = echo
    this.byId.set(id, s)
    this.stats.clients++
    const { ghost, lost } = this.ghosts.take(id)
    if (ghost !== undefined) {
      s.patterns = ghost.patterns // until its own SUBs arrive (they follow HELLO)
      s.adopted = new Set(ghost.patterns.keys())
      this.interestsChanged()
    }
    this.send(s, this.welcome)
    if (s.ackSeq >= 0) this.scheduleAck(s) // tells a reconnecting client what it need not resend
    this.events.next({ type: 'connect', client: id })
    if (ghost !== undefined) {
      for (const h of ghost.held) this.send(s, h.msg)
      for (const b of this.barriers) {
        for (const m of b.marks) {
          if (m.t !== ghost) continue
          m.t = s
          m.at = s.sent
        }
      }
      if (this.ghosts.waiting.size === 0) this.endRecovery()
      this.checkBarriers()
    }
    // How many messages of each sender it will never get (LOST frames).
    for (const m of lost) for (const [origin, count] of m) this.send(s, encodeLost(count, origin))
  }

  /** Sends `frame` to a client, counting its bytes (see {@link Session.sent}). */
  private send(s: Session, frame: Uint8Array): void {
    s.sent += frameSize(frame)
    s.ch.send(frame)
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
    this.ghosts.load(this.rosterFile, this.recoveryTimeout, () => {
      this.endRecovery()
      this.interestsChanged()
      this.checkBarriers()
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
    for (const s of this.sessions) if (s.id !== null && s.patterns.size > 0) clients.push({ id: s.id, echo: s.echo, patterns: s.patterns.keys() })
    try {
      writeRoster(this.rosterFile, clients)
    } catch (error) {
      this.events.next({ type: 'server-error', error })
    }
  }

  /** A `$SYS` stats request: answered now and every second for {@link SYS_LEASE} ms (sys.ts); neither routed nor bridged. */
  private onStatsRequest(s: Session): void {
    this.answerStats()
    this.sysUntil = Date.now() + SYS_LEASE
    this.sysTimer ??= setInterval(() => {
      if (Date.now() <= this.sysUntil) return this.answerStats()
      clearInterval(this.sysTimer!)
      this.sysTimer = null
    }, 1000).unref()
    this.scheduleAck(s)
  }

  /** The hub's counters and clients, to the local subscribers of its `$SYS` stats topic. */
  private answerStats(): void {
    const sessions = [...this.sessions].flatMap((t) => (t.id === null || t.closed ? [] : [{ id: t.id, patterns: t.patterns.keys(), slow: t.slowTimer !== null, stats: t.ch.stats }]))
    const topic = sysHubStatsTopic(this.id)
    const origin = `$hub-${this.id}`
    const payload = Buffer.from(JSON.stringify(hubStatsReply(this.id, this.path, this.stats, sessions)))
    this.route(topic, encodeMsg(this.sysSeq++, origin, topic, payload), null, origin)
  }

  /** Forwards `msg` (MSG, or MSGS of `count` messages) to every local session interested in `topic`, except `from` (unless it asked for echoes). */
  private route(topic: string, msg: Uint8Array, from: Session | null, origin: string, count = 1): void {
    let targets = this.routes.get(topic)
    if (targets === undefined) {
      targets = []
      for (const t of this.sessions) {
        if (t.id === null) continue
        for (const m of t.patterns.values()) {
          if (m.matches(topic)) {
            targets.push(t)
            break
          }
        }
      }
      if (this.routes.size > 10_000) this.routes.clear()
      this.routes.set(topic, targets)
    }
    for (let i = 0; i < targets.length; i++) {
      const t = targets[i]!
      if ((t === from && !t.echo) || t.closed) continue
      this.send(t, msg)
      this.stats.delivered += count
      if (!t.ch.writable) this.congest(t)
    }
    if (this.ghosts.waiting.size > 0) for (const m of singleMsgs(msg)) this.ghosts.hold(topic, m, origin)
  }

  /** Some client's patterns changed: routes are recomputed, the NATS bridge resubscribes. */
  private interestsChanged(): void {
    this.routes.clear()
    this.nats?.resync()
  }

  /** To the bridges (multicast, NATS), one MSG per message. */
  private toBridge(frame: Uint8Array): void {
    if (this.nats === null && this.bridge === null) return
    for (const msg of singleMsgs(frame)) {
      this.nats?.forward(msg)
      const b = this.bridge
      if (b === null) continue
      if (msg.length > b.maxMessageSize) {
        this.stats.bridgeTooLarge++
        continue
      }
      b.send(msg)
      this.stats.bridgedOut++
    }
  }

  private onBridgeMessage(data: Uint8Array): void {
    let f
    try {
      f = decodeFrame(data)
      if (f.type !== 'msg') throw new ProtocolError(`unexpected ${f.type.toUpperCase()} on the bridge`)
      validateTopic(f.topic)
    } catch {
      this.stats.bridgeBad++
      return
    }
    // Only this hub speaks for its own clients: a datagram claiming one of them (connected, or
    // gone but still remembered) is forged, e.g. by another process on an unsealed group.
    if (this.byId.has(f.origin) || this.lastSeq.has(f.origin)) {
      this.stats.bridgeSpoofed++
      return
    }
    this.stats.bridgedIn++
    this.route(f.topic, data, null, f.origin)
  }

  /**
   * A client over half its budget: stop reading every client (senders' outboxes fill, they slow
   * down) and hold acknowledgements until it catches up; drop it if it does not in time.
   */
  private congest(s: Session): void {
    if (this.congested.has(s)) return
    this.congested.add(s)
    if (this.congested.size === 1) for (const t of this.sessions) t.socket.pause()
    s.slowTimer = setTimeout(() => this.drop(s, new TimeoutError('client reading its messages', this.slowClientTimeout)), this.slowClientTimeout)
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
      if (this.closing === null) for (const t of this.sessions) t.socket.resume()
      this.scheduleAck(null)
    }
  }

  private scheduleAck(s: Session | null): void {
    if (s !== null) this.ackPending.add(s)
    if (this.ackScheduled || (this.ackPending.size === 0 && this.pongs.length === 0)) return
    this.ackScheduled = true
    setImmediate(this.flushAcks)
  }

  /**
   * Turns the pending ACKs and PONGs into a barrier released once everything routed so far is out
   * of this process (see {@link Barrier}): an ACK lets the sender forget a message, so a hub crash
   * must not be able to lose any copy of it after that.
   */
  private readonly flushAcks = (): void => {
    this.ackScheduled = false
    if (this.congested.size > 0) return // resumed by uncongest()
    const frames: Barrier['frames'] = []
    for (const s of this.ackPending) {
      if (!s.closed && s.ackSeq > s.acked) {
        s.acked = s.ackSeq
        frames.push({ s, frame: encodeAck(s.ackSeq) })
      }
    }
    this.ackPending.clear()
    for (const p of this.pongs) frames.push(p)
    this.pongs = []
    if (frames.length === 0) return
    const marks: Barrier['marks'] = []
    for (const t of this.sessions) if (t.sent > 0 && t.ch.stats.bufferedBytes > 0) marks.push({ t, at: t.sent })
    for (const g of this.ghosts.waiting.values()) if (g.held.length > 0) marks.push({ t: g, at: 0 })
    this.barriers.push({ marks, frames, since: Date.now() })
    this.checkBarriers()
  }

  private released(b: Barrier): boolean {
    for (const m of b.marks) if (this.holdsUp(m)) return false
    return true
  }

  private holdsUp({ t, at }: Barrier['marks'][number]): boolean {
    if ('ch' in t) return !t.closed && t.sent - t.ch.stats.bufferedBytes < at
    return this.ghosts.waiting.get(t.id) === t // given up by recoveryTimeout
  }

  private readonly checkBarriers = (): void => {
    if (this.barrierTimer !== null) clearTimeout(this.barrierTimer)
    this.barrierTimer = null
    while (this.barriers.length > 0) {
      const b = this.barriers[0]!
      if (!this.released(b) && Date.now() - b.since >= this.slowClientTimeout) {
        // A client that has not taken its messages in that long holds every sender's ACKs up: drop it.
        for (const m of b.marks) if ('ch' in m.t && this.holdsUp(m)) this.drop(m.t, new TimeoutError('client reading its messages', this.slowClientTimeout))
      }
      if (!this.released(b)) {
        // Write completions have no public event: look again shortly (only while something waits).
        this.barrierTimer = setTimeout(this.checkBarriers, 1)
        return
      }
      if (this.rosterDirty) this.persistRoster() // the interests these ACKs rely on survive a crash
      this.barriers.shift()
      for (const { s, frame } of b.frames) if (!s.closed) this.send(s, frame)
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
    this.sessions.delete(s)
    this.ackPending.delete(s)
    this.uncongest(s)
    if (s.patterns.size > 0) {
      this.interestsChanged()
      this.rosterDirty = true
    }
    if (s.id !== null) {
      this.stats.clients--
      if (this.byId.get(s.id) === s) this.byId.delete(s.id)
      this.lastSeq.delete(s.id)
      if (this.lastSeq.size >= 10_000) this.lastSeq.delete(this.lastSeq.keys().next().value!)
      this.lastSeq.set(s.id, s.ackSeq)
      this.events.next({ type: 'disconnect', client: s.id })
    }
  }
}
