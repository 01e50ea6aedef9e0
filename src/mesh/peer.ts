/**
 * One established mesh link: a {@link SocketChannel} after the handshake, with heartbeats, failure
 * detection, RTT and the codec applied. Control messages share the framed stream without touching
 * user frames: a zero-length frame announces that the next frame is a control message
 * (`type u8` + data). Non-empty user messages go on the wire as they are (no copy); an empty one
 * is sent as the control message `empty`.
 * @module
 */
import { Observable, Subject, type Observer } from 'rxjs'
import type { Channel, ChannelStats } from '../channel.js'
import { type Codec, decodeWith, encodeWith, raw } from '../codec/index.js'
import { PeerTimeoutError, ProtocolError, RxnetError, ConnectionError } from '../errors.js'
import type { SocketChannel } from '../socket.js'

const EMPTY = new Uint8Array(0)
const CTRL_PING = 1
const CTRL_PONG = 2
const CTRL_EMPTY = 3
const CTRL_GOODBYE = 4
const CTRL_EMPTY_FRAME = Uint8Array.of(CTRL_EMPTY)
const CTRL_GOODBYE_FRAME = Uint8Array.of(CTRL_GOODBYE)

/** Why a peer left: `'closed'` (it or we closed cleanly) or the typed error that ended the link. */
export type LeaveReason = { type: 'closed' } | { type: 'failed'; error: RxnetError }

/**
 * A connected mesh member: a {@link Channel} of messages to and from one other node.
 * @typeParam In - what `source` emits (`Uint8Array` by default, decoded values with a codec).
 * @typeParam Out - what `send` takes (`Uint8Array | string` by default).
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

/** Timing of a link. */
export interface LinkTiming {
  heartbeatInterval: number
  failureTimeout: number
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

  constructor(
    readonly id: string,
    readonly address: string,
    readonly port: number,
    readonly outbound: boolean,
    private readonly channel: SocketChannel,
    private readonly codec: Codec<unknown>,
    private readonly timing: LinkTiming,
  ) {
    this.left = new Promise((resolve) => (this.resolveLeft = resolve))
    this.source = this.subject.asObservable() as Observable<In>
    this.sink = {
      next: (v) => this.send(v),
      error: (e) => this.fail(e instanceof RxnetError ? e : new ConnectionError('link aborted', e)),
      complete: () => void this.close(),
    }
    this.isRaw = codec === raw
    this.timer = setInterval(this.tick, timing.heartbeatInterval)
    this.timer.unref()
  }

  get stats(): ChannelStats {
    return this.channel.stats
  }

  get writable(): boolean {
    return this.channel.writable
  }

  whenWritable(): Promise<void> {
    return this.channel.whenWritable()
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
    if (this.isRaw && value instanceof Uint8Array && value.length > 0) this.channel.send(value)
    else this.sendBytes(encodeWith(this.codec, value))
  }

  /** Sends already-encoded bytes (used by broadcast: encode once, send to all). */
  sendBytes(bytes: Uint8Array): void {
    if (bytes.length === 0) {
      this.channel.send(EMPTY)
      this.channel.send(CTRL_EMPTY_FRAME)
    } else {
      this.channel.send(bytes)
    }
  }

  close(): Promise<void> {
    if (!this.ended) {
      this.channel.send(EMPTY)
      this.channel.send(CTRL_GOODBYE_FRAME)
    }
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
    this.channel.send(EMPTY)
    this.channel.send(Uint8Array.from(ping))
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
        this.channel.send(EMPTY)
        this.channel.send(pong)
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
    this.subject.complete()
    this.resolveLeft(reason)
  }
}

