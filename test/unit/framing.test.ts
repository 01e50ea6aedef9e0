import { describe, expect, it } from 'vitest'
import { FAST_VIEWS, FrameDecoder, DEFAULT_MAX_LENGTH } from '../../src/framing/decoder.js'
import { encodeBatch, encodeFrame, framedSize } from '../../src/framing/encoder.js'
import { encodeVarint, MAX_VARINT, MAX_VARINT_BYTES, VarintReader, varintLength, writeVarint } from '../../src/framing/varint.js'
import { isRxnetError } from 'rxnet'

function decodeAll(chunks: Uint8Array[], maxLength?: number): Uint8Array[] {
  const d = new FrameDecoder(maxLength)
  const out: Uint8Array[] = []
  for (const c of chunks) d.push(c, (f) => out.push(f))
  d.end()
  return out
}

function readVarint(bytes: Uint8Array): number {
  const r = new VarintReader()
  let v = -1
  for (const b of bytes) v = r.push(b)
  return v
}

const concat = (xs: Uint8Array[]): Uint8Array => new Uint8Array(Buffer.concat(xs))

describe('varint', () => {
  const cases: [number, number[]][] = [
    [0, [0x00]],
    [1, [0x01]],
    [127, [0x7f]],
    [128, [0x80, 0x01]],
    [300, [0xac, 0x02]],
    [16383, [0xff, 0x7f]],
    [16384, [0x80, 0x80, 0x01]],
    [2 ** 21 - 1, [0xff, 0xff, 0x7f]],
    [2 ** 21, [0x80, 0x80, 0x80, 0x01]],
    [2 ** 28 - 1, [0xff, 0xff, 0xff, 0x7f]],
    [2 ** 28, [0x80, 0x80, 0x80, 0x80, 0x01]],
    [2 ** 31, [0x80, 0x80, 0x80, 0x80, 0x08]],
    [2 ** 32 - 1, [0xff, 0xff, 0xff, 0xff, 0x0f]],
    [2 ** 32, [0x80, 0x80, 0x80, 0x80, 0x10]],
    [MAX_VARINT, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f]],
  ]
  it.each(cases)('encodes and decodes %d', (n, bytes) => {
    expect([...encodeVarint(n)]).toEqual(bytes)
    expect(varintLength(n)).toBe(bytes.length)
    const buf = new Uint8Array(12)
    expect(writeVarint(buf, 2, n)).toBe(2 + bytes.length)
    expect([...buf.subarray(2, 2 + bytes.length)]).toEqual(bytes)
    expect(readVarint(new Uint8Array(bytes))).toBe(n)
  })

  it('refuses negative, fractional and unsafe numbers with ERR_INVALID_LENGTH', () => {
    for (const n of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, MAX_VARINT + 2]) {
      expect(() => encodeVarint(n)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_LENGTH' }))
    }
  })

  it(`rejects a prefix longer than ${MAX_VARINT_BYTES} bytes`, () => {
    const r = new VarintReader()
    for (let i = 0; i < MAX_VARINT_BYTES - 1; i++) expect(r.push(0x80)).toBe(-1)
    expect(() => r.push(0x80)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_LENGTH' }))
    // the reader is reset afterwards and usable again
    expect(r.pending).toBe(false)
    expect(r.push(5)).toBe(5)
  })

  it('rejects an 8-byte prefix above 2^53 - 1', () => {
    const bytes = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]
    expect(() => readVarint(new Uint8Array(bytes))).toThrow(expect.objectContaining({ code: 'ERR_INVALID_LENGTH' }))
  })

  it('accepts non-minimal encodings as it-length-prefixed does', () => {
    expect(readVarint(new Uint8Array([0x80, 0x00]))).toBe(0)
    expect(readVarint(new Uint8Array([0x81, 0x80, 0x00]))).toBe(1)
  })
})

describe('encoder', () => {
  it('frames a payload with its length prefix', () => {
    expect([...encodeFrame(new Uint8Array([1, 2, 3]))]).toEqual([3, 1, 2, 3])
    expect([...encodeFrame(new Uint8Array(0))]).toEqual([0])
    const big = new Uint8Array(300).fill(7)
    const f = encodeFrame(big)
    expect([...f.subarray(0, 2)]).toEqual([0xac, 0x02])
    expect(f.length).toBe(302)
  })

  it('batches frames into one buffer identical to framing each', () => {
    const ps = [new Uint8Array(0), new Uint8Array([9]), new Uint8Array(200).fill(1), new Uint8Array(20000).fill(2)]
    const size = framedSize(ps, 0, ps.length)
    const batch = encodeBatch(ps, 0, ps.length, size)
    expect(batch.length).toBe(size)
    expect(Buffer.compare(batch, concat(ps.map(encodeFrame)))).toBe(0)
    expect(Buffer.compare(encodeBatch(ps, 1, 3, framedSize(ps, 1, 3)), concat(ps.slice(1, 3).map(encodeFrame)))).toBe(0)
  })
})

describe('FrameDecoder', () => {
  const payloads = [new Uint8Array(0), new Uint8Array([1, 2, 3]), new Uint8Array(127).fill(4), new Uint8Array(128).fill(5), new Uint8Array(1000).fill(6), new Uint8Array(0)]
  const wire = concat(payloads.map(encodeFrame))

  it('decodes the stream split at every byte boundary (two chunks)', () => {
    for (let cut = 0; cut <= wire.length; cut++) {
      const got = decodeAll([wire.subarray(0, cut), wire.subarray(cut)])
      expect(got.map((g) => Buffer.from(g).toString('hex'))).toEqual(payloads.map((p) => Buffer.from(p).toString('hex')))
    }
  })

  it('decodes the stream split at every pair of byte boundaries (three chunks)', () => {
    const small = concat([new Uint8Array(0), new Uint8Array([1, 2, 3]), new Uint8Array(130).fill(9), new Uint8Array([7])].map(encodeFrame))
    const expected = [[], [1, 2, 3], new Array(130).fill(9), [7]]
    for (let i = 0; i <= small.length; i++) {
      for (let j = i; j <= small.length; j++) {
        const got = decodeAll([small.subarray(0, i), small.subarray(i, j), small.subarray(j)])
        expect(got.map((g) => [...g])).toEqual(expected)
      }
    }
  })

  it('decodes one byte at a time', () => {
    const chunks = [...wire].map((b) => new Uint8Array([b]))
    expect(decodeAll(chunks).map((g) => g.length)).toEqual(payloads.map((p) => p.length))
  })

  it('emits frames inside one chunk without copying', () => {
    const chunk = Buffer.from(concat([encodeFrame(new Uint8Array([1, 2])), encodeFrame(new Uint8Array(500).fill(3))]))
    const out: Uint8Array[] = []
    new FrameDecoder().push(chunk, (f) => out.push(f))
    expect(out).toHaveLength(2)
    for (const f of out) expect(f.buffer).toBe(chunk.buffer)
    expect(out[0]!.byteOffset).toBe(chunk.byteOffset + 1)
    expect(out[1]!.byteOffset).toBe(chunk.byteOffset + 5)
  })

  it('frames inside one chunk are real Buffers over the chunk (FAST_VIEWS holds on this Node), for Buffer and Uint8Array chunks', () => {
    expect(FAST_VIEWS).toBe(true)
    const wire = concat([encodeFrame(new Uint8Array([1, 2])), encodeFrame(new Uint8Array(200).fill(7)), encodeFrame(new Uint8Array([9]))])
    // a pooled Buffer (non-zero byteOffset) and a plain Uint8Array view at an offset
    const pooled = Buffer.from(wire)
    const plain = new Uint8Array(new ArrayBuffer(wire.length + 10), 10, wire.length)
    plain.set(wire)
    for (const chunk of [pooled, plain]) {
      const out: Uint8Array[] = []
      new FrameDecoder().push(chunk, (f) => out.push(f))
      expect(out.map((f) => [...f])).toEqual([[1, 2], new Array(200).fill(7), [9]])
      for (const f of out) {
        expect(Buffer.isBuffer(f)).toBe(true)
        expect(Object.getPrototypeOf(f)).toBe(Buffer.prototype)
        expect(f.buffer).toBe(chunk.buffer)
      }
      expect(out.map((f) => f.byteOffset - chunk.byteOffset)).toEqual([1, 5, 206])
      expect(Buffer.from(out[1]!).toString('hex')).toBe(Buffer.from(new Uint8Array(200).fill(7)).toString('hex'))
    }
  })

  it('a push from inside emit (re-entrant) decodes both chunks correctly', () => {
    const d = new FrameDecoder()
    const outer = Buffer.from(concat([encodeFrame(new Uint8Array([1])), encodeFrame(new Uint8Array([2, 2]))]))
    const inner = Buffer.from(concat([encodeFrame(new Uint8Array([3, 3, 3]))]))
    const out: number[][] = []
    let nested = false
    d.push(outer, (f) => {
      out.push([...f])
      if (!nested) {
        nested = true
        d.push(inner, (g) => out.push([...g]))
      }
    })
    expect(out).toEqual([[1], [3, 3, 3], [2, 2]])
  })

  it('checks the declared length against maxLength before buffering', () => {
    const d = new FrameDecoder(100)
    const out: Uint8Array[] = []
    // a 3-byte prefix declaring 1 MiB, with no payload at all
    const err = (() => {
      try {
        d.push(new Uint8Array([5, 1, 2, 3, 4, 5, ...encodeVarint(1 << 20)]), (f) => out.push(f))
      } catch (e) {
        return e
      }
    })()
    expect(out).toHaveLength(1) // the good frame before the fault was delivered
    expect(isRxnetError(err, 'ERR_FRAME_TOO_LONG')).toBe(true)
    expect(err).toMatchObject({ length: 1 << 20, maxLength: 100 })
    expect(decodeAll([encodeFrame(new Uint8Array(100))], 100)[0]!.length).toBe(100)
    expect(DEFAULT_MAX_LENGTH).toBe(4 * 1024 * 1024)
  })

  it('reports a stream that ends inside a frame or a prefix with ERR_TRUNCATED_FRAME', () => {
    expect(() => decodeAll([new Uint8Array([5, 1, 2])])).toThrow(expect.objectContaining({ code: 'ERR_TRUNCATED_FRAME' }))
    expect(() => decodeAll([new Uint8Array([0x80])])).toThrow(expect.objectContaining({ code: 'ERR_TRUNCATED_FRAME' }))
    expect(decodeAll([])).toEqual([])
  })

  it('rejects garbage prefixes with ERR_INVALID_LENGTH', () => {
    expect(() => decodeAll([new Uint8Array(20).fill(0xff)])).toThrow(expect.objectContaining({ code: 'ERR_INVALID_LENGTH' }))
  })

  it('rejects all-0xff garbage with a typed error whatever maxLength is', () => {
    for (const max of [0, 1, 1000, DEFAULT_MAX_LENGTH]) {
      let err: unknown
      try {
        decodeAll([new Uint8Array(64).fill(0xff)], max)
      } catch (e) {
        err = e
      }
      expect(isRxnetError(err)).toBe(true)
      expect(['ERR_INVALID_LENGTH', 'ERR_FRAME_TOO_LONG']).toContain((err as { code: string }).code)
    }
  })
})
