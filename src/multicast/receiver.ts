/**
 * The receive / verify path of a multicast channel: parses a datagram's header, drops own
 * echoes, authenticates (with a secret) before any per-sender state is touched, drops
 * duplicates and replays by the sender's sequence window, counts gaps and late arrivals, and
 * reports every dropped datagram on the channel's `events$`. Pure bookkeeping over a
 * {@link Stats}: the channel (`./multicast.ts`) owns the socket and hands each datagram in.
 * @module
 */
import type { RemoteInfo } from 'node:dgram'
import type { Subject } from 'rxjs'
import { BadDatagramError } from '../errors.js'
import { open } from './crypto.js'
import { HEADER_BYTES, decodeBody, parseHeader } from './datagram.js'
import type { DatagramRejectReason, MulticastEvent, MulticastSender, Resolved, SenderInfo } from './options.js'
import type { Stats } from './stats.js'
import { SequenceWindow } from './window.js'

/** What the receiver keeps per sender. */
export interface SenderEntry {
  window: SequenceWindow
  from: MulticastSender
}

/** What an accepted datagram carries: its messages, in order, and who sent them. */
export interface Accepted {
  readonly messages: Uint8Array[]
  readonly from: MulticastSender
}

/** Per-sender sequence windows and the checks every inbound datagram goes through. */
export class Receiver {
  constructor(
    private readonly opts: Pick<Resolved, 'replayWindow' | 'maxSenders'>,
    private readonly key: Buffer | null,
    private readonly stats: Stats,
    /** Our own current sender id (it changes when the sequence counter would wrap). */
    private readonly ownId: () => string,
    private readonly events: Subject<MulticastEvent>,
    /** Senders heard from, oldest first (the oldest is forgotten beyond `maxSenders`); `stats.senders` counts it. */
    private readonly senders: Map<string, SenderEntry>,
  ) {}

  /** Checks one datagram; its messages if it is accepted, else `null` (dropped and counted). */
  accept(buf: Buffer, rinfo: RemoteInfo): Accepted | null {
    const h = parseHeader(buf)
    if (typeof h === 'string') return this.reject(h, rinfo)
    if (h.senderId === this.ownId()) {
      this.stats.echoes++
      return null
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
    let entry = this.senders.get(h.senderId)
    if (entry !== undefined && entry.window.check(h.seq) !== 'new') {
      entry.window.duplicates++
      if (sealed) this.stats.replayed++
      else this.stats.duplicates++
      return this.reject(sealed ? 'replayed' : 'duplicate', rinfo, h.senderId, h.seq)
    }
    const messages = decodeBody(body)
    if (typeof messages === 'string') return this.reject(messages, rinfo, h.senderId, h.seq)

    if (entry === undefined) {
      if (this.senders.size >= this.opts.maxSenders) {
        const oldest = this.senders.keys().next().value as string
        this.senders.delete(oldest)
      }
      entry = { window: new SequenceWindow(this.opts.replayWindow, h.seq), from: newSender(rinfo, h.senderId) }
      this.senders.set(h.senderId, entry)
    } else {
      const w = entry.window
      const gaps = w.gaps
      w.accept(h.seq)
      if (w.gaps !== gaps) this.stats.gaps += w.gaps - gaps
      else if (w.highest !== h.seq) this.stats.reordered++
      if (entry.from.address !== rinfo.address || entry.from.port !== rinfo.port) entry.from = newSender(rinfo, h.senderId)
    }
    this.stats.datagramsIn++
    return { messages, from: entry.from }
  }

  /** Per-sender counters (`MulticastChannel.senders()`). */
  list(): SenderInfo[] {
    const out: SenderInfo[] = []
    for (const { window: w, from } of this.senders.values()) {
      out.push({ ...from, datagrams: w.datagrams, gaps: w.gaps, reordered: w.reordered, duplicates: w.duplicates })
    }
    return out
  }

  private reject(reason: DatagramRejectReason, rinfo: RemoteInfo, senderId?: string, seq?: number): null {
    if (reason !== 'duplicate' && reason !== 'replayed') this.stats.bad++
    if (!this.events.observed) return null
    const who = `${rinfo.address}:${rinfo.port}${senderId !== undefined ? ` sender ${senderId}` : ''}${seq !== undefined ? ` seq ${seq}` : ''}`
    const error = new BadDatagramError(`${reason} datagram (${rinfo.size} bytes) from ${who}`)
    this.events.next({ type: 'rejected', reason, from: { address: rinfo.address, port: rinfo.port }, error })
    return null
  }
}

function newSender(rinfo: RemoteInfo, senderId: string): MulticastSender {
  return Object.freeze({ address: rinfo.address, port: rinfo.port, senderId })
}
