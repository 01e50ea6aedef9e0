/**
 * The socket adapter: a UDP multicast group as a `Channel`, built on the lifecycle kernel
 * ({@link ConnectionKernel}: state, held-message replay, `whenWritable()` waiters, close-then-abort,
 * `closed`). It owns the dgram socket: binds and joins, hands inbound datagrams to the receive
 * path and outbound messages to the packing sender, and tears the socket down once.
 * The receive / verify path lives in `./receiver.ts`, packing in `./sender.ts`, the wire format in
 * `./datagram.ts`, sealing in `./crypto.ts`, sequence tracking in `./window.ts`, options and public
 * types in `./options.ts`, counters in `./stats.ts`.
 * @module
 */
import dgram from 'node:dgram'
import { Observable, Subject, filter, map, type Subscriber } from 'rxjs'
import { ConnectionError, DatagramTooLargeError, EncodeError, InvalidArgumentError, type RxnetError } from '../errors.js'
import { connectionError, ConnectionKernel, OPEN } from '../lifecycle.js'
import { varintLength } from '../framing/varint.js'
import { BoundedQueue } from '../queue.js'
import { deriveKey } from './crypto.js'
import { maxMessageSize } from './datagram.js'
import {
  resolveOptions,
  type DatagramRejection,
  type MulticastEvent,
  type MulticastChannel,
  type MulticastMessage,
  type MulticastOptions,
  type MulticastStats,
  type Resolved,
  type SenderInfo,
} from './options.js'
import { Receiver, type SenderEntry } from './receiver.js'
import { PackingSender } from './sender.js'
import { Stats } from './stats.js'

/**
 * Joins a UDP multicast group as a {@link MulticastChannel}. Several channels (in one process or
 * many) can share a group and port on one host.
 *
 * @example
 * ```ts
 * import { multicast } from 'rxnet'
 * const mc = multicast({ group: '239.255.0.2', port: 4455, interface: '127.0.0.1', secret: 'k' })
 * mc.source.subscribe(({ data, from }) => console.log(from.senderId, new TextDecoder().decode(data)))
 * mc.send(new TextEncoder().encode('hello group'))
 * await mc.close()
 * ```
 */
export function multicast(options: MulticastOptions = {}): MulticastChannel {
  return new MulticastChannelImpl(resolveOptions(options))
}

const sizeOfMessage = (p: Uint8Array): number => p.length + varintLength(p.length)

class MulticastChannelImpl extends ConnectionKernel<MulticastMessage, Uint8Array> implements MulticastChannel {
  readonly stats: Stats
  readonly stats$: Observable<MulticastStats>
  readonly events$: Observable<MulticastEvent>
  readonly rejected$: Observable<DatagramRejection>
  readonly maxMessageSize: number
  readonly ready: Promise<void>

  /** Bound and joined (datagrams may be sent, membership must be dropped). */
  private bound = false
  /** The socket has been torn down (once, however the channel ended). */
  private down = false
  private readonly socket: dgram.Socket
  private readonly queue: BoundedQueue<Uint8Array>
  private readonly sender: PackingSender
  private readonly receiver: Receiver
  private readonly events = new Subject<MulticastEvent>()
  private readonly statsSubscribers = new Set<Subscriber<MulticastStats>>()
  private resolveReady!: () => void
  private rejectReady!: (e: unknown) => void

  constructor(private readonly opts: Resolved) {
    super(opts)
    const key = opts.secret !== undefined ? deriveKey(opts.secret) : null
    this.maxMessageSize = maxMessageSize(opts.maxDatagram, key !== null)
    this.queue = new BoundedQueue(opts.highWaterMark, opts.overflow, sizeOfMessage, 'multicast send buffer')
    const senders = new Map<string, SenderEntry>()
    this.stats = new Stats(this.queue, senders)

    this.ready = new Promise((resolve, reject) => {
      this.resolveReady = resolve
      this.rejectReady = reject
    })
    this.ready.catch(noop)
    this.stats$ = new Observable<MulticastStats>((subscriber) => this.subscribeStats(subscriber))
    this.events$ = this.events.asObservable()
    this.rejected$ = this.events$.pipe(
      filter((e) => e.type === 'rejected'),
      map(({ type: _, ...rejection }): DatagramRejection => rejection),
    )

    this.socket = dgram.createSocket({
      type: 'udp4',
      reuseAddr: true,
      ...(opts.recvBufferSize !== undefined ? { recvBufferSize: opts.recvBufferSize } : {}),
      ...(opts.sendBufferSize !== undefined ? { sendBufferSize: opts.sendBufferSize } : {}),
    })
    this.sender = new PackingSender(this.socket, this.queue, key, opts, this.stats, this.onProgress)
    this.receiver = new Receiver(opts, key, this.stats, () => this.sender.id, this.events, senders)
    this.socket.on('message', this.onMessage)
    this.socket.on('error', this.onError)
    // exclusive: cluster workers bind their own socket instead of sharing the primary's handle.
    this.socket.bind({ port: opts.port, address: opts.bind, exclusive: true }, this.onListening)
    opts.signal?.addEventListener('abort', this.onAbort, { once: true })
  }

  get id(): string {
    return this.sender.id
  }

  /** Queues `data` for the group; never throws (Connection contract): a message it refuses fails the channel with `ERR_ENCODE`. */
  send(data: Uint8Array): void {
    if (this.state !== OPEN) {
      this.stats.droppedAfterClose++
      return
    }
    if (!(data instanceof Uint8Array)) return this.fail(new EncodeError('bytes', new InvalidArgumentError(`multicast send() takes a Uint8Array, got ${typeof data}`)))
    if (data.length > this.maxMessageSize) return this.fail(new EncodeError('bytes', new DatagramTooLargeError(data.length, this.maxMessageSize)))
    try {
      this.sender.push(data)
    } catch (e) {
      this.fail(e) // ERR_BUFFER_OVERFLOW under the 'error' policy
    }
  }

  senders(): SenderInfo[] {
    return this.receiver.list()
  }

  // ---- kernel hooks

  protected hasRoom(): boolean {
    return this.queue.bytes <= this.opts.highWaterMark >> 1
  }

  /** Graceful close: once the queue has drained (after the bind, if still pending) the group is left. */
  protected startClose(): void {
    if (this.bound && this.sender.idle) this.finishClose()
  }

  /** Failure or abort: queued messages are dropped (counted), the socket closes now. */
  protected destroy(error: RxnetError): void {
    this.teardown(error)
  }

  // ---- socket

  private readonly onListening = (): void => {
    if (this.down) return
    const { ttl, loopback, group } = this.opts
    const iface = this.opts.interface
    try {
      this.socket.setMulticastTTL(ttl)
      this.socket.setMulticastLoopback(loopback)
      if (iface !== undefined) this.socket.setMulticastInterface(iface)
      this.socket.addMembership(group, iface)
    } catch (e) {
      this.fail(new ConnectionError(`cannot join ${group}${iface !== undefined ? ` on ${iface}` : ''}: ${(e as Error).message}`, e))
      return
    }
    this.bound = true
    this.resolveReady()
    this.sender.start()
  }

  private readonly onMessage = (buf: Buffer, rinfo: dgram.RemoteInfo): void => {
    const accepted = this.receiver.accept(buf, rinfo)
    if (accepted === null) return
    const { messages, from } = accepted
    for (const data of messages) {
      this.stats.messagesIn++
      this.stats.bytesIn += data.length
      this.emit({ data, from })
    }
  }

  /** The send buffer made progress: wake writers; a graceful close finishes once it is idle. */
  private readonly onProgress = (): void => {
    if (this.down) return
    this.wakeWriters()
    if (this.state.type === 'closing' && this.state.error === undefined && this.sender.idle) this.finishClose()
  }

  private readonly onError = (err: Error): void => {
    this.fail(connectionError(err, 'multicast socket failed'))
  }

  private readonly onAbort = (): void => {
    void this.close()
  }

  private subscribeStats(subscriber: Subscriber<MulticastStats>): () => void {
    subscriber.next(this.stats.snapshot())
    if (this.down) {
      subscriber.complete()
      return noop
    }
    const timer = setInterval(() => subscriber.next(this.stats.snapshot()), this.opts.statsInterval)
    timer.unref()
    this.statsSubscribers.add(subscriber)
    return () => {
      clearInterval(timer)
      this.statsSubscribers.delete(subscriber)
    }
  }

  // ---- end

  private finishClose(): void {
    this.endInbound()
    this.teardown(undefined)
  }

  /** Leaves the group and closes the socket, once; the kernel hears `released()` when it has closed. */
  private teardown(error: RxnetError | undefined): void {
    if (this.down) return
    this.down = true
    this.opts.signal?.removeEventListener('abort', this.onAbort)
    this.sender.stop()
    if (this.bound) {
      try {
        this.socket.dropMembership(this.opts.group, this.opts.interface)
      } catch {
        // the socket may already be gone; closing it below releases the membership anyway
      }
    }
    this.socket.off('message', this.onMessage)
    this.socket.off('error', this.onError)
    // A late 'error' after close must not crash the process.
    this.socket.on('error', noop)
    this.rejectReady(error ?? new ConnectionError('multicast channel closed before it was ready'))
    this.events.complete()
    const snapshot = this.stats.snapshot()
    for (const s of [...this.statsSubscribers]) {
      s.next(snapshot)
      s.complete()
    }
    try {
      this.socket.close(() => this.released())
    } catch {
      this.released()
    }
  }
}

function noop(): void {}
