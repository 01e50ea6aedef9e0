// FrameDecoder after 720264e (frames inside a chunk made by Buffer.prototype.subarray on a
// per-chunk view object): under any chunking of valid and invalid streams, frames are real
// Buffers with the bytes, memory and `.buffer` identity `chunk.subarray()` gives, they stay
// intact after later chunks arrive, and bad input is a typed error after every frame before it.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { isRxnetError } from 'rxnet'
import { FAST_VIEWS, FrameDecoder } from '../../src/framing/decoder.js'
import { encodeFrame } from '../../src/framing/encoder.js'
import { chunkAt } from './chunks.js'

const RUNS = 500
const payloads = fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 16 })
const cuts = fc.array(fc.nat(), { maxLength: 12 })
/** How each chunk reaches the decoder: a fresh Buffer, a Buffer at an offset inside a larger one, or a plain Uint8Array. */
const kinds = fc.array(fc.constantFrom('buffer', 'offset', 'uint8array'), { minLength: 1, maxLength: 4 })

function asChunk(bytes: Uint8Array, kind: string): Uint8Array {
  if (kind === 'buffer') return Buffer.from(bytes)
  if (kind === 'offset') {
    const big = Buffer.alloc(bytes.length + 11, 0xee)
    big.set(bytes, 7)
    return big.subarray(7, 7 + bytes.length)
  }
  return new Uint8Array(bytes)
}

interface Got {
  frame: Uint8Array
  chunk: Uint8Array
  /** Copy of the bytes at the time it was emitted. */
  bytes: string
}

function decodeAll(wire: Uint8Array, cs: number[], ks: string[], maxLength = 1 << 20): { got: Got[]; error: unknown } {
  const d = new FrameDecoder(maxLength)
  const got: Got[] = []
  let error: unknown = null
  try {
    chunkAt(wire, cs).forEach((c, i) => {
      const chunk = asChunk(c, ks[i % ks.length]!)
      d.push(chunk, (frame) => got.push({ frame, chunk, bytes: Buffer.from(frame).toString('hex') }))
    })
    d.end()
  } catch (e) {
    error = e
  }
  return { got, error }
}

describe('property: FrameDecoder frames', () => {
  it('the probe at load took the fast path on this Node (so these properties test it)', () => {
    expect(FAST_VIEWS).toBe(true)
  })

  it('under any chunking, the frames in order, each a real Buffer whose bytes survive every later chunk', () => {
    fc.assert(
      fc.property(payloads, cuts, kinds, (ps, cs, ks) => {
        const wire = Buffer.concat(ps.map((p) => encodeFrame(p)))
        const { got, error } = decodeAll(wire, cs, ks)
        expect(error).toBeNull()
        expect(got.map((g) => g.bytes)).toEqual(ps.map((p) => Buffer.from(p).toString('hex')))
        for (const { frame, bytes } of got) {
          expect(Buffer.isBuffer(frame)).toBe(true)
          expect(Object.getPrototypeOf(frame)).toBe(Buffer.prototype)
          // Still the same bytes once everything after it was decoded (no reused buffer under it).
          expect(Buffer.from(frame).toString('hex')).toBe(bytes)
          expect((frame as Buffer).toString('hex')).toBe(bytes) // a Buffer's toString, not Uint8Array's
        }
      }),
      { numRuns: RUNS },
    )
  })

  it('a frame inside one chunk is exactly chunk.subarray(): same memory, offset, length and .buffer; a split frame has its own memory', () => {
    fc.assert(
      fc.property(payloads, cuts, kinds, (ps, cs, ks) => {
        const wire = Buffer.concat(ps.map((p) => encodeFrame(p)))
        const { got } = decodeAll(wire, cs, ks)
        for (const { frame, chunk } of got) {
          const inside = frame.buffer === chunk.buffer && frame.byteOffset >= chunk.byteOffset && frame.byteOffset + frame.length <= chunk.byteOffset + chunk.length
          if (inside) {
            const start = frame.byteOffset - chunk.byteOffset
            const ref = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length).subarray(start, start + frame.length)
            expect(frame.byteOffset).toBe(ref.byteOffset)
            expect(frame.length).toBe(ref.length)
            // Writing through the frame is writing the chunk (a view, as before).
            if (frame.length > 0) {
              const was = chunk[start]!
              frame[0] = was ^ 0xff
              expect(chunk[start]).toBe(was ^ 0xff)
              frame[0] = was
            }
          } else if (frame.buffer === chunk.buffer) {
            // Assembled in its own allocation (it may share Node's pool with the chunk, not its bytes).
            const apart = frame.byteOffset + frame.length <= chunk.byteOffset || chunk.byteOffset + chunk.length <= frame.byteOffset
            expect(apart).toBe(true)
          }
        }
        // No two frames overlap in memory.
        const spans = got.filter((g) => g.frame.length > 0).map((g) => [g.frame.buffer, g.frame.byteOffset, g.frame.byteOffset + g.frame.length] as const)
        for (let i = 0; i < spans.length; i++)
          for (let j = i + 1; j < spans.length; j++) {
            const [ba, sa, ea] = spans[i]!
            const [bb, sb, eb] = spans[j]!
            if (ba === bb) expect(ea <= sb || eb <= sa, `frames ${i} and ${j} overlap`).toBe(true)
          }
      }),
      { numRuns: RUNS },
    )
  })

  it('a frame split across chunks does not change when the chunks it came from are overwritten (the caller reuses its read buffer)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 2, maxLength: 300 }), fc.nat(), (p, cut) => {
        const wire = Buffer.from(encodeFrame(p))
        const at = 1 + (cut % (wire.length - 1)) // inside the frame
        const read = Buffer.alloc(wire.length)
        const d = new FrameDecoder()
        const frames: Uint8Array[] = []
        read.set(wire.subarray(0, at))
        d.push(read.subarray(0, at), (f) => frames.push(f))
        read.set(wire.subarray(at))
        d.push(read.subarray(0, wire.length - at), (f) => frames.push(f))
        read.fill(0xaa)
        expect(frames.length).toBe(1)
        expect(Buffer.from(frames[0]!).equals(Buffer.from(p))).toBe(true)
      }),
      { numRuns: RUNS },
    )
  })

  it('a valid stream followed by a bad prefix: every frame before it, then a typed error; a cut stream is ERR_TRUNCATED_FRAME', () => {
    const bad = fc.oneof(
      fc.constant([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), // prefix longer than 8 bytes
      fc.constant([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7f]), // past 2^53 - 1
      fc.constant([0x81, 0x08]), // 1025 > maxLength
    )
    fc.assert(
      fc.property(payloads, bad, cuts, kinds, (ps, prefix, cs, ks) => {
        const good = Buffer.concat(ps.map((p) => encodeFrame(p)))
        const { got, error } = decodeAll(Buffer.concat([good, Buffer.from(prefix), Buffer.alloc(20)]), cs, ks, 1024)
        expect(got.map((g) => g.bytes)).toEqual(ps.filter((p) => p.length <= 1024).map((p) => Buffer.from(p).toString('hex')))
        expect(isRxnetError(error)).toBe(true)
        expect(['ERR_INVALID_LENGTH', 'ERR_FRAME_TOO_LONG']).toContain((error as { code: string }).code)
      }),
      { numRuns: RUNS },
    )
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ minLength: 1, maxLength: 200 }), { minLength: 1, maxLength: 6 }), fc.nat(), cuts, kinds, (ps, cut, cs, ks) => {
        const wire = Buffer.concat(ps.map((p) => encodeFrame(p)))
        const last = encodeFrame(ps.at(-1)!).length
        const end = wire.length - last + 1 + (cut % (last - 1)) // after 1 .. last - 1 bytes of the last frame
        const { got, error } = decodeAll(wire.subarray(0, end), cs, ks)
        expect(got.length).toBe(ps.length - 1)
        expect(error).toMatchObject({ code: 'ERR_TRUNCATED_FRAME' })
      }),
      { numRuns: RUNS },
    )
  })
})
