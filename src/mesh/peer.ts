/**
 * One established mesh link: a {@link Connection} built on the lifecycle kernel, a thin layer
 * over a {@link SocketChannel} that adds the codec, heartbeats (failure detection, RTT) and the
 * control messages of `control.ts`.
 *
 * Flow control lives in the socket channel alone: user messages go into its one bounded queue
 * under the user's `highWaterMark` / `overflow`. Control messages never compete for that room:
 * a heartbeat (or its answer) is written straight to the socket when the channel's queue is
 * empty (everything before it is already in the socket, so order holds) and skipped otherwise —
 * a link with queued data is not idle, and the far side counts every frame as a sign of life.
 * @module
 */
import type { Socket } from 'node:net'
import { type Codec, decodeWith, encodeWith, raw } from '../codec/index.js'
import type { Connection, ConnectionStats, WaitOptions } from '../connection.js'
import { BufferOverflowError, ClosedError, ConnectionError, EncodeError, PeerTimeoutError, type RxnetError } from '../errors.js'
import { ConnectionKernel, DEFAULT_MAX_HELD_MESSAGES, observeSource, OPEN } from '../lifecycle.js'
import type { OverflowPolicy } from '../queue.js'
import { socketChannel, type SocketChannel } from '../socket.js'
import { CONTROL_MARKER, ControlDemux, type ControlMessage, controlWire, encodeControl } from './control.js'

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
 * A connected mesh member: a {@link Connection} of messages to and from one other node. `source`
 * completes when the link closed cleanly (a goodbye, then the end of the stream) and errors with
 * the typed reason when it failed (`ERR_PEER_TIMEOUT`, `ERR_CONNECTION`, `ERR_ENCODE` ...).
 * @typeParam In - what `source` emits (`Uint8Array` by default, decoded values with a codec).
 * @typeParam Out - what `send` takes (`Uint8Array | string` by default).
 *
 * @example
 * ```ts
 * import { createMesh } from 'rxnet'
 * const mesh = createMesh({ name: 'my-cluster', interface: '127.0.0.1' })
 * mesh.peers$.subscribe((peer) => {
 *   peer.source.subscribe({ next: (m) => console.log(peer.id, Buffer.from(m).toString()), error: (e) => console.log(peer.id, e.code) })
 *   peer.send(`hello ${peer.id}`)
 * })
 * ```
 */
export interface Peer<In = Uint8Array, Out = Uint8Array | string> extends Connection<In, Out> {
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
  /** Resolves when the link is gone (its counters final), with the reason; `closed` says the same as an error or `undefined`. */
  readonly left: Promise<LeaveReason>
}

/** Timing and limits of a link (the mesh passes its resolved options). */
export interface LinkOptions {
  heartbeatInterval: number
  failureTimeout: number
  maxLength: number
  highWaterMark: number
  overflow: OverflowPolicy
  /** @default 65536 */
  maxHeldMessages?: number
}

/** @internal Wraps an accepted or dialled socket (handshake done) as a mesh link. */
export function createLink<In, Out>(id: string, address: string, port: number, outbound: boolean, socket: Socket, codec: Codec<unknown>, options: LinkOptions, goodbye = true): MeshPeer<In, Out> {
  // The peer's own close() bounds the graceful close (and aborts the channel): the channel waits.
  const channel = socketChannel(socket, { maxLength: options.maxLength, highWaterMark: options.highWaterMark, overflow: options.overflow, closeTimeout: 0x7fffffff })
  return new MeshPeer<In, Out>(id, address, port, outbound, socket, channel, codec, options, goodbye)
}

/** The counters of a peer: its channel's, plus what the peer itself dropped. */
class PeerStats implements ConnectionStats {
  droppedIn = 0
  /** Sent after the link ended, or refused by the peer's own checks. */
  droppedHere = 0
  /** Control frames (marker and body) that went through the channel: not user messages. */
  controlIn = 0
  controlBytesIn = 0
  controlOut = 0
  constructor(private readonly inner: ConnectionStats) {}
  get messagesIn(): number {
    return this.inner.messagesIn - this.controlIn
  }
  get bytesIn(): number {
    return this.inner.bytesIn - this.controlBytesIn
  }
  get messagesOut(): number {
    return this.inner.messagesOut - this.controlOut
  }
  get bytesOut(): number {
    return this.inner.bytesOut
  }
  get dropped(): number {
    return this.inner.dropped + this.droppedHere
  }
  get overflows(): number {
    return this.inner.overflows
  }
  get bufferedBytes(): number {
    return this.inner.bufferedBytes
  }
}

/** @internal The mesh's implementation of {@link Peer}. */
export class MeshPeer<In, Out> extends ConnectionKernel<In, Out> implements Peer<In, Out> {
  readonly stats: PeerStats
  readonly left: Promise<LeaveReason>
  rtt = Number.NaN
  /** Set when the far side said goodbye: do not redial at once. */
  saidGoodbye = false
  /** Called with the body of each `summary` control message (src/mesh/summaries.ts). */
  onSummary: ((body: Uint8Array) => void) | undefined
  private readonly isRaw: boolean
  private readonly timer: NodeJS.Timeout
  private readonly demux: ControlDemux
  /** Time of the heartbeat tick before the last one that found traffic (a lower bound of the last frame's arrival). */
  private lastSeen = Date.now()
  private lastTick = Date.now()
  /** Set by every inbound frame, cleared by the heartbeat tick (cheaper than a clock read per frame). */
  private heard = false
  /** A control message written straight to the socket is not yet flushed. */
  private controlInFlight = false
  /** Reading stopped: nobody subscribes and half of `maxHeldMessages` is held (heartbeats are not checked meanwhile). */
  private paused = false
  private readonly pauseAt: number

  constructor(
    readonly id: string,
    readonly address: string,
    readonly port: number,
    readonly outbound: boolean,
    private readonly socket: Socket,
    private readonly channel: SocketChannel,
    private readonly codec: Codec<unknown>,
    private readonly timing: LinkOptions,
    /** Whether the far side closes with the goodbye exchange (its handshake said `CAPABILITIES.goodbye`; rxnet 0.1 does not). */
    private readonly farSaysGoodbye = true,
  ) {
    super({ maxHeldMessages: timing.maxHeldMessages })
    this.stats = new PeerStats(channel.stats)
    this.pauseAt = Math.max(1, (timing.maxHeldMessages ?? DEFAULT_MAX_HELD_MESSAGES) >> 1)
    this.isRaw = codec === raw
    this.demux = new ControlDemux(this.deliver, this.onControl)
    this.left = this.closed.then((error) => (error === undefined ? { type: 'closed' } : { type: 'failed', error }))
    // Counters are final when the link is closed: the channel counts what it never wrote once its socket closed.
    void channel.closed.then((error) => {
      clearInterval(this.timer)
      this.released(error)
    })
    this.timer = setInterval(this.tick, timing.heartbeatInterval)
    this.timer.unref()
  }

  /** Starts reading. Call after the peer has been handed to subscribers (they subscribe synchronously). */
  start(): void {
    // Straight from the channel's kernel (no Subscriber wrapping per frame: the 64 B hot path).
    observeSource(this.channel, {
      next: this.onFrame,
      error: (e: unknown) => this.fail(e),
      // The stream ended: clean only after a goodbye (or when we were closing); a process that
      // died with nothing unread ends its socket like a clean close, without the goodbye.
      complete: () => (this.saidGoodbye || this.state !== OPEN || !this.farSaysGoodbye ? this.endInbound() : this.fail(new ConnectionError(`peer ${this.id} ended the connection without a goodbye`))),
      closed: false,
    })
  }

  send(value: Out): void {
    if (this.state !== OPEN) {
      this.stats.droppedHere++
      return
    }
    if (this.isRaw && value instanceof Uint8Array && value.length > 0) {
      this.channel.send(value)
      return
    }
    let bytes: Uint8Array
    try {
      bytes = encodeWith(this.codec, value)
    } catch (e) {
      this.fail(e instanceof EncodeError ? e : new EncodeError(this.codec.name, e))
      return
    }
    this.sendBytes(bytes)
  }

  /** Sends already-encoded bytes (used by broadcast: encode once, send to all). */
  sendBytes(bytes: Uint8Array): void {
    if (this.state !== OPEN) this.stats.droppedHere++
    else if (bytes.length > 0) this.channel.send(bytes)
    else this.sendEmpty()
  }

  /** Fails the link with `error` (the mesh's own reasons: superseded, closed). */
  terminate(error: RxnetError): void {
    this.fail(error)
  }

  /** Waits on the channel (the one send buffer); rejects with `ERR_CLOSED` once the link is ending. */
  override whenWritable(options: WaitOptions = {}): Promise<void> {
    if (this.writable) return Promise.resolve()
    if (this.state !== OPEN) return Promise.reject(new ClosedError('peer', this.state.error))
    return this.channel.whenWritable(options)
  }

  protected hasRoom(): boolean {
    return this.channel.writable
  }

  /** The first subscriber came: reading resumes; a goodbye that waited for the held messages to be taken is answered. */
  protected override onObserved(observed: boolean): void {
    if (!observed) return
    if (this.paused) this.resumeReading()
    if (this.saidGoodbye) void this.close()
  }

  private resumeReading(): void {
    this.paused = false
    this.lastSeen = this.lastTick = Date.now() // what we did not read cannot count against the peer
    this.socket.resume()
  }

  /**
   * Closing is a goodbye exchange: the side that closes first sends goodbye and ends its stream
   * only once the far side's goodbye came back (so a far side that never takes what it was sent
   * makes `close()` time out and abort, as on every Connection); the answering side sends its
   * goodbye and ends at once. The goodbye goes behind what is queued: now if it fits, else once
   * the queue has drained to half (the close timeout bounds the wait). Nothing is sent after it,
   * so it cannot be split.
   */
  protected startClose(): void {
    if (this.paused) this.resumeReading() // the far side's goodbye is only seen by reading (unobserved messages are dropped, counted)
    if (!this.farSaysGoodbye) return void this.channel.close() // rxnet 0.1: it knows no goodbye; ending our stream is the close
    const answering = this.saidGoodbye
    const send = (): void => {
      this.queueControl({ kind: 'goodbye' })
      if (answering || this.saidGoodbye) void this.channel.close()
    }
    if (this.channel.stats.bufferedBytes + 4 <= this.timing.highWaterMark) send()
    else this.channel.whenWritable().then(send, () => undefined)
  }

  protected destroy(error: RxnetError): void {
    clearInterval(this.timer)
    this.channel.abort(error)
  }

  /**
   * An empty user message is a control pair (marker + `empty`): straight to the socket when
   * nothing is queued, else queued as two frames if both fit without meeting the overflow policy
   * (so the pair is never split); otherwise the policy applies to it as a whole. Under
   * `'drop-oldest'` a queued pair could lose its first half to a later message, so there it is
   * dropped (counted) instead of queued.
   */
  private sendEmpty(): void {
    if (this.writeControl({ kind: 'empty' })) return
    if (this.timing.overflow !== 'drop-oldest' && this.queueControl({ kind: 'empty' })) return
    if (this.timing.overflow === 'error') this.fail(new BufferOverflowError('mesh peer send buffer', this.timing.highWaterMark))
    else this.stats.droppedHere++
  }

  /**
   * Sends a stats summary as a control message, like an empty message (never split, never past
   * the high-water mark); false when it could not go (the caller counts it).
   */
  sendSummary(body: Uint8Array): boolean {
    if (this.state !== OPEN) return false
    const m: ControlMessage = { kind: 'summary', body }
    return this.writeControl(m) || (this.timing.overflow !== 'drop-oldest' && this.queueControl(m))
  }

  /** Writes a control message to the socket if the channel has nothing queued (order holds); false otherwise. */
  private writeControl(m: ControlMessage): boolean {
    if (this.controlInFlight || this.socket.destroyed || this.channel.state !== OPEN || this.channel.stats.bufferedBytes !== this.socket.writableLength) return false
    // One at a time: behind a stalled reader, heartbeats must not pile up in the socket.
    this.controlInFlight = true
    this.socket.write(controlWire(m), this.onControlWritten)
    return true
  }

  private readonly onControlWritten = (): void => {
    this.controlInFlight = false
  }

  /** Queues a control message behind the user messages if both its frames fit under the high-water mark; false otherwise. */
  private queueControl(m: ControlMessage): boolean {
    const body = encodeControl(m)
    if (this.channel.stats.bufferedBytes + body.length + 2 > this.timing.highWaterMark) return false
    this.channel.send(CONTROL_MARKER)
    this.channel.send(body)
    this.stats.controlOut += 2
    return true
  }

  private readonly tick = (): void => {
    if (this.state !== OPEN) return
    const now = Date.now()
    if (this.paused) this.lastSeen = now // not reading: silence is ours
    if (this.heard) {
      this.heard = false
      this.lastSeen = this.lastTick
    }
    this.lastTick = now
    if (now - this.lastSeen > this.timing.failureTimeout) {
      this.fail(new PeerTimeoutError(this.id, this.timing.failureTimeout))
      return
    }
    this.writeControl({ kind: 'ping', time: performance.now() })
  }

  private readonly onFrame = (frame: Uint8Array): void => {
    this.heard = true
    try {
      this.demux.push(frame)
    } catch (e) {
      this.fail(e)
    }
  }

  private readonly onControl = (m: ControlMessage, bodyBytes: number): void => {
    this.stats.controlIn += 2
    this.stats.controlBytesIn += bodyBytes
    switch (m.kind) {
      case 'ping':
        if (this.state === OPEN) this.writeControl({ kind: 'pong', time: m.time })
        return
      case 'pong':
        this.rtt = performance.now() - m.time
        return
      case 'empty':
        return this.deliver(new Uint8Array(0))
      case 'goodbye':
        this.saidGoodbye = true
        // Our own goodbye went first: the exchange is complete, end our stream.
        if (this.state !== OPEN) void this.channel.close()
        // Answer now, unless messages wait for a subscriber (then when one comes: onObserved).
        else if (this.subscribers.length > 0 || this.holding === 0) void this.close()
        return
      case 'summary':
        this.onSummary?.(m.body)
        return
    }
  }

  private readonly deliver = (frame: Uint8Array): void => {
    if (this.isRaw) this.emit(frame as In)
    else {
      let value: In
      try {
        value = decodeWith(this.codec, frame) as In
      } catch (e) {
        this.fail(e)
        return
      }
      this.emit(value)
    }
    // Held while nobody subscribes, bounded: past half the bound, stop reading (backpressure to
    // the far side, nothing lost) until a subscriber comes.
    if (this.subscribers.length === 0 && !this.paused && this.state === OPEN && this.holding >= this.pauseAt) {
      this.paused = true
      this.socket.pause()
    }
  }
}
