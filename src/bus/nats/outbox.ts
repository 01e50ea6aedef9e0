/**
 * The outbox of the bus on NATS: every emitted message, in seq order, until the server has
 * confirmed it (core messages: a round trip, plus one more; durable ones: the JetStream ack).
 * What is left is published again, in order, after a reconnect or a failover.
 * @module
 */
import type { MsgHdrs } from '@nats-io/transport-node'
import { BoundedQueue, type OverflowPolicy } from '../../queue.js'

/** One emitted message. */
export interface Entry {
  readonly seq: number
  readonly subject: string
  readonly payload: Uint8Array
  readonly reply: string | undefined
  readonly headers: MsgHdrs | undefined
  readonly durable: boolean
  /** Forwarded for someone else (a hub's client): its origin and seq go in the headers instead of ours. */
  readonly as: { readonly origin: string; readonly seq: number } | undefined
  acked: boolean
}

/** Bytes an entry counts against the outbox's budget. */
const sizeOf = (e: Entry): number => e.payload.length + e.subject.length + 64

/**
 * Emitted messages not confirmed yet, with the round-trip bookkeeping that releases them: a
 * round trip confirms everything published before it started; a core message leaves one round
 * trip after that (`releasable`), a durable one once the stream has acked it.
 */
export class Outbox {
  /** The seq of the last message pushed (accepted or dropped). */
  seq = 0
  /** Core entries up to here were confirmed by a round trip, one round trip ago: released. */
  releasable = 0
  /** Core entries up to here were confirmed by the last round trip. */
  confirmed = 0
  private readonly queue: BoundedQueue<Entry>

  constructor(highWaterMark: number, overflow: OverflowPolicy) {
    this.queue = new BoundedQueue<Entry>(highWaterMark, overflow, sizeOf, 'bus outbox')
  }

  get length(): number {
    return this.queue.length
  }

  get bytes(): number {
    return this.queue.bytes
  }

  get highWaterMark(): number {
    return this.queue.highWaterMark
  }

  /** Messages the overflow policy discarded. */
  get dropped(): number {
    return this.queue.dropped
  }

  /** Times a message came with the outbox full. */
  get overflows(): number {
    return this.queue.overflows
  }

  /** The seq of the oldest entry held (Infinity when empty). */
  get oldest(): number {
    return this.queue.length > 0 ? this.queue.items[this.queue.head]!.seq : Infinity
  }

  /** Adds `entry` (its seq becomes {@link seq}); false when the overflow policy dropped it, throws under `'error'`. */
  push(entry: Entry): boolean {
    const accepted = this.queue.push(entry)
    this.seq = entry.seq
    return accepted
  }

  /** Calls `fn` with every entry held, oldest first. */
  forEach(fn: (e: Entry) => void): void {
    const q = this.queue
    for (let i = q.head; i < q.items.length; i++) fn(q.items[i]!)
  }

  /** A round trip started when `upTo` was the last seq is done: what the one before confirmed may go. */
  roundTrip(upTo: number): void {
    this.releasable = this.confirmed
    this.confirmed = upTo
  }

  /** The connection is gone: only what a round trip two back confirmed still counts as delivered. */
  lost(): void {
    this.confirmed = this.releasable
  }

  /** Removes the released entries from the head: core ones up to {@link releasable}, durable ones acked (`js`: durable topics are on). */
  release(js: boolean): void {
    const q = this.queue
    while (q.length > 0) {
      const e = q.items[q.head]!
      if (e.durable && js ? !e.acked : e.seq > this.releasable) break
      q.shift()
    }
  }

  /** Entries no round trip (or ack) confirmed: what close() reports as undelivered. */
  unconfirmed(js: boolean): number {
    let n = 0
    this.forEach((x) => {
      if (x.durable && js ? !x.acked : x.seq > this.confirmed) n++
    })
    return n
  }

  clear(): void {
    this.queue.clear()
  }
}
