/**
 * The inbound half of the framing hot path: turns arbitrary byte chunks into whole frames.
 * A frame that lies inside one chunk is emitted as a zero-copy view (a `Buffer`, as
 * `chunk.subarray()` makes it); a frame split across chunks is assembled into one buffer allocated
 * at its declared length, after that length has been checked against `maxLength`.
 * @module
 */
import { FrameTooLongError, TruncatedFrameError } from '../errors.js'
import { VarintReader } from './varint.js'

/** The three values Node's `Buffer.prototype.subarray` reads of its receiver. */
interface ChunkView {
  buffer: ArrayBufferLike
  byteOffset: number
  length: number
}

const bufferSubarray = Buffer.prototype.subarray as unknown as (this: ChunkView, start: number, end: number) => Buffer

/**
 * Node's `Buffer.prototype.subarray` is JavaScript that reads `buffer`, `byteOffset` and `length`
 * of its receiver and returns `new FastBuffer(buffer, byteOffset + start, length)`: the very
 * Buffer `chunk.subarray()` gives. Called on a plain object holding the chunk's three values (read
 * once per chunk), it skips the typed-array getter calls that were half of each frame's ~30 ns
 * (Node 20: a 64 B frame's Buffer cost ~30 ns through `chunk.subarray`, ~15 ns this way). Checked
 * once at load (same bytes, same memory, a real Buffer); where it does not hold,
 * `chunk.subarray()` is used.
 */
export const FAST_VIEWS: boolean = (() => {
  try {
    const b = Buffer.from([1, 2, 3, 4, 5])
    const f = bufferSubarray.call({ buffer: b.buffer, byteOffset: b.byteOffset, length: b.length }, 1, 4)
    return Buffer.isBuffer(f) && Object.getPrototypeOf(f) === Buffer.prototype && f.buffer === b.buffer && f.byteOffset === b.byteOffset + 1 && f.length === 3 && f[0] === 2 && f[2] === 4
  } catch {
    return false
  }
})()

/**
 * Default largest frame accepted: 4 MiB, as it-length-prefixed's `maxDataLength`.
 *
 * @example
 * ```ts
 * import net from 'node:net'
 * import { DEFAULT_MAX_LENGTH, socketChannel } from 'rxnet'
 * const ch = socketChannel(net.connect(9000, '127.0.0.1'), { maxLength: DEFAULT_MAX_LENGTH / 4 })
 * ```
 */
export const DEFAULT_MAX_LENGTH = 4 * 1024 * 1024

/** Splits a byte stream into length-prefixed frames. Throws typed errors on bad input. */
export class FrameDecoder {
  private readonly header = new VarintReader()
  private partial: Buffer | null = null
  private filled = 0

  constructor(readonly maxLength: number = DEFAULT_MAX_LENGTH) {}

  /** True when the decoder holds part of a frame. */
  get pending(): boolean {
    return this.partial !== null || this.header.pending
  }

  /**
   * Feeds a chunk; calls `emit` for every frame completed by it, in order. Throws
   * {@link FrameTooLongError} or `InvalidLengthError` on bad input (frames emitted before the bad
   * prefix have already been delivered).
   */
  push(chunk: Uint8Array, emit: (frame: Uint8Array) => void): void {
    const end = chunk.length
    // One small object per chunk (not per frame); local, so a re-entrant push cannot disturb it.
    const view: ChunkView | null = FAST_VIEWS ? { buffer: chunk.buffer, byteOffset: chunk.byteOffset, length: end } : null
    let offset = 0
    while (offset < end) {
      const partial = this.partial
      if (partial !== null) {
        const want = partial.length - this.filled
        const take = end - offset < want ? end - offset : want
        partial.set(chunk.subarray(offset, offset + take), this.filled)
        this.filled += take
        offset += take
        if (this.filled === partial.length) {
          this.partial = null
          this.filled = 0
          emit(partial)
        }
        continue
      }
      // Fast path: a one-byte prefix followed by the whole frame in this chunk.
      let length: number
      const first = chunk[offset]!
      if (first < 0x80 && !this.header.pending) {
        length = first
        offset++
      } else {
        length = -1
        while (offset < end && length < 0) length = this.header.push(chunk[offset++]!)
        if (length < 0) return
      }
      if (length > this.maxLength) throw new FrameTooLongError(length, this.maxLength)
      if (end - offset >= length) {
        emit(view !== null ? bufferSubarray.call(view, offset, offset + length) : chunk.subarray(offset, offset + length))
        offset += length
      } else {
        // Uninitialised is safe: the frame is only emitted once every byte has been written.
        const buf = Buffer.allocUnsafe(length)
        buf.set(chunk.subarray(offset), 0)
        this.filled = end - offset
        this.partial = buf
        offset = end
      }
    }
  }

  /** Call when the stream ends: throws {@link TruncatedFrameError} if a frame is incomplete. */
  end(): void {
    if (this.partial !== null) throw new TruncatedFrameError(this.partial.length - this.filled)
    if (this.header.pending) throw new TruncatedFrameError(1)
  }
}
