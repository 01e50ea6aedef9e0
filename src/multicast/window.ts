/**
 * Per-sender sequence tracking, pure (no socket): a sliding window of recently seen sequence
 * numbers (RFC 4303-style anti-replay bitmap) that tells new datagrams from duplicates / replays,
 * and counts gaps (sequence numbers skipped) and late arrivals that fill a gap.
 *
 * With a `maxJump` bound, a sequence number more than `maxJump` away from the highest accepted
 * (ahead, or behind) is `'implausible'`: it is refused instead of moving the window (one forged
 * number far ahead would otherwise make every real one after it look old). A sender that really
 * is that far away is followed again at its second such number, if that one is within `maxJump`
 * after the first; so a forger can cost a real sender one message per two forgeries, counted.
 * @module
 */

/** What {@link SequenceWindow.check} says about a sequence number. */
export type SeqVerdict = 'new' | 'duplicate' | 'stale' | 'implausible'

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

/** No bound: any number ahead (modulo 2^32) moves the window, as the multicast channel does. */
const NO_BOUND = 0x7fffffff

/** Sliding window over one sender's uint32 sequence numbers. */
export class SequenceWindow implements SenderCounters {
  datagrams = 0
  gaps = 0
  reordered = 0
  duplicates = 0
  /** Sequence numbers refused as {@link SeqVerdict | 'implausible'} (see {@link refuse}). */
  implausible = 0
  /** Times the window re-anchored on a sender confirmed to have jumped more than `maxJump`. */
  resyncs = 0
  /** Highest sequence number accepted. */
  highest: number
  private readonly bits: Uint32Array
  /** The last implausible number refused, waiting for a second one to confirm the jump. */
  private pendingJump = -1

  /**
   * @param size - window in datagrams (a multiple of 32).
   * @param first - the first accepted seq.
   * @param maxJump - farthest a seq may be from the highest accepted (ahead or behind) to be judged by the window; 2^31 - 1 (no bound) by default.
   */
  constructor(
    readonly size: number,
    first: number,
    readonly maxJump: number = NO_BOUND,
  ) {
    this.bits = new Uint32Array(size >>> 5)
    this.highest = first >>> 0
    this.set(first)
    this.datagrams = 1
  }

  /** Classifies `seq` without changing anything (call {@link accept} once the datagram is verified, {@link refuse} for `'implausible'`). */
  check(seq: number): SeqVerdict {
    const ahead = (seq - this.highest) >>> 0 // distance ahead of highest, modulo 2^32
    if (ahead === 0) return 'duplicate'
    if (this.far(seq)) return this.confirms(seq) ? 'new' : 'implausible'
    if (ahead < 0x80000000) return 'new'
    const d = (this.highest - seq) >>> 0 // distance behind highest
    if (d >= this.size) return 'stale'
    return this.isSet(seq) ? 'duplicate' : 'new'
  }

  /** Records `seq` as accepted (it must have been checked `'new'`). */
  accept(seq: number): void {
    this.datagrams++
    const ahead = (seq - this.highest) >>> 0
    if (this.far(seq)) {
      // A confirmed jump: start over from here (the skipped span is not counted as gaps).
      this.resyncs++
      this.pendingJump = -1
      this.bits.fill(0)
      this.highest = seq >>> 0
    } else if (ahead !== 0 && ahead < 0x80000000) {
      this.gaps += ahead - 1
      if (ahead >= this.size) this.bits.fill(0)
      else for (let s = (this.highest + 1) >>> 0, i = 0; i < ahead; i++, s = (s + 1) >>> 0) this.clear(s)
      this.highest = seq >>> 0
    } else {
      this.reordered++
    }
    this.set(seq)
  }

  /** Records `seq` (checked `'implausible'`) as refused: counted, and remembered so that a second jump can confirm it. */
  refuse(seq: number): void {
    this.implausible++
    this.pendingJump = seq >>> 0
  }

  /** True when `seq` is more than `maxJump` away from the highest accepted, ahead or behind (never without a bound). */
  private far(seq: number): boolean {
    if (this.maxJump === NO_BOUND) return false
    const ahead = (seq - this.highest) >>> 0
    return ahead < 0x80000000 ? ahead > this.maxJump : 0x100000000 - ahead > this.maxJump
  }

  /** True when `seq` is a little ahead of the last refused jump: the sender really is over there. */
  private confirms(seq: number): boolean {
    if (this.pendingJump < 0) return false
    const d = (seq - this.pendingJump) >>> 0
    return d !== 0 && d <= this.maxJump
  }

  private isSet(seq: number): boolean {
    const i = (seq >>> 0) % this.size
    return (this.bits[i >>> 5]! & (1 << (i & 31))) !== 0
  }

  private set(seq: number): void {
    const i = (seq >>> 0) % this.size
    this.bits[i >>> 5] |= 1 << (i & 31)
  }

  private clear(seq: number): void {
    const i = (seq >>> 0) % this.size
    this.bits[i >>> 5] &= ~(1 << (i & 31))
  }
}
