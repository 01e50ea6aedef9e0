/**
 * The bounded buffer every rxnet queue uses: a FIFO with a byte budget (`highWaterMark`) and an
 * explicit {@link OverflowPolicy}: {@link BoundedQueue} (an array with a moving head, for readers
 * that walk it) and {@link RingQueue} (a ring, for the send hot path). Push and shift are O(1).
 * @module
 */
import { BufferOverflowError } from './errors.js'

/**
 * What a full buffer does with one more message:
 * - `'error'`: refuse it and fail the channel with `ERR_BUFFER_OVERFLOW` (nothing is dropped silently);
 * - `'drop-newest'`: discard the new message, count it;
 * - `'drop-oldest'`: discard queued messages from the head until the new one fits, count them.
 *
 * @example
 * ```ts
 * import net from 'node:net'
 * import { socketChannel, type OverflowPolicy } from 'rxnet'
 * const policy: OverflowPolicy = 'drop-newest' // a slow reader loses new messages, never blocks us
 * const ch = socketChannel(net.connect(9000, '127.0.0.1'), { highWaterMark: 1 << 20, overflow: policy })
 * ```
 */
export type OverflowPolicy = 'error' | 'drop-newest' | 'drop-oldest'

/** The overflow policies, for validation. */
export const OVERFLOW_POLICIES: readonly OverflowPolicy[] = ['error', 'drop-newest', 'drop-oldest']

/**
 * Default byte budget of a per-connection send buffer: 8 MiB.
 *
 * @example
 * ```ts
 * import net from 'node:net'
 * import { DEFAULT_HIGH_WATER_MARK, socketChannel } from 'rxnet'
 * const ch = socketChannel(net.connect(9000, '127.0.0.1'), { highWaterMark: DEFAULT_HIGH_WATER_MARK * 4 })
 * ```
 */
export const DEFAULT_HIGH_WATER_MARK = 8 * 1024 * 1024

/**
 * Default overflow policy: fail loudly.
 *
 * @example
 * ```ts
 * import { DEFAULT_OVERFLOW } from 'rxnet'
 * console.log(DEFAULT_OVERFLOW) // 'error'
 * ```
 */
export const DEFAULT_OVERFLOW: OverflowPolicy = 'error'

/**
 * What every bounded buffer shares: the byte budget, the counters and the overflow policy. A
 * subclass stores the items ({@link BoundedQueue}: an array with a moving head, for readers that
 * walk it; {@link RingQueue}: a ring, for the send hot path).
 */
abstract class ByteBudget<T> {
  /** Bytes held (as reported by `sizeOf`). */
  bytes = 0
  /** Messages discarded by the overflow policy so far. */
  dropped = 0
  /** Times the buffer was full when a message arrived. */
  overflows = 0

  constructor(
    readonly highWaterMark: number,
    readonly policy: OverflowPolicy,
    protected readonly sizeOf: (item: T) => number,
    private readonly what = 'send buffer',
  ) {}

  /** Items held. */
  abstract get length(): number
  /** Removes and returns the oldest item. */
  abstract shift(): T | undefined
  /** Appends an item that fits (its size already counted by the caller). */
  protected abstract append(item: T): void

  /**
   * Adds `item`, with `extra` bytes already held elsewhere counted against the budget (e.g. a
   * socket's own buffer). Returns false if the item was dropped; throws
   * {@link BufferOverflowError} under the `'error'` policy.
   */
  push(item: T, extra = 0): boolean {
    return this.pushSized(item, this.sizeOf(item), extra)
  }

  /** {@link push} with the item's size already known (saves a `sizeOf` call on hot paths). */
  pushSized(item: T, size: number, extra = 0): boolean {
    if (this.bytes + extra + size <= this.highWaterMark) {
      this.append(item)
      this.bytes += size
      return true
    }
    return this.overflow(item, size, extra)
  }

  private overflow(item: T, size: number, extra: number): boolean {
    if (this.length > 0 || extra > 0) {
      this.overflows++
      if (this.policy === 'error') throw new BufferOverflowError(this.what, this.highWaterMark)
      if (this.policy === 'drop-newest') {
        this.dropped++
        return false
      }
      while (this.length > 0 && this.bytes + extra + size > this.highWaterMark) {
        this.shift()
        this.dropped++
      }
      if (this.bytes + extra + size > this.highWaterMark) {
        this.dropped++
        return false
      }
    }
    this.append(item)
    this.bytes += size
    return true
  }
}

/** FIFO with a byte budget. `push` applies the policy; `dropped` counts what it discarded. */
export class BoundedQueue<T> extends ByteBudget<T> {
  /** Items; live ones are `items[head..]`. Exposed for readers that walk the queue, treat as read-only. */
  items: (T | undefined)[] = []
  head = 0

  get length(): number {
    return this.items.length - this.head
  }

  protected append(item: T): void {
    this.items.push(item)
  }

  /** Removes and returns the oldest item. */
  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined
    const item = this.items[this.head]
    this.items[this.head++] = undefined
    this.bytes -= this.sizeOf(item as T)
    this.compact()
    return item
  }

  /** Marks `items[head..to)` as consumed, totalling `bytes`. */
  consume(to: number, bytes: number): void {
    if (to >= this.items.length) {
      this.items.length = 0
      this.head = 0
      this.bytes -= bytes
      return
    }
    for (let i = this.head; i < to; i++) this.items[i] = undefined
    this.head = to
    this.bytes -= bytes
    this.compact()
  }

  /** Removes everything; returns the items that were held. */
  clear(): T[] {
    const rest = this.items.slice(this.head) as T[]
    this.items = []
    this.head = 0
    this.bytes = 0
    return rest
  }

  private compact(): void {
    if (this.head === this.items.length) {
      this.items.length = 0
      this.head = 0
    } else if (this.head > 4096 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
  }
}

/** First capacity of a {@link RingQueue} (a power of two). */
const RING_MIN = 16
/** Rings up to this many slots are kept as they are when they empty. */
const RING_KEEP = 4096

/**
 * FIFO with a byte budget, like {@link BoundedQueue}, stored in a power-of-two ring: appending
 * never copies (growth doubles the ring once, then slots are reused) and consuming never
 * compacts. The send queue of every socket channel: at 64 B messages it holds tens of thousands
 * of items between flushes, and the array queue's regrowth and compaction cost 11-15% of the
 * sender's CPU (cpu-prof). A ring that empties keeps its slots while it is refilled to at least a
 * quarter of them (steady traffic reuses them); an emptied ring larger than 4096 slots whose last
 * fill used less than that shrinks to twice that fill.
 */
export class RingQueue<T> extends ByteBudget<T> {
  private ring: (T | undefined)[] = new Array<T | undefined>(RING_MIN)
  private mask = RING_MIN - 1
  private head = 0
  private count = 0
  /** Most items held since the ring last emptied. */
  private peak = 0

  get length(): number {
    return this.count
  }

  /** Slots in the ring (a power of two). */
  get capacity(): number {
    return this.ring.length
  }

  /** The `i`-th item from the oldest (0 ≤ i < length). */
  at(i: number): T {
    return this.ring[(this.head + i) & this.mask] as T
  }

  protected append(item: T): void {
    if (this.count === this.ring.length) this.grow()
    this.ring[(this.head + this.count) & this.mask] = item
    if (++this.count > this.peak) this.peak = this.count
  }

  /** Removes and returns the oldest item. */
  shift(): T | undefined {
    if (this.count === 0) return undefined
    const item = this.ring[this.head] as T
    this.consume(1, this.sizeOf(item))
    return item
  }

  /** Removes the `n` oldest items, totalling `bytes`. */
  consume(n: number, bytes: number): void {
    const ring = this.ring
    const mask = this.mask
    let h = this.head
    for (let i = 0; i < n; i++) {
      ring[h] = undefined // release the payload
      h = (h + 1) & mask
    }
    this.head = h
    this.count -= n
    this.bytes -= bytes
    if (this.count === 0) {
      this.head = 0
      if (ring.length > RING_KEEP && this.peak * 4 < ring.length) this.reset(Math.max(RING_MIN, 2 ** Math.ceil(Math.log2(this.peak * 2))))
      this.peak = 0
    }
  }

  /** Removes everything; returns the items that were held. */
  clear(): T[] {
    const rest: T[] = []
    for (let i = 0; i < this.count; i++) rest.push(this.at(i))
    this.reset()
    this.bytes = 0
    return rest
  }

  private reset(capacity = RING_MIN): void {
    this.ring = new Array<T | undefined>(capacity)
    this.mask = capacity - 1
    this.head = 0
    this.count = 0
    this.peak = 0
  }

  private grow(): void {
    const old = this.ring
    const next = new Array<T | undefined>(old.length * 2)
    for (let i = 0; i < this.count; i++) next[i] = old[(this.head + i) & this.mask]
    this.ring = next
    this.mask = next.length - 1
    this.head = 0
  }
}
