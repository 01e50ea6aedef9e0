/**
 * The hub's bound on memory held by frames still arriving. The frame decoder allocates a frame's
 * declared length as soon as its prefix is read, so a client that declares a large frame and
 * trickles it holds that much memory: {@link FrameProgress} follows each client's byte stream
 * (prefixes only, nothing buffered) to know what is held, and {@link PartialFrames} keeps the total
 * under a budget (evicting the frame in progress the longest) and gives every frame a deadline.
 * No sockets here: the hub feeds the bytes and drops whom it is told to.
 * @module
 */
import { LimitError, TimeoutError, type RxnetError } from '../errors.js'

/** Follows the length prefixes of one framed byte stream; {@link held} is what its decoder has allocated for an incomplete frame. */
export class FrameProgress {
  /** Declared length of the frame being received, while incomplete (0 between frames and inside a prefix). */
  held = 0
  private remaining = 0
  private value = 0
  private scale = 1

  /** Follows `chunk` (the same bytes the decoder was given). */
  push(chunk: Uint8Array): void {
    const end = chunk.length
    let o = 0
    let declared = this.held
    while (o < end) {
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, end - o)
        o += take
        this.remaining -= take
        continue
      }
      const b = chunk[o++]!
      this.value += (b & 0x7f) * this.scale
      if (b >= 0x80 && this.scale < 2 ** 49) {
        this.scale *= 0x80
        continue
      }
      declared = this.remaining = this.value
      this.value = 0
      this.scale = 1
    }
    this.held = this.remaining > 0 ? declared : 0
  }
}

/** What {@link PartialFrames} reports about a client it gave up on. */
export type PartialVerdict = { kind: 'overflow' | 'timeout'; error: RxnetError }

/** Frames in progress across the clients of a hub, under one byte budget and one deadline. */
export class PartialFrames<K> {
  /** Bytes held now by incomplete frames, all clients. */
  bytes = 0
  /** Highest {@link bytes} after any chunk was accounted for. */
  peak = 0
  /** Clients with a frame in progress, oldest first, and when it started (ms). */
  private readonly since = new Map<K, number>()
  private readonly progress = new Map<K, FrameProgress>()
  private timer: NodeJS.Timeout | null = null

  /**
   * @param maxBytes - budget for all clients together.
   * @param timeout - longest a frame may take from its first byte, ms (time paused does not count, see {@link restartClocks}).
   * @param drop - called for a client to drop, with why.
   */
  constructor(
    readonly maxBytes: number,
    readonly timeout: number,
    private readonly drop: (key: K, verdict: PartialVerdict) => void,
  ) {}

  /** Accounts for `chunk` read from `key` (after the decoder saw it). */
  onData(key: K, chunk: Uint8Array): void {
    let p = this.progress.get(key)
    if (p === undefined) this.progress.set(key, (p = new FrameProgress()))
    const before = p.held
    p.push(chunk)
    if (p.held === before) return
    this.bytes += p.held - before
    if (p.held === 0) {
      this.since.delete(key)
      if (this.since.size === 0) this.stopTimer()
      return
    }
    // A new frame in progress: it goes to the back of the line.
    this.since.delete(key)
    this.since.set(key, Date.now())
    this.timer ??= setInterval(this.sweep, Math.max(10, Math.min(1000, this.timeout >> 2)))
    while (this.bytes > this.maxBytes) {
      const oldest = this.since.keys().next().value as K
      this.forget(oldest)
      this.drop(oldest, { kind: 'overflow', error: new LimitError('bytes held by frames in progress', this.maxBytes) })
    }
    if (this.bytes > this.peak) this.peak = this.bytes
  }

  /** The client is gone: what it held is released. */
  forget(key: K): void {
    const p = this.progress.get(key)
    if (p === undefined) return
    this.bytes -= p.held
    this.progress.delete(key)
    this.since.delete(key)
    if (this.since.size === 0) this.stopTimer()
  }

  /** Reading resumes after a pause: every frame in progress gets a full `timeout` again. */
  restartClocks(): void {
    const now = Date.now()
    for (const k of this.since.keys()) this.since.set(k, now)
  }

  /** Stops the timer (the hub is closing). */
  close(): void {
    this.stopTimer()
  }

  private readonly sweep = (): void => {
    const now = Date.now()
    for (const [k, t] of this.since) {
      if (now - t < this.timeout) break // oldest first: the rest are younger
      this.forget(k)
      this.drop(k, { kind: 'timeout', error: new TimeoutError('frame in progress', this.timeout) })
    }
  }

  private stopTimer(): void {
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
  }
}
