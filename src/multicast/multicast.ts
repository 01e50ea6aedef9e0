/**
 * The socket adapter: a UDP multicast group as a `Channel`. It owns the dgram socket, packs
 * small messages into datagrams, numbers and (with `secret`) seals them, and on the way in drops
 * own echoes, duplicates, replays and anything malformed or forged, counting each.
 * The wire format lives in `./datagram.ts`, sealing in `./crypto.ts`, sequence tracking in
 * `./window.ts`, options and public types in `./options.ts`, counters in `./stats.ts`.
 * @module
 */
import { randomBytes } from 'node:crypto'
import dgram from 'node:dgram'
import { Observable, Subject, filter, map, type Observer, type Subscriber } from 'rxjs'
import { BadDatagramError, ChannelAbortedError, ClosedError, ConnectionError, DatagramTooLargeError, EncodeError, InvalidArgumentError, RxnetError, TimeoutError } from '../errors.js'
import type { CloseOptions, WaitOptions } from '../connection.js'
import { Waiters, waitFor } from '../wait.js'
import { varintLength } from '../framing/varint.js'
import { BoundedQueue } from '../queue.js'
import { encodeBatch } from '../framing/encoder.js'
import { deriveKey, open, sealParts } from './crypto.js'
import { HEADER_BYTES, SENDER_ID_BYTES, decodeBody, encodeHeader, maxMessageSize, overhead, parseHeader, senderIdToHex } from './datagram.js'
import {
  resolveOptions,
  type DatagramRejectReason,
  type DatagramRejection,
  type MulticastEvent,
  type MulticastChannel,
  type MulticastMessage,
  type MulticastOptions,
  type MulticastSender,
  type MulticastStats,
  type Resolved,
  type SenderInfo,
} from './options.js'
import { SequenceWindow } from './window.js'
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

interface SenderEntry {
  window: SequenceWindow
  from: MulticastSender
}

type State = 'open' | 'closing' | 'closed'
type Terminal = { kind: 'complete' } | { kind: 'error'; error: RxnetError }

class MulticastChannelImpl implements MulticastChannel {
  readonly source: Observable<MulticastMessage>
  readonly sink: Observer<Uint8Array>
  readonly stats: Stats
  readonly stats$: Observable<MulticastStats>
  readonly events$: Observable<MulticastEvent>
  readonly rejected$: Observable<DatagramRejection>
  readonly maxMessageSize: number
  readonly ready: Promise<void>
  readonly closed: Promise<RxnetError | undefined>
  id: string

  private idBytes: Buffer
  private seq = 0
  private state: State = 'open'
  private terminal: Terminal | null = null
  private bound = false
  private scheduled = false
  private inFlight = 0
  private closing: Promise<void> | null = null
  private readonly socket: dgram.Socket
  private readonly key: Buffer | null
  private readonly room: number
  private readonly queue: BoundedQueue<Uint8Array>
  private readonly subject = new Subject<MulticastMessage>()
  private readonly events = new Subject<MulticastEvent>()
  private readonly statsSubscribers = new Set<Subscriber<MulticastStats>>()
  private readonly sendersById = new Map<string, SenderEntry>()
  /** Callers of drain(), woken once the send buffer is empty (or the channel ended). */
  private readonly idle = new Waiters()
  /** whenWritable() callers, woken when the send buffer is under half its high-water mark. */
  private readonly writers = new Waiters()
  /** Inbound messages that arrived while nobody subscribed (bounded by maxHeldMessages). */
  private held: MulticastMessage[] = []
  private resolveReady!: () => void
  private rejectReady!: (e: unknown) => void
  private resolveClosed!: (e: RxnetError | undefined) => void

  constructor(private readonly opts: Resolved) {
    this.key = opts.secret !== undefined ? deriveKey(opts.secret) : null
    const sealed = this.key !== null
    this.room = opts.maxDatagram - overhead(sealed)
    this.maxMessageSize = maxMessageSize(opts.maxDatagram, sealed)
    this.idBytes = randomBytes(SENDER_ID_BYTES)
    this.id = senderIdToHex(this.idBytes)
    this.queue = new BoundedQueue(opts.highWaterMark, opts.overflow, sizeOfMessage, 'multicast send buffer')
    this.stats = new Stats(this.queue, this.sendersById)

    this.ready = new Promise((resolve, reject) => {
      this.resolveReady = resolve
      this.rejectReady = reject
    })
    this.ready.catch(noop)
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve))

    this.source = new Observable<MulticastMessage>((subscriber) => this.subscribe(subscriber))
    this.sink = {
      next: (data) => this.send(data),
      error: (e) => this.abort(e),
      complete: () => void this.close(),
    }
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
    this.socket.on('message', this.onMessage)
    this.socket.on('error', this.onError)
    // exclusive: cluster workers bind their own socket instead of sharing the primary's handle.
    this.socket.bind({ port: opts.port, address: opts.bind, exclusive: true }, this.onListening)
    opts.signal?.addEventListener('abort', this.onAbort, { once: true })
  }

  /** Queues `data` for the group; never throws (Connection contract): a message it refuses fails the channel with `ERR_ENCODE`. */
  send(data: Uint8Array): void {
    if (this.state !== 'open') {
      this.stats.droppedAfterClose++
      return
    }
    if (!(data instanceof Uint8Array)) return this.fail(new EncodeError('bytes', new InvalidArgumentError(`multicast send() takes a Uint8Array, got ${typeof data}`)))
    if (data.length > this.maxMessageSize) return this.fail(new EncodeError('bytes', new DatagramTooLargeError(data.length, this.maxMessageSize)))
    let accepted: boolean
    try {
      accepted = this.queue.push(data)
    } catch (e) {
      this.fail(e as RxnetError) // ERR_BUFFER_OVERFLOW under the 'error' policy
      return
    }
    if (accepted && !this.scheduled) {
      this.scheduled = true
      process.nextTick(this.flush)
    }
  }

  senders(): SenderInfo[] {
    const out: SenderInfo[] = []
    for (const { window: w, from } of this.sendersById.values()) {
      out.push({ ...from, datagrams: w.datagrams, gaps: w.gaps, reordered: w.reordered, duplicates: w.duplicates })
    }
    return out
  }

  get writable(): boolean {
    return this.state === 'open' && this.queue.bytes <= this.opts.highWaterMark >> 1
  }

  whenWritable(options: WaitOptions = {}): Promise<void> {
    if (this.writable) return Promise.resolve()
    if (this.state !== 'open') return Promise.reject(this.terminal?.kind === 'error' ? this.terminal.error : new ClosedError('multicast channel'))
    return this.writers.wait(options.signal)
  }

  /**
   * Sends what is queued, leaves the group, closes the socket; `source` completes. If the queue
   * has not drained within `timeout` (or `signal` fires) the channel is aborted instead. Idempotent.
   */
  close(options: CloseOptions = {}): Promise<void> {
    if (this.closing !== null) return this.closing
    if (this.state === 'closed') return this.closed.then(noop)
    this.state = 'closing'
    this.rejectWriters(new ClosedError('multicast channel'))
    const timeout = options.timeout ?? this.opts.closeTimeout
    // Resolves once the socket has really closed: close() releases every handle.
    this.closing = waitFor(this.drain(), { timeout, signal: options.signal, onTimeout: () => new TimeoutError('graceful close of the multicast channel', timeout) }).then(
      () => this.finish({ kind: 'complete' }),
      (why: unknown) => this.abort(why),
    ).then(() => this.closed.then(noop))
    return this.closing
  }

  /** Ends the channel now: `source` errors with `ERR_ABORTED` (`cause: err`), queued messages are dropped and counted. */
  abort(err?: unknown): void {
    this.fail(new ChannelAbortedError(err))
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  // ---- outbound

  private readonly flush = (): void => {
    this.scheduled = false
    if (!this.bound || this.terminal !== null) return
    const q = this.queue
    const sealed = this.key !== null
    const { port, group, maxInFlight } = this.opts
    while (q.head < q.items.length && this.inFlight < maxInFlight) {
      const items = q.items as Uint8Array[]
      const from = q.head
      let to = from
      let bytes = 0
      let payload = 0
      while (to < items.length) {
        const n = items[to]!.length
        const f = n + varintLength(n)
        if (bytes + f > this.room) break
        bytes += f
        payload += n
        to++
      }
      const header = encodeHeader(this.idBytes, this.seq, sealed)
      const body = encodeBatch(items, from, to, bytes)
      const datagram = this.key !== null ? [header, ...sealParts(this.key, header, body)] : [header, body]
      this.advanceSeq()
      q.consume(to, bytes)
      this.stats.datagramsOut++
      this.stats.messagesOut += to - from
      this.stats.bytesOut += payload
      this.inFlight++
      this.socket.send(datagram, port, group, this.afterSend)
    }
    if (q.head >= q.items.length && this.inFlight === 0) this.idle.resolveAll()
  }

  private readonly afterSend = (err: Error | null): void => {
    this.inFlight--
    if (err) this.stats.sendErrors++
    if (this.writers.size > 0 && this.writable) this.writers.resolveAll()
    if (this.queue.length > 0) {
      if (!this.scheduled) this.flush()
    } else if (this.inFlight === 0) {
      this.idle.resolveAll()
    }
  }

  /** Next sequence number; a fresh sender id before the uint32 counter would wrap (keeps GCM nonces unique). */
  private advanceSeq(): void {
    if (this.seq === 0xffffffff) {
      this.idBytes = randomBytes(SENDER_ID_BYTES)
      this.id = senderIdToHex(this.idBytes)
      this.seq = 0
    } else {
      this.seq++
    }
  }

  /** Resolves once the send buffer is empty and every datagram went to the socket (or the channel ended). */
  private drain(): Promise<void> {
    if (this.terminal !== null) return Promise.resolve()
    const idle = this.idle.wait()
    if (this.bound && this.queue.length === 0 && this.inFlight === 0) this.idle.resolveAll()
    return idle
  }

  // ---- inbound

  private readonly onListening = (): void => {
    if (this.terminal !== null) return
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
    if (this.queue.length > 0) this.flush()
    else this.idle.resolveAll()
  }

  private readonly onMessage = (buf: Buffer, rinfo: dgram.RemoteInfo): void => {
    if (this.terminal !== null) return
    const h = parseHeader(buf)
    if (typeof h === 'string') return this.reject(h, rinfo)
    if (h.senderId === this.id) {
      this.stats.echoes++
      return
    }
    const sealed = this.key !== null
    if (h.sealed !== sealed) return this.reject(sealed ? 'unsealed' : 'sealed', rinfo, h.senderId)
    // Authenticate first: a forgery carrying a real sender id and an old sequence is forged, not a replay.
    let body: Uint8Array
    if (this.key !== null) {
      const plain = open(this.key, buf)
      if (plain === null) return this.reject('forged', rinfo, h.senderId, h.seq)
      body = plain
    } else {
      body = buf.subarray(HEADER_BYTES)
    }
    let entry = this.sendersById.get(h.senderId)
    if (entry !== undefined && entry.window.check(h.seq) !== 'new') {
      entry.window.duplicates++
      if (sealed) this.stats.replayed++
      else this.stats.duplicates++
      return this.reject(sealed ? 'replayed' : 'duplicate', rinfo, h.senderId, h.seq)
    }
    const messages = decodeBody(body)
    if (typeof messages === 'string') return this.reject(messages, rinfo, h.senderId, h.seq)

    if (entry === undefined) {
      if (this.sendersById.size >= this.opts.maxSenders) {
        const oldest = this.sendersById.keys().next().value as string
        this.sendersById.delete(oldest)
      }
      entry = { window: new SequenceWindow(this.opts.replayWindow, h.seq), from: newSender(rinfo, h.senderId) }
      this.sendersById.set(h.senderId, entry)
    } else {
      const w = entry.window
      const gaps = w.gaps
      w.accept(h.seq)
      if (w.gaps !== gaps) this.stats.gaps += w.gaps - gaps
      else if (w.highest !== h.seq) this.stats.reordered++
      if (entry.from.address !== rinfo.address || entry.from.port !== rinfo.port) entry.from = newSender(rinfo, h.senderId)
    }
    this.stats.datagramsIn++
    const from = entry.from
    for (const data of messages) {
      this.stats.messagesIn++
      this.stats.bytesIn += data.length
      if (this.subject.observed) this.subject.next({ data, from })
      else if (this.held.length < this.opts.maxHeldMessages) this.held.push({ data, from })
      else this.stats.droppedIn++
    }
  }

  private reject(reason: DatagramRejectReason, rinfo: dgram.RemoteInfo, senderId?: string, seq?: number): void {
    if (reason !== 'duplicate' && reason !== 'replayed') this.stats.bad++
    if (!this.events.observed) return
    const who = `${rinfo.address}:${rinfo.port}${senderId !== undefined ? ` sender ${senderId}` : ''}${seq !== undefined ? ` seq ${seq}` : ''}`
    const error = new BadDatagramError(`${reason} datagram (${rinfo.size} bytes) from ${who}`)
    this.events.next({ type: 'rejected', reason, from: { address: rinfo.address, port: rinfo.port }, error })
  }

  private readonly onError = (err: Error): void => {
    this.fail(err instanceof RxnetError ? err : new ConnectionError(`multicast socket failed: ${err.message}`, err))
  }

  private readonly onAbort = (): void => {
    void this.close()
  }

  private subscribe(subscriber: Subscriber<MulticastMessage>): () => void {
    // Held messages first, in order, for as long as this subscriber stays.
    while (this.held.length > 0 && !subscriber.closed) subscriber.next(this.held.shift()!)
    const t = this.terminal
    if (t !== null) {
      if (t.kind === 'error') subscriber.error(t.error)
      else subscriber.complete()
      return noop
    }
    const inner = this.subject.subscribe(subscriber)
    return () => inner.unsubscribe()
  }

  private subscribeStats(subscriber: Subscriber<MulticastStats>): () => void {
    subscriber.next(this.stats.snapshot())
    if (this.terminal !== null) {
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

  // ---- lifecycle

  /** Fails the channel: queued messages are discarded (counted), `source` errors with `e`, the socket closes. */
  private fail(e: RxnetError): void {
    this.finish({ kind: 'error', error: e })
  }

  private rejectWriters(e: unknown): void {
    this.writers.rejectAll(e)
  }

  private finish(t: Terminal): void {
    if (this.terminal !== null) return
    this.terminal = t
    this.state = 'closed'
    this.opts.signal?.removeEventListener('abort', this.onAbort)
    this.stats.droppedAfterClose += this.queue.length // never sent: counted as dropped
    this.queue.clear()
    this.idle.resolveAll()
    this.rejectWriters(t.kind === 'error' ? t.error : new ClosedError('multicast channel'))
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
    try {
      this.socket.close(() => this.resolveClosed(t.kind === 'error' ? (t.error as RxnetError) : undefined))
    } catch {
      this.resolveClosed(t.kind === 'error' ? (t.error as RxnetError) : undefined)
    }
    if (t.kind === 'error') {
      this.rejectReady(t.error)
      this.subject.error(t.error)
    } else {
      this.rejectReady(new ConnectionError('multicast channel closed before it was ready'))
      this.subject.complete()
    }
    this.events.complete()
    const snapshot = this.stats.snapshot()
    for (const s of [...this.statsSubscribers]) {
      s.next(snapshot)
      s.complete()
    }
  }
}

function newSender(rinfo: dgram.RemoteInfo, senderId: string): MulticastSender {
  return Object.freeze({ address: rinfo.address, port: rinfo.port, senderId })
}

function noop(): void {}
