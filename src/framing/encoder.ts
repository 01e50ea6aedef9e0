/**
 * The outbound half of the framing hot path: length-prefixes payloads, byte-identical to
 * it-length-prefixed's `encode`. `encodeBatch` packs many small frames into one buffer.
 * @module
 */
import { varintLength, writeVarint } from './varint.js'

/** Returns `payload` with its varint length prefix, in one new buffer. */
export function encodeFrame(payload: Uint8Array): Uint8Array {
  const n = payload.length
  const out = Buffer.allocUnsafe(varintLength(n) + n)
  const o = writeVarint(out, 0, n)
  out.set(payload, o)
  return out
}

/** Bytes `payloads[from..to)` take once framed. */
export function framedSize(payloads: readonly Uint8Array[], from: number, to: number): number {
  let bytes = 0
  for (let i = from; i < to; i++) {
    const n = payloads[i]!.length
    bytes += n + varintLength(n)
  }
  return bytes
}

/** Frames `payloads[from..to)` into one buffer of `bytes` (from {@link framedSize}). */
export function encodeBatch(payloads: readonly Uint8Array[], from: number, to: number, bytes: number): Buffer {
  const out = Buffer.allocUnsafe(bytes)
  let o = 0
  for (let i = from; i < to; i++) {
    const p = payloads[i]!
    o = writeVarint(out, o, p.length)
    out.set(p, o)
    o += p.length
  }
  return out
}
