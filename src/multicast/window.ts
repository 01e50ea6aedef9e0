/**
 * Per-sender sequence tracking, pure (no socket): a sliding window of recently seen sequence
 * numbers (RFC 4303-style anti-replay bitmap) that tells new datagrams from duplicates / replays,
 * and counts gaps (sequence numbers skipped) and late arrivals that fill a gap.
 * @module
 */

/** What {@link SequenceWindow.check} says about a sequence number. */
export type SeqVerdict = 'new' | 'duplicate' | 'stale'

/** Counters of one sender, as seen by this receiver. */
export interface SenderCounters {
  /** Datagrams accepted from this sender. */
  datagrams: number
  /** Sequence numbers skipped (datagrams that had not arrived when a later one did). */
  gaps: number
  /** Datagrams that arrived after a later one (each fills a gap counted before). */
  reordered: number
  /** Duplicates / replays of a datagram already accepted, or older than the window. */
  duplicates: number
}

/** Sliding window over one sender's uint32 sequence numbers. */
export class SequenceWindow implements SenderCounters {
  datagrams = 0
  gaps = 0
  reordered = 0
  duplicates = 0
  /** Highest sequence number accepted. */
  highest: number
  private readonly bits: Uint32Array

  /** @param size - window in datagrams (a multiple of 32). @param first - the first accepted seq. */
  constructor(
    readonly size: number,
    first: number,
  ) {
    this.bits = new Uint32Array(size >>> 5)
    this.highest = first
    this.set(first)
    this.datagrams = 1
  }

  /** Classifies `seq` without changing anything (call {@link accept} once the datagram is verified). */
  check(seq: number): SeqVerdict {
    const d = (this.highest - seq) >>> 0 // distance behind highest, modulo 2^32
    if (d === 0) return 'duplicate'
    if (d >= 0x80000000) return 'new' // ahead of highest
    if (d >= this.size) return 'stale'
    return this.isSet(seq) ? 'duplicate' : 'new'
  }

  /** Records `seq` as accepted (it must have been checked `'new'`). */
  accept(seq: number): void {
    this.datagrams++
    const ahead = (seq - this.highest) >>> 0
    if (ahead !== 0 && ahead < 0x80000000) {
      this.gaps += ahead - 1
      if (ahead >= this.size) this.bits.fill(0)
      else for (let s = (this.highest + 1) >>> 0, i = 0; i < ahead; i++, s = (s + 1) >>> 0) this.clear(s)
      this.highest = seq
    } else {
      this.reordered++
    }
    this.set(seq)
  }

  private isSet(seq: number): boolean {
    const i = seq % this.size
    return (this.bits[i >>> 5]! & (1 << (i & 31))) !== 0
  }

  private set(seq: number): void {
    const i = seq % this.size
    this.bits[i >>> 5] |= 1 << (i & 31)
  }

  private clear(seq: number): void {
    const i = seq % this.size
    this.bits[i >>> 5] &= ~(1 << (i & 31))
  }
}
