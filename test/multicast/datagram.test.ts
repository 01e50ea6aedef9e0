// Pure wire format, sealing and sequence window: no sockets.
import { randomBytes } from 'node:crypto'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { deriveKey, open, seal } from '../../src/multicast/crypto.js'
import {
  HEADER_BYTES,
  TAG_BYTES,
  decodeBody,
  encodeDatagram,
  encodeHeader,
  maxMessageSize,
  overhead,
  parseHeader,
  senderIdToHex,
  writeHeader,
} from '../../src/multicast/datagram.js'
import { encodeBatch, framedSize } from '../../src/framing/encoder.js'
import { varintLength } from '../../src/framing/varint.js'
import { SequenceWindow } from '../../src/multicast/window.js'

const id = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 0xff])

function sealed(key: Buffer, senderId: Uint8Array, seq: number, messages: Uint8Array[]): Buffer {
  return seal(key, encodeHeader(senderId, seq, true), encodeBatch(messages, 0, messages.length, framedSize(messages, 0, messages.length)))
}

describe('datagram format', () => {
  it('round-trips header and packed messages', () => {
    const msgs = [new Uint8Array(0), Uint8Array.from([1]), new Uint8Array(200).fill(7), new Uint8Array(20_000).fill(9)]
    const dg = encodeDatagram(id, 0xfffffffe, msgs)
    expect(dg.length).toBe(HEADER_BYTES + msgs.reduce((n, m) => n + m.length + varintLength(m.length), 0))
    const h = parseHeader(dg)
    expect(h).toEqual({ sealed: false, senderId: '01020304050607ff', seq: 0xfffffffe })
    const body = decodeBody(dg.subarray(HEADER_BYTES))
    expect(body).not.toBe('malformed')
    expect((body as Uint8Array[]).map((m) => Buffer.from(m))).toEqual(msgs.map((m) => Buffer.from(m)))
  })

  it('rejects short, foreign and unknown-version datagrams', () => {
    const dg = encodeDatagram(id, 1, [Uint8Array.from([1])])
    expect(parseHeader(dg.subarray(0, HEADER_BYTES - 1))).toBe('truncated')
    expect(parseHeader(Buffer.from([0x00, ...dg.subarray(1)]))).toBe('foreign')
    expect(parseHeader(Buffer.from([dg[0]!, 0x20, ...dg.subarray(2)]))).toBe('version')
    expect(parseHeader(Buffer.from([dg[0]!, 0x12, ...dg.subarray(2)]))).toBe('version')
  })

  it('rejects a body whose lengths do not add up, delivering nothing', () => {
    expect(decodeBody(Uint8Array.from([3, 1, 2]))).toBe('malformed') // declared 3, has 2
    expect(decodeBody(Uint8Array.from([1, 9, 0x80]))).toBe('malformed') // trailing partial varint
    expect(decodeBody(Uint8Array.from([0xff, 0xff, 0xff, 0x01]))).toBe('malformed') // 4-byte varint
    expect(decodeBody(new Uint8Array(0))).toEqual([])
    // split every valid body at every byte: each prefix decodes to a prefix of the messages or is malformed
    const dg = encodeDatagram(id, 0, [Uint8Array.from([1, 2]), new Uint8Array(130).fill(3), Uint8Array.from([4])])
    const body = dg.subarray(HEADER_BYTES)
    for (let i = 0; i <= body.length; i++) {
      const r = decodeBody(body.subarray(0, i))
      if (i === 0 || i === 3 || i === 3 + 132 || i === body.length) expect(r).not.toBe('malformed')
      else expect(r).toBe('malformed')
    }
  })

  it('computes the largest message that fits', () => {
    for (const max of [16, 31, 128, 129, 130, 131, 1400, 16_400, 65_507]) {
      for (const s of [false, true]) {
        if (max < overhead(s) + 2) continue
        const n = maxMessageSize(max, s)
        expect(n + varintLength(n) + overhead(s)).toBeLessThanOrEqual(max)
        expect(n + 1 + varintLength(n + 1) + overhead(s)).toBeGreaterThan(max)
      }
    }
  })

  it('hex-encodes sender ids', () => {
    expect(senderIdToHex(Uint8Array.from([0, 1, 0xab, 0xcd, 0xef, 0x10, 0x7f, 0x80]))).toBe('0001abcdef107f80')
  })

  it('never throws on garbage (fast-check)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), (bytes) => {
        const h = parseHeader(bytes)
        const b = decodeBody(bytes)
        if (b !== 'malformed') expect(b.reduce((n, m) => n + m.length + varintLength(m.length), 0)).toBe(bytes.length)
        return typeof h === 'string' || typeof h === 'object'
      }),
      { numRuns: 2000 },
    )
  })

  it('header + garbage body with a valid magic never throws (fast-check)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.uint8Array({ maxLength: 1500 }), (seq, rest) => {
        const dg = Buffer.alloc(HEADER_BYTES + rest.length)
        writeHeader(dg, id, seq, false)
        dg.set(rest, HEADER_BYTES)
        const h = parseHeader(dg)
        expect(h).toMatchObject({ seq, sealed: false })
        decodeBody(dg.subarray(HEADER_BYTES))
      }),
      { numRuns: 1000 },
    )
  })
})

describe('sealing', () => {
  const key = deriveKey('correct horse')

  it('derives the same 32-byte key from the same secret, another from another', () => {
    expect(deriveKey('correct horse')).toEqual(key)
    expect(deriveKey(Buffer.from('correct horse'))).toEqual(key)
    expect(key.length).toBe(32)
    expect(deriveKey('other')).not.toEqual(key)
    expect(() => deriveKey('')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
  })

  it('seals and opens; body is not readable without the key', () => {
    const msg = Buffer.from('secret message, quite recognisable')
    const dg = sealed(key, id, 42, [msg])
    expect(dg.includes(msg)).toBe(false)
    const body = open(key, dg)
    expect(body).not.toBeNull()
    expect(Buffer.from((decodeBody(body!) as Uint8Array[])[0]!)).toEqual(msg)
    expect(open(deriveKey('wrong'), dg)).toBeNull()
  })

  it('rejects any single flipped bit, in header or body or tag, and any truncation', () => {
    const dg = sealed(key, id, 7, [Buffer.from('abc'), Buffer.from('defgh')])
    for (let i = 0; i < dg.length; i++) {
      for (const bit of [0x01, 0x80]) {
        const bad = Buffer.from(dg)
        bad[i]! ^= bit
        expect(open(key, bad)).toBeNull()
      }
    }
    for (let n = 0; n < dg.length; n++) expect(open(key, dg.subarray(0, n))).toBeNull()
  })

  it('open() never throws on garbage (fast-check)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        expect(open(key, bytes)).toBeNull()
      }),
      { numRuns: 500 },
    )
  })

  it('seals a packed datagram of many messages', () => {
    const items = Array.from({ length: 20 }, (_, i) => randomBytes(i * 3))
    const dg = sealed(key, id, 9, items)
    expect(dg.length).toBe(HEADER_BYTES + framedSize(items, 0, items.length) + TAG_BYTES)
    expect(parseHeader(dg)).toEqual({ sealed: true, senderId: '01020304050607ff', seq: 9 })
    expect((decodeBody(open(key, dg)!) as Uint8Array[]).map((m) => Buffer.from(m))).toEqual(items)
  })
})

describe('SequenceWindow', () => {
  it('accepts in-order, drops duplicates, counts gaps and late arrivals', () => {
    const w = new SequenceWindow(64, 10)
    expect(w.check(10)).toBe('duplicate')
    expect(w.check(11)).toBe('new')
    w.accept(11)
    expect(w.gaps).toBe(0)
    expect(w.check(15)).toBe('new')
    w.accept(15) // 12, 13, 14 skipped
    expect(w.gaps).toBe(3)
    expect(w.check(13)).toBe('new')
    w.accept(13)
    expect(w.reordered).toBe(1)
    expect(w.check(13)).toBe('duplicate')
    expect(w.check(11)).toBe('duplicate')
    expect(w.check(12)).toBe('new')
    expect(w.datagrams).toBe(4)
  })

  it('treats anything older than the window as stale', () => {
    const w = new SequenceWindow(32, 0)
    w.accept(100)
    expect(w.check(100 - 31)).toBe('new')
    expect(w.check(100 - 32)).toBe('stale')
    expect(w.check(0)).toBe('stale')
  })

  it('clears bits when it slides, including across uint32 wrap', () => {
    const w = new SequenceWindow(32, 0xfffffff0)
    for (let s = 0xfffffff1; s <= 0xffffffff; s++) w.accept(s)
    w.accept(0)
    w.accept(5)
    expect(w.gaps).toBe(4)
    expect(w.check(3)).toBe('new')
    expect(w.check(0)).toBe('duplicate')
    expect(w.check(0xffffffff)).toBe('duplicate')
    w.accept(1000) // jump further than the window: all bits cleared
    expect(w.check(1000 - 5)).toBe('new')
    expect(w.check(1000)).toBe('duplicate')
  })

  it('agrees with a Set-based model (fast-check)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 300 }), { minLength: 1, maxLength: 300 }), (seqs) => {
        const size = 64
        const w = new SequenceWindow(size, seqs[0]!)
        const seen = new Set([seqs[0]!])
        let highest = seqs[0]!
        for (const s of seqs.slice(1)) {
          const expected = seen.has(s) ? 'duplicate' : s <= highest - size ? 'stale' : 'new'
          const v = w.check(s)
          if (v === 'duplicate' && !seen.has(s)) return false
          if (expected !== v && !(expected === 'duplicate' && v === 'stale')) return false
          if (v === 'new') {
            w.accept(s)
            seen.add(s)
            highest = Math.max(highest, s)
          }
        }
        return true
      }),
      { numRuns: 500 },
    )
  })
})
