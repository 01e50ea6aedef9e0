/**
 * The live counters of a multicast channel: plain fields the adapter increments, plus getters over
 * its send queue and sender table (no socket here).
 * @module
 */
import type { BoundedQueue } from '../queue.js'
import type { MulticastStats } from './options.js'

/** {@link MulticastStats} as kept by the channel; `snapshot()` copies it. */
export class Stats implements MulticastStats {
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
