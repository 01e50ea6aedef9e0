/**
 * One established mesh link: a {@link SocketChannel} after the handshake, with heartbeats, failure
 * detection, RTT and the codec applied. Control messages share the framed stream without touching
 * user frames: a zero-length frame announces that the next frame is a control message
 * (`type u8` + data). Non-empty user messages go on the wire as they are (no copy); an empty one
 * is sent as the control message `empty`.
 * @module
 */
import { Observable, Subject, type Observer } from 'rxjs'
import type { Socket } from 'node:net'
import type { Channel, ChannelStats } from '../channel.js'
import { type Codec, decodeWith, encodeWith, raw } from '../codec/index.js'
import { BufferOverflowError, ClosedError, ConnectionError, PeerTimeoutError, ProtocolError, RxnetError } from '../errors.js'
import { varintLength } from '../framing/varint.js'
import { BoundedQueue, type OverflowPolicy } from '../queue.js'
import { socketChannel, type SocketChannel } from '../socket.js'

const EMPTY = new Uint8Array(0)
const CTRL_PING = 1
const CTRL_PONG = 2
const CTRL_EMPTY = 3
const CTRL_GOODBYE = 4
const CTRL_EMPTY_FRAME = Uint8Array.of(CTRL_EMPTY)
const CTRL_GOODBYE_FRAME = Uint8Array.of(CTRL_GOODBYE)
/** How soon a backlog blocked between the channel's writable mark and the user budget looks again. */
const PUMP_RETRY_MS = 10

/**
 * Why a peer left: `'closed'` (it or we closed cleanly) or the typed error that ended the link.
 *
 * @example
 * ```ts
 * import { createMesh } from 'rxnet'
 * const mesh = createMesh({ name: 'my-cluster', interface: '127.0.0.1' })
 * mesh.peers$.subscribe(async (peer) => {
 *   const reason = await peer.left
 *   console.log(peer.id, reason.type === 'failed' ? reason.error.code : 'closed') // e.g. ERR_PEER_TIMEOUT
 * })
 * ```
 */
export type LeaveReason = { type: 'closed' } | { type: 'failed'; error: RxnetError }

/**
 * A connected mesh member: a {@link Channel} of messages to and from one other node.
 * @typeParam In - what `source` emits (`Uint8Array` by default, decoded values with a codec).
 * @typeParam Out - what `send` takes (`Uint8Array | string` by default).
 *
 * @example
 * ```ts
 * import { createMesh } from 'rxnet'
 * const mesh = createMesh({ name: 'my-cluster', interface: '127.0.0.1' })
 * mesh.peers$.subscribe((peer) => {
 *   peer.source.subscribe({ next: (m) => console.log(peer.id, Buffer.from(m).toString()), complete: () => console.log(peer.id, 'left') })
 *   peer.send(`hello ${peer.id}`)
 * })
 * ```
 */
export interface Peer<In = Uint8Array, Out = Uint8Array | string> extends Channel<In, Out> {
  /** The peer's node id. */
  readonly id: string
  /** The peer's address as seen from this node. */
  readonly address: string
  /** The port the peer listens on. */
  readonly port: number
  /** True when this node dialled the connection. */
  readonly outbound: boolean
  /** Last measured heartbeat round-trip time in ms (NaN until measured). */
  readonly rtt: number
  /** Live counters of the link (`dropped` counts messages the overflow policy discarded). */
  readonly stats: ChannelStats
  /** Resolves when the link is gone, with the reason. */
  readonly left: Promise<LeaveReason>
  /** True while this peer's send buffer is under half its high-water mark. */
  readonly writable: boolean
  /** Resolves once the send buffer is under half its high-water mark (rejects with `ERR_CLOSED` if the link ends). */
  whenWritable(): Promise<void>
  /** Closes this link gracefully (flushes first). The mesh may dial the peer again later. */
  close(): Promise<void>
}

/** Timing and limits of a link (the mesh passes its resolved options). */
export interface LinkOptions {
  heartbeatInterval: number
  failureTimeout: number
  maxLength: number
  highWaterMark: number
  overflow: OverflowPolicy
}

/**
 * Bytes of the send buffer kept for control messages (heartbeats, goodbye). A control message is
 * two frames (empty marker + body), so it must never meet the user's overflow policy: dropping one
 * frame of the pair would make the far side read the next user message as control, or a ping as a
 * user message. User messages are held to `highWaterMark - reserve` by the peer itself; the
 * channel's own limit (`highWaterMark`, policy `'error'`) is only reached if control messages
 * pile up for minutes behind a frozen peer.
 */
function controlReserve(highWaterMark: number): number {
  return Math.min(64 * 1024, Math.floor(highWaterMark / 4))
}

/** @internal Wraps an accepted or dialled socket (handshake done) as a mesh link. */
export function createLink<In, Out>(id: string, address: string, port: number, outbound: boolean, socket: Socket, codec: Codec<unknown>, options: LinkOptions): MeshPeer<In, Out> {
  const channel = socketChannel(socket, { maxLength: options.maxLength, highWaterMark: options.highWaterMark, overflow: 'error' })
  return new MeshPeer<In, Out>(id, address, port, outbound, channel, codec, options)
}

/** @internal The mesh's implementation of {@link Peer}. */
export class MeshPeer<In, Out> implements Peer<In, Out> {
  readonly source: Observable<In>
  readonly sink: Observer<Out>
  readonly left: Promise<LeaveReason>
  rtt = Number.NaN
  /** Set when the far side said goodbye: do not redial. */
  saidGoodbye = false
  private readonly subject = new Subject<In>()
  private resolveLeft!: (r: LeaveReason) => void
  private ended = false
  private control = false
  /** Time of the heartbeat tick before the last one that found traffic (a lower bound of the last frame's arrival). */
  private lastSeen = Date.now()
  private lastTick = Date.now()
  /** Set by every inbound frame, cleared by the heartbeat tick (cheaper than a clock read per frame). */
  private heard = false
  private readonly isRaw: boolean
  private readonly timer: NodeJS.Timeout
  private readonly pingBuf = Buffer.alloc(9)
  /** Budget of user messages in the send buffer (the rest is kept for control messages). */
  private readonly budget: number
  /** How full the channel may get before user messages wait in the backlog (half the budget with `'drop-oldest'`, so the freshest stay droppable). */
  private readonly direct: number
  /** `'drop-oldest'` only: user messages waiting for room, the oldest dropped first. */
  private readonly backlog: BoundedQueue<Uint8Array> | undefined
  private pumping = false
  /** `close()` was called: no more control messages. */
  private closing = false
  private pumpTimer: NodeJS.Timeout | undefined
  /** Resolves when the backlog is empty again (or the link ends): what {@link whenWritable} waits on. */
  private drained: Promise<void> | undefined
  private onDrained: (() => void) | undefined
  private userDropped = 0
  private userOverflows = 0
  readonly stats: ChannelStats

  constructor(
    readonly id: string,
    readonly address: string,
    readonly port: number,
    readonly outbound: boolean,
    private readonly channel: SocketChannel,
    private readonly codec: Codec<unknown>,
    private readonly timing: LinkOptions,
  ) {
    this.budget = timing.highWaterMark - controlReserve(timing.highWaterMark)
    if (timing.overflow === 'drop-oldest') this.backlog = new BoundedQueue(this.budget, 'drop-oldest', (b) => frameSize(b.length), 'mesh peer send buffer')
    this.direct = this.backlog === undefined ? this.budget : this.budget >> 1
    const self = this // eslint-disable-line @typescript-eslint/no-this-alias
    const inner = channel.stats
    this.stats = {
      get messagesIn() { return inner.messagesIn },
      get bytesIn() { return inner.bytesIn },
      get messagesOut() { return inner.messagesOut },
      get bytesOut() { return inner.bytesOut },
      get dropped() { return inner.dropped + self.userDropped + (self.backlog?.dropped ?? 0) },
      get overflows() { return inner.overflows + self.userOverflows + (self.backlog?.overflows ?? 0) },
      get bufferedBytes() { return inner.bufferedBytes + (self.backlog?.bytes ?? 0) },
    } as ChannelStats
    this.left = new Promise((resolve) => (this.resolveLeft = resolve))
    this.source = this.subject.asObservable() as Observable<In>
    this.sink = {
      // An Observer must not throw (RxJS would rethrow it asynchronously and crash the process):
      // a value the codec refuses ends the link with ERR_ENCODE instead. `send()` throws it.
      next: (v) => {
        try {
          this.send(v)
        } catch (e) {
          this.fail(e instanceof RxnetError ? e : new ConnectionError('send failed', e))
        }
      },
      error: (e) => this.fail(e instanceof RxnetError ? e : new ConnectionError('link aborted', e)),
      complete: () => void this.close(),
    }
    this.isRaw = codec === raw
    this.timer = setInterval(this.tick, timing.heartbeatInterval)
    this.timer.unref()
  }

  get writable(): boolean {
    return this.channel.writable && (this.backlog === undefined || this.backlog.length === 0)
  }

  async whenWritable(): Promise<void> {
    while (!this.writable) {
      if (this.ended) throw new ClosedError('peer')
      if (this.backlog !== undefined && this.backlog.length > 0) await (this.drained ??= new Promise<void>((resolve) => (this.onDrained = resolve)))
      else await this.channel.whenWritable()
    }
  }

  /** Starts reading. Call after the peer has been handed to subscribers (they subscribe synchronously). */
  start(): void {
    this.channel.source.subscribe({
      next: this.onFrame,
      error: (e: unknown) => this.finish({ type: 'failed', error: e instanceof RxnetError ? e : new ConnectionError('link failed', e) }),
      complete: () => this.finish({ type: 'closed' }),
    })
  }

  send(value: Out): void {
    if (this.ended) {
      this.channel.send(EMPTY) // counted as dropped-after-close by the channel
      return
    }
    if (this.isRaw && value instanceof Uint8Array && value.length > 0) this.sendUser(value)
    else this.sendBytes(encodeWith(this.codec, value))
  }

  /** Sends already-encoded bytes (used by broadcast: encode once, send to all). */
  sendBytes(bytes: Uint8Array): void {
    if (this.ended) this.channel.send(EMPTY)
    else if (bytes.length === 0) this.sendControl(CTRL_EMPTY_FRAME)
    else this.sendUser(bytes)
  }

  /** A user message, held to the user budget with the overflow policy. */
  private sendUser(bytes: Uint8Array): void {
    const buffered = this.channel.stats.bufferedBytes
    if ((this.backlog === undefined || this.backlog.length === 0) && (buffered === 0 || buffered + frameSize(bytes.length) <= this.direct)) {
      this.channel.send(bytes)
      return
    }
    if (this.backlog !== undefined) {
      this.backlog.pushSized(bytes, frameSize(bytes.length), buffered)
      this.pump()
      return
    }
    this.userOverflows++
    if (this.timing.overflow === 'error') {
      this.fail(new BufferOverflowError('mesh peer send buffer', this.budget))
      return
    }
    this.userDropped++
  }

  /** Moves backlogged messages into the channel as room frees up. */
  private pump(limit = this.direct): void {
    const backlog = this.backlog!
    while (backlog.length > 0 && !this.ended) {
      const buffered = this.channel.stats.bufferedBytes
      const next = backlog.items[backlog.head]!
      if (buffered !== 0 && buffered + frameSize(next.length) > limit) break
      this.channel.send(backlog.shift()!)
    }
    if (backlog.length === 0 || this.ended) this.wakeDrained()
    if (backlog.length === 0 || this.pumping || this.ended) return
    this.pumping = true
    const again = (): void => {
      this.pumping = false
      this.pumpTimer = undefined
      this.pump()
    }
    // Under the channel's own writable mark but still over ours: look again shortly.
    if (this.channel.writable) this.pumpTimer = setTimeout(again, PUMP_RETRY_MS)
    else this.channel.whenWritable().then(again, () => (this.pumping = false))
  }

  private wakeDrained(): void {
    const wake = this.onDrained
    this.drained = this.onDrained = undefined
    wake?.()
  }

  /** A control message: its marker and body always go into the channel together (see {@link controlReserve}). */
  private sendControl(body: Uint8Array): void {
    if (this.closing) return // the channel is flushing: anything more is counted as dropped
    this.channel.send(EMPTY)
    this.channel.send(body)
  }

  close(): Promise<void> {
    if (this.backlog !== undefined && this.backlog.length > 0) {
      // Flush what the user budget holds; what is still waiting is dropped (and counted).
      this.pump(this.budget)
      while (this.backlog.shift() !== undefined) this.userDropped++
    }
    if (!this.ended) this.sendControl(CTRL_GOODBYE_FRAME)
    this.closing = true
    return this.channel.close()
  }

  /** Fails the link with `error` (RST) and reports it as the leave reason. */
  fail(error: RxnetError): void {
    this.finish({ type: 'failed', error })
    this.channel.sink.error(error)
  }

  private readonly tick = (): void => {
    if (this.ended) return
    const now = Date.now()
    if (this.heard) {
      this.heard = false
      this.lastSeen = this.lastTick
    }
    this.lastTick = now
    if (now - this.lastSeen > this.timing.failureTimeout) {
      this.fail(new PeerTimeoutError(this.id, this.timing.failureTimeout))
      return
    }
    const ping = this.pingBuf
    ping[0] = CTRL_PING
    ping.writeDoubleBE(performance.now(), 1)
    this.sendControl(Uint8Array.from(ping))
  }

  private readonly onFrame = (frame: Uint8Array): void => {
    this.heard = true
    if (this.control) {
      this.control = false
      this.onControl(frame)
      return
    }
    if (frame.length === 0) {
      this.control = true
      return
    }
    this.deliver(frame)
  }

  private onControl(frame: Uint8Array): void {
    switch (frame[0]) {
      case CTRL_PING: {
        if (frame.length !== 9) return this.fail(new ProtocolError('malformed ping'))
        const pong = Uint8Array.from(frame)
        pong[0] = CTRL_PONG
        this.sendControl(pong)
        return
      }
      case CTRL_PONG: {
        if (frame.length !== 9) return this.fail(new ProtocolError('malformed pong'))
        const sent = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength).readDoubleBE(1)
        this.rtt = performance.now() - sent
        return
      }
      case CTRL_EMPTY:
        return this.deliver(EMPTY)
      case CTRL_GOODBYE:
        this.saidGoodbye = true
        return
      default:
        return this.fail(new ProtocolError(`unknown control message ${frame[0]}`))
    }
  }

  private deliver(frame: Uint8Array): void {
    if (this.isRaw) {
      this.subject.next(frame as In)
      return
    }
    let value: In
    try {
      value = decodeWith(this.codec, frame) as In
    } catch (e) {
      this.fail(e as RxnetError)
      return
    }
    this.subject.next(value)
  }

  private finish(reason: LeaveReason): void {
    if (this.ended) return
    this.ended = true
    clearInterval(this.timer)
    clearTimeout(this.pumpTimer)
    this.wakeDrained()
    if (this.backlog !== undefined) while (this.backlog.shift() !== undefined) this.userDropped++
    // Counters are final before anyone hears of the leave: the channel counts what it never wrote
    // when its socket has closed, so the leave waits for that (a socket stuck flushing to a frozen
    // peer is destroyed after failureTimeout).
    const guard = setTimeout(() => this.channel.sink.error(new ConnectionError('link did not close in time')), this.timing.failureTimeout)
    guard.unref()
    void this.channel.closed.then(() => {
      clearTimeout(guard)
      this.subject.complete()
      this.resolveLeft(reason)
    })
  }
}


/** Bytes a message takes in the send buffer (payload + varint length prefix). */
function frameSize(n: number): number {
  return n + (n < 0x80 ? 1 : varintLength(n))
}
