/**
 * Unsigned LEB128 varints, the length prefix of it-length-prefixed (and protobuf, multiformats).
 * Pure functions on `Uint8Array`; no allocation on the hot path.
 * @module
 */
import { InvalidLengthError } from '../errors.js'

/** Largest length a varint prefix may carry (2^53 - 1, the largest safe integer). */
export const MAX_VARINT = Number.MAX_SAFE_INTEGER

/** Most bytes a length prefix may take before it is rejected (it-length-prefixed's `maxLengthLength`). */
export const MAX_VARINT_BYTES = 8

/** Number of bytes `n` takes as an unsigned varint. */
export function varintLength(n: number): number {
  if (n < 0x80) return 1
  if (n < 0x4000) return 2
  if (n < 0x200000) return 3
  if (n < 0x10000000) return 4
  let len = 4
  n = Math.floor(n / 0x10000000)
  while (n > 0) {
    len++
    n = Math.floor(n / 0x80)
  }
  return len
}

/** Writes `n` as an unsigned varint into `buf` at `offset`; returns the offset after it. */
export function writeVarint(buf: Uint8Array, offset: number, n: number): number {
  while (n >= 0x80) {
    buf[offset++] = (n & 0x7f) | 0x80
    n = n < 0x80000000 ? n >>> 7 : Math.floor(n / 0x80)
  }
  buf[offset++] = n
  return offset
}

/** Encodes `n` as a fresh varint byte array. */
export function encodeVarint(n: number): Uint8Array {
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidLengthError(`cannot encode ${n} as an unsigned varint`)
  const out = new Uint8Array(varintLength(n))
  writeVarint(out, 0, n)
  return out
}

/**
 * Incremental varint reader: feed it bytes one at a time (across chunk boundaries); it reports
 * the value once the last byte arrives. Rejects prefixes longer than {@link MAX_VARINT_BYTES}.
 */
export class VarintReader {
  private value = 0
  private scale = 1
  private count = 0

  /** True while part of a prefix has been read. */
  get pending(): boolean {
    return this.count > 0
  }

  /** Feeds one byte; returns the value when complete, or -1 when more bytes are needed. */
  push(byte: number): number {
    this.value += (byte & 0x7f) * this.scale
    this.count++
    if (byte < 0x80) {
      const v = this.value
      this.reset()
      if (v > MAX_VARINT) throw new InvalidLengthError()
      return v
    }
    if (this.count >= MAX_VARINT_BYTES) {
      this.reset()
      throw new InvalidLengthError(`length prefix longer than ${MAX_VARINT_BYTES} bytes`)
    }
    this.scale *= 0x80
    return -1
  }

  reset(): void {
    this.value = 0
    this.scale = 1
    this.count = 0
  }
}
