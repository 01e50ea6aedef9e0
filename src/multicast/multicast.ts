/**
 * The socket adapter: a UDP multicast group as a {@link Channel}. It owns the dgram socket, packs
 * small messages into datagrams, numbers and (with `secret`) seals them, and on the way in drops
 * own echoes, duplicates, replays and anything malformed or forged, counting each.
 * The wire format lives in `./datagram.ts`, sealing in `./crypto.ts`, sequence tracking in `./window.ts`.
 * @module
 */
import { randomBytes } from 'node:crypto'
import dgram from 'node:dgram'
import { isIPv4 } from 'node:net'
import { Observable, Subject, type Observer, type Subscriber } from 'rxjs'
import type { Channel, ChannelStats } from '../channel.js'
import {
  AbortError,
  BadDatagramError,
  ChannelAbortedError,
  ConnectionError,
  DatagramTooLargeError,
  InvalidArgumentError,
  RxnetError,
} from '../errors.js'
import { varintLength } from '../framing/varint.js'
import { BoundedQueue, DEFAULT_OVERFLOW, OVERFLOW_POLICIES, type OverflowPolicy } from '../queue.js'
import { deriveKey, open, sealInPlace } from './crypto.js'
import {
  HEADER_BYTES,
  MAX_UDP_PAYLOAD,
  SENDER_ID_BYTES,
  TAG_BYTES,
  decodeBody,
  maxMessageSize,
  overhead,
  parseHeader,
  senderIdToHex,
  writeBody,
  writeHeader,
} from './datagram.js'
import { SequenceWindow } from './window.js'

/** Default group: administratively scoped (239.0.0.0/8, RFC 2365), never routed off-site. */
export const DEFAULT_MULTICAST_GROUP = '239.255.0.2'
/** Default UDP port of the group. */
export const DEFAULT_MULTICAST_PORT = 4455
/**
 * Default largest datagram (UDP payload), header included: 1400 bytes fits a 1500-byte Ethernet
 * MTU with room for IP options and common tunnel / VPN encapsulations, so nothing is IP-fragmented.
 */
export const DEFAULT_MAX_DATAGRAM = 1400
/** Default byte budget of the send buffer: 1 MiB. */
export const DEFAULT_MULTICAST_HIGH_WATER_MARK = 1024 * 1024

/** Options of {@link multicast}. */
export interface MulticastOptions {
  /** IPv4 multicast group to join and send to. @default '239.255.0.2' ({@link DEFAULT_MULTICAST_GROUP}) */
  group?: string
  /** UDP port every member binds (shared with `reuseAddr`). @default 4455 ({@link DEFAULT_MULTICAST_PORT}) */
  port?: number
  /**
   * IPv4 address of the interface used for membership and for sending (`'127.0.0.1'` keeps
   * everything on this host, unprivileged). @default undefined: the system's default multicast interface
   */
  interface?: string
  /** IP time-to-live of sent datagrams (1 = this link only). @default 1 */
  ttl?: number
  /** Deliver our datagrams to other sockets on this host (our own echoes are dropped either way). @default true */
  loopback?: boolean
  /** Shared secret: datagrams are sealed with AES-256-GCM under a key derived by HKDF-SHA256. @default undefined (plain) */
  secret?: string | Uint8Array
  /** Largest datagram sent, header included; small messages are packed up to it. @default 1400 ({@link DEFAULT_MAX_DATAGRAM}) */
  maxDatagram?: number
  /** Most bytes buffered for sending before `overflow` applies. @default 1 MiB ({@link DEFAULT_MULTICAST_HIGH_WATER_MARK}) */
  highWaterMark?: number
  /** What a full send buffer does with one more message. @default 'error' (the channel fails with ERR_BUFFER_OVERFLOW) */
  overflow?: OverflowPolicy
  /** Datagrams handed to the socket and not yet confirmed sent, at most. @default 64 */
  maxInFlight?: number
  /** Per-sender duplicate / replay window, in datagrams (a power of two, 32..65536). @default 1024 */
  replayWindow?: number
  /** Senders tracked at once; the oldest is forgotten beyond it. @default 4096 */
  maxSenders?: number
  /**
   * Local address the socket binds. On Linux binding the group address means the socket only
   * receives that group's datagrams (a socket bound to 0.0.0.0 gets every group joined on the
   * port by anyone on the host). @default the group on Linux, '0.0.0.0' elsewhere
   */
  bind?: string
  /** SO_RCVBUF in bytes (capped by the OS). @default undefined (the OS default) */
  recvBufferSize?: number
  /** SO_SNDBUF in bytes (capped by the OS). @default undefined (the OS default) */
  sendBufferSize?: number
  /** Period of `stats$` snapshots, ms. @default 1000 */
  statsInterval?: number
  /** Closes the channel when aborted. @default undefined */
  signal?: AbortSignal
}

/** Defaults of {@link MulticastOptions} (`interface`, `secret`, `bind`, buffer sizes and `signal` have none). */
export const DEFAULT_MULTICAST_OPTIONS = {
  group: DEFAULT_MULTICAST_GROUP,
  port: DEFAULT_MULTICAST_PORT,
  ttl: 1,
  loopback: true,
  maxDatagram: DEFAULT_MAX_DATAGRAM,
  highWaterMark: DEFAULT_MULTICAST_HIGH_WATER_MARK,
  overflow: DEFAULT_OVERFLOW as OverflowPolicy,
  maxInFlight: 64,
  replayWindow: 1024,
  maxSenders: 4096,
  statsInterval: 1000,
} as const satisfies MulticastOptions

/** Who sent a message: the datagram's source address and the sender's channel id. */
export interface MulticastSender {
  /** Source IP address of the datagram. */
  readonly address: string
  /** Source UDP port of the datagram. */
  readonly port: number
  /** The sending channel's id (16 hex digits, see {@link MulticastChannel.id}). */
  readonly senderId: string
}

/** One message received from the group. */
export interface MulticastMessage {
  /** The message bytes, as sent. */
  readonly data: Uint8Array
  /** Its sender. */
  readonly from: MulticastSender
}

/** Why a received datagram was dropped. */
export type DatagramRejectReason =
  | 'truncated' // shorter than a header
  | 'foreign' // not an rxnet datagram (wrong magic byte)
  | 'version' // unknown wire version or flags
  | 'malformed' // body lengths do not add up
  | 'unsealed' // plain datagram on a channel with a secret
  | 'sealed' // sealed datagram on a channel without a secret
  | 'forged' // failed AES-GCM authentication (wrong key, forged or garbled)
  | 'replayed' // sealed datagram already accepted, or older than the replay window
  | 'duplicate' // plain datagram already accepted, or older than the window

/** A dropped datagram, as reported on {@link MulticastChannel.rejected$}. */
export interface DatagramRejection {
  readonly reason: DatagramRejectReason
  /** Source of the datagram. */
  readonly from: { readonly address: string; readonly port: number }
  /** The typed error describing it (`code` `ERR_BAD_DATAGRAM`). */
  readonly error: BadDatagramError
}

/** Counters of a {@link MulticastChannel}. `messages*` / `bytes*` count messages, `datagrams*` datagrams. */
export interface MulticastStats extends ChannelStats {
  /** Datagrams accepted (their messages went to `source`). */
  datagramsIn: number
  /** Datagrams sent. */
  datagramsOut: number
  /** Our own datagrams looped back to us, dropped. */
  echoes: number
  /** Plain datagrams received twice (or too old for the window), dropped. */
  duplicates: number
  /** Sealed datagrams received twice (or too old for the replay window), dropped. */
  replayed: number
  /** Malformed, foreign, forged or mis-sealed datagrams, dropped. */
  bad: number
  /** Sequence numbers skipped, over all senders (datagrams lost, unless they arrive late: see `reordered`). */
  gaps: number
  /** Datagrams that arrived after a later one of the same sender (each fills a gap). */
  reordered: number
  /** Datagrams the socket failed to send. */
  sendErrors: number
  /** Senders tracked now. */
  senders: number
}

/** What this receiver knows about one sender. */
export interface SenderInfo {
  readonly senderId: string
  readonly address: string
  readonly port: number
  /** Datagrams accepted from it. */
  readonly datagrams: number
  /** Its sequence numbers skipped (lost, unless they arrived late). */
  readonly gaps: number
  /** Its datagrams that arrived late. */
  readonly reordered: number
  /** Its datagrams dropped as duplicates or replays. */
  readonly duplicates: number
}

/** A UDP multicast group as a Channel: `source` emits `{ data, from }`, `send(bytes)` sends to the group. */
export interface MulticastChannel extends Channel<MulticastMessage, Uint8Array> {
  /** This channel's sender id (16 hex digits), carried in every datagram it sends. */
  readonly id: string
  /** Live counters. */
  readonly stats: MulticastStats
  /** Snapshots of `stats`: one on subscribe, then every `statsInterval` ms; completes on close. */
  readonly stats$: Observable<MulticastStats>
  /** Every dropped datagram except own echoes (hot); completes on close. */
  readonly rejected$: Observable<DatagramRejection>
  /** Largest message `send` accepts (`maxDatagram` minus framing). */
  readonly maxMessageSize: number
  /** Resolves once the socket is bound and has joined the group (sends before that are queued). */
  readonly ready: Promise<void>
  /** Resolves when the socket has closed, however it closed. */
  readonly closed: Promise<void>
  /** Per-sender counters. */
  senders(): SenderInfo[]
  /** Sends what is queued, leaves the group, closes the socket; `source` completes. Idempotent. */
  close(): Promise<void>
  [Symbol.asyncDispose](): Promise<void>
}

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

type Resolved = Required<Omit<MulticastOptions, 'interface' | 'secret' | 'recvBufferSize' | 'sendBufferSize' | 'signal'>> &
  Pick<MulticastOptions, 'interface' | 'secret' | 'recvBufferSize' | 'sendBufferSize' | 'signal'>

function resolveOptions(options: MulticastOptions): Resolved {
  const o: Record<string, unknown> = { ...DEFAULT_MULTICAST_OPTIONS }
  for (const [k, v] of Object.entries(options)) if (v !== undefined) o[k] = v
  const r = o as unknown as Resolved
  const int = (k: keyof Resolved, min: number, max: number): void => {
    const v = r[k] as unknown
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
      throw new InvalidArgumentError(`${String(k)} must be an integer in ${min}..${max}, got ${String(v)}`)
    }
  }
  if (typeof r.group !== 'string' || !isIPv4(r.group) || Number(r.group.split('.')[0]) < 224 || Number(r.group.split('.')[0]) > 239) {
    throw new InvalidArgumentError(`group must be an IPv4 multicast address (224.0.0.0/4), got ${String(r.group)}`)
  }
  if (r.interface !== undefined && (typeof r.interface !== 'string' || !isIPv4(r.interface))) {
    throw new InvalidArgumentError(`interface must be the IPv4 address of an interface, got ${String(r.interface)}`)
  }
  if (r.bind === undefined) r.bind = process.platform === 'linux' ? r.group : '0.0.0.0'
  if (typeof r.bind !== 'string' || !isIPv4(r.bind)) throw new InvalidArgumentError(`bind must be an IPv4 address, got ${String(r.bind)}`)
  int('port', 1, 65535)
  int('ttl', 0, 255)
  const sealed = r.secret !== undefined
  int('maxDatagram', overhead(sealed) + 2, MAX_UDP_PAYLOAD)
  int('highWaterMark', 1, Number.MAX_SAFE_INTEGER)
  int('maxInFlight', 1, 1 << 20)
  int('replayWindow', 32, 65536)
  if ((r.replayWindow & (r.replayWindow - 1)) !== 0) throw new InvalidArgumentError(`replayWindow must be a power of two, got ${r.replayWindow}`)
  int('maxSenders', 1, 1 << 24)
  int('statsInterval', 1, 2 ** 31 - 1)
  if (r.recvBufferSize !== undefined) int('recvBufferSize', 1, 2 ** 31 - 1)
  if (r.sendBufferSize !== undefined) int('sendBufferSize', 1, 2 ** 31 - 1)
  if (typeof r.loopback !== 'boolean') throw new InvalidArgumentError('loopback must be a boolean')
  if (!OVERFLOW_POLICIES.includes(r.overflow)) throw new InvalidArgumentError(`overflow must be one of ${OVERFLOW_POLICIES.join(', ')}`)
  if (r.signal?.aborted) throw new AbortError(r.signal.reason)
  return r
}

const sizeOfMessage = (p: Uint8Array): number => p.length + varintLength(p.length)

interface SenderEntry {
  window: SequenceWindow
  from: MulticastSender
}

type State = 'open' | 'closing' | 'closed'
type Terminal = { kind: 'complete' } | { kind: 'error'; error: unknown }

class MulticastChannelImpl implements MulticastChannel {
  readonly source: Observable<MulticastMessage>
  readonly sink: Observer<Uint8Array>
  readonly stats: Stats
  readonly stats$: Observable<MulticastStats>
  readonly rejected$: Observable<DatagramRejection>
  readonly maxMessageSize: number
  readonly ready: Promise<void>
  readonly closed: Promise<void>
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
  private readonly rejects = new Subject<DatagramRejection>()
  private readonly statsSubscribers = new Set<Subscriber<MulticastStats>>()
  private readonly sendersById = new Map<string, SenderEntry>()
  private idleWaiters: (() => void)[] = []
  private resolveReady!: () => void
  private rejectReady!: (e: unknown) => void
  private resolveClosed!: () => void

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
      error: (e) => this.fail(new ChannelAbortedError(e)),
      complete: () => void this.close(),
    }
    this.stats$ = new Observable<MulticastStats>((subscriber) => this.subscribeStats(subscriber))
    this.rejected$ = this.rejects.asObservable()

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

  send(data: Uint8Array): void {
    if (!(data instanceof Uint8Array)) throw new InvalidArgumentError('multicast send() takes a Uint8Array')
    if (this.state !== 'open') {
      this.stats.droppedAfterClose++
      return
    }
    if (data.length > this.maxMessageSize) throw new DatagramTooLargeError(data.length, this.maxMessageSize)
    let accepted: boolean
    try {
      accepted = this.queue.push(data)
    } catch (e) {
      this.fail(e)
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

  close(): Promise<void> {
    if (this.closing !== null) return this.closing
    if (this.state === 'closed') return this.closed
    this.state = 'closing'
    this.closing = this.drain().then(() => this.finish({ kind: 'complete' }))
    return this.closing
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
      const dg = Buffer.allocUnsafe(HEADER_BYTES + bytes + (sealed ? TAG_BYTES : 0))
      writeHeader(dg, this.idBytes, this.seq, sealed)
      writeBody(dg, HEADER_BYTES, items, from, to)
      if (this.key !== null) sealInPlace(this.key, dg)
      this.advanceSeq()
      q.consume(to, bytes)
      this.stats.datagramsOut++
      this.stats.messagesOut += to - from
      this.stats.bytesOut += payload
      this.inFlight++
      this.socket.send(dg, port, group, this.afterSend)
    }
    if (q.head >= q.items.length && this.inFlight === 0) this.wakeIdle()
  }

  private readonly afterSend = (err: Error | null): void => {
    this.inFlight--
    if (err) this.stats.sendErrors++
    if (this.queue.length > 0) {
      if (!this.scheduled) this.flush()
    } else if (this.inFlight === 0) {
      this.wakeIdle()
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
    return new Promise((resolve) => {
      this.idleWaiters.push(resolve)
      if (this.bound && this.queue.length === 0 && this.inFlight === 0) this.wakeIdle()
    })
  }

  private wakeIdle(): void {
    const w = this.idleWaiters
    this.idleWaiters = []
    for (const resolve of w) resolve()
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
    else if (this.idleWaiters.length > 0) this.wakeIdle()
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
    let entry = this.sendersById.get(h.senderId)
    if (entry !== undefined && entry.window.check(h.seq) !== 'new') {
      entry.window.duplicates++
      if (sealed) this.stats.replayed++
      else this.stats.duplicates++
      return this.reject(sealed ? 'replayed' : 'duplicate', rinfo, h.senderId, h.seq)
    }
    let body: Uint8Array
    if (this.key !== null) {
      const plain = open(this.key, buf)
      if (plain === null) return this.reject('forged', rinfo, h.senderId, h.seq)
      body = plain
    } else {
      body = buf.subarray(HEADER_BYTES)
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
      this.subject.next({ data, from })
    }
  }

  private reject(reason: DatagramRejectReason, rinfo: dgram.RemoteInfo, senderId?: string, seq?: number): void {
    if (reason !== 'duplicate' && reason !== 'replayed') this.stats.bad++
    if (!this.rejects.observed) return
    const who = `${rinfo.address}:${rinfo.port}${senderId !== undefined ? ` sender ${senderId}` : ''}${seq !== undefined ? ` seq ${seq}` : ''}`
    const error = new BadDatagramError(`${reason} datagram (${rinfo.size} bytes) from ${who}`)
    this.rejects.next({ reason, from: { address: rinfo.address, port: rinfo.port }, error })
  }

  private readonly onError = (err: Error): void => {
    this.fail(err instanceof RxnetError ? err : new ConnectionError(`multicast socket failed: ${err.message}`, err))
  }

  private readonly onAbort = (): void => {
    void this.close()
  }

  private subscribe(subscriber: Subscriber<MulticastMessage>): () => void {
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

  /** Fails the channel: queued messages are discarded, `source` errors with `e`, the socket closes. */
  private fail(e: unknown): void {
    this.finish({ kind: 'error', error: e })
  }

  private finish(t: Terminal): void {
    if (this.terminal !== null) return
    this.terminal = t
    this.state = 'closed'
    this.opts.signal?.removeEventListener('abort', this.onAbort)
    this.queue.clear()
    this.wakeIdle()
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
      this.socket.close(() => this.resolveClosed())
    } catch {
      this.resolveClosed()
    }
    if (t.kind === 'error') {
      this.rejectReady(t.error)
      this.subject.error(t.error)
    } else {
      this.rejectReady(new ConnectionError('multicast channel closed before it was ready'))
      this.subject.complete()
    }
    this.rejects.complete()
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

class Stats implements MulticastStats {
  messagesIn = 0
  bytesIn = 0
  messagesOut = 0
  bytesOut = 0
  datagramsIn = 0
  datagramsOut = 0
  echoes = 0
  duplicates = 0
  replayed = 0
  bad = 0
  gaps = 0
  reordered = 0
  sendErrors = 0
  droppedAfterClose = 0
  readonly #queue: BoundedQueue<Uint8Array>
  readonly #senders: Map<string, unknown>
  constructor(queue: BoundedQueue<Uint8Array>, senders: Map<string, unknown>) {
    this.#queue = queue
    this.#senders = senders
  }
  get dropped(): number {
    return this.#queue.dropped + this.droppedAfterClose
  }
  get overflows(): number {
    return this.#queue.overflows
  }
  get bufferedBytes(): number {
    return this.#queue.bytes
  }
  get senders(): number {
    return this.#senders.size
  }
  /** A plain-object copy of every counter. */
  snapshot(): MulticastStats {
    return {
      messagesIn: this.messagesIn,
      bytesIn: this.bytesIn,
      messagesOut: this.messagesOut,
      bytesOut: this.bytesOut,
      dropped: this.dropped,
      overflows: this.overflows,
      bufferedBytes: this.bufferedBytes,
      datagramsIn: this.datagramsIn,
      datagramsOut: this.datagramsOut,
      echoes: this.echoes,
      duplicates: this.duplicates,
      replayed: this.replayed,
      bad: this.bad,
      gaps: this.gaps,
      reordered: this.reordered,
      sendErrors: this.sendErrors,
      senders: this.senders,
    }
  }
}
