/**
 * The live counters of a multicast channel: plain fields the adapter increments, plus getters over
 * its send queue (those of socketChannel's {@link QueueStats}, no socket here) and sender table.
 * @module
 */
import type { BoundedQueue } from '../queue.js'
import { QueueStats } from '../socket.js'
import type { MulticastStats } from './options.js'

/** {@link MulticastStats} as kept by the channel; `snapshot()` copies it. */
export class Stats extends QueueStats implements MulticastStats {
  datagramsIn = 0
  datagramsOut = 0
  echoes = 0
  duplicates = 0
  replayed = 0
  bad = 0
  gaps = 0
  reordered = 0
  sendErrors = 0
  readonly #senders: Map<string, unknown>
  constructor(queue: BoundedQueue<Uint8Array>, senders: Map<string, unknown>) {
    super(queue)
    this.#senders = senders
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
      droppedIn: this.droppedIn,
      senders: this.senders,
    }
  }
}
