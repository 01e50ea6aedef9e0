/**
 * The packing sender of a multicast channel: messages queued in one tick are packed, in order,
 * several to a datagram up to `maxDatagram`, numbered, sealed (with a secret) and handed to the
 * socket on `process.nextTick`, at most `maxInFlight` datagrams at a time. It owns the sender id
 * and the sequence counter; the channel (`./multicast.ts`) owns the socket's lifecycle and
 * starts / stops it.
 * @module
 */
import { randomBytes } from 'node:crypto'
import type dgram from 'node:dgram'
import { encodeBatch } from '../framing/encoder.js'
import { varintLength } from '../framing/varint.js'
import type { BoundedQueue } from '../queue.js'
import { sealParts } from './crypto.js'
import { SENDER_ID_BYTES, encodeHeader, overhead, senderIdToHex } from './datagram.js'
import type { Resolved } from './options.js'
import type { Stats } from './stats.js'

/** Packs a bounded queue of messages into numbered (and sealed) datagrams for the group. */
export class PackingSender {
  /** Our sender id (16 hex digits); a fresh one before the sequence counter would wrap. */
  id: string
  private idBytes: Buffer
  private seq = 0
  private inFlight = 0
  private scheduled = false
  /** True from the socket's bind-and-join until it is torn down: only then are datagrams sent. */
  private running = false
  /** Body bytes a datagram has room for. */
  private readonly room: number

  constructor(
    private readonly socket: dgram.Socket,
    private readonly queue: BoundedQueue<Uint8Array>,
    private readonly key: Buffer | null,
    private readonly opts: Pick<Resolved, 'port' | 'group' | 'maxInFlight' | 'maxDatagram'>,
    private readonly stats: Stats,
    /** Called whenever the send buffer made progress (a datagram went out, or it is idle). */
    private readonly onProgress: () => void,
  ) {
    this.room = opts.maxDatagram - overhead(key !== null)
    this.idBytes = randomBytes(SENDER_ID_BYTES)
    this.id = senderIdToHex(this.idBytes)
  }

  /** Queues one message (the queue's overflow policy applies: it may throw `ERR_BUFFER_OVERFLOW`). */
  push(data: Uint8Array): void {
    if (this.queue.push(data) && !this.scheduled) {
      this.scheduled = true
      process.nextTick(this.flush)
    }
  }

  /** True when nothing is queued or in flight. */
  get idle(): boolean {
    return this.queue.length === 0 && this.inFlight === 0
  }

  /** The socket is bound and joined: send what is queued. */
  start(): void {
    this.running = true
    this.flush()
  }

  /** The socket is being torn down: what is still queued is dropped and counted in `stats.dropped`. */
  stop(): void {
    this.running = false
    this.stats.droppedAfterClose += this.queue.length
    this.queue.clear()
  }

  private readonly flush = (): void => {
    this.scheduled = false
    if (!this.running) return
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
    if (this.idle) this.onProgress()
  }

  private readonly afterSend = (err: Error | null): void => {
    this.inFlight--
    if (err) this.stats.sendErrors++
    if (this.queue.length > 0 && !this.scheduled) this.flush()
    this.onProgress()
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
}
