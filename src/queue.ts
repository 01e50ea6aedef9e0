/**
 * The bounded buffer every rxnet queue uses: a FIFO with a byte budget (`highWaterMark`) and an
 * explicit {@link OverflowPolicy}. Array-backed with a moving head, so push and shift are O(1).
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

/** FIFO with a byte budget. `push` applies the policy; `dropped` counts what it discarded. */
export class BoundedQueue<T> {
  /** Items; live ones are `items[head..]`. Exposed for the framing hot path, treat as read-only. */
  items: (T | undefined)[] = []
  head = 0
  /** Bytes held (as reported by `sizeOf`). */
  bytes = 0
  /** Messages discarded by the overflow policy so far. */
  dropped = 0
  /** Times the buffer was full when a message arrived. */
  overflows = 0

  constructor(
    readonly highWaterMark: number,
    readonly policy: OverflowPolicy,
    private readonly sizeOf: (item: T) => number,
    private readonly what = 'send buffer',
  ) {}

  get length(): number {
    return this.items.length - this.head
  }

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
      this.items.push(item)
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
    this.items.push(item)
    this.bytes += size
    return true
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
