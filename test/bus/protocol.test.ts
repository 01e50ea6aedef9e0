import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { RxnetError } from 'rxnet'
import {
  BUS_PROTOCOL_VERSION,
  decodeFrame,
  encodeAck,
  encodeHello,
  encodeMsg,
  encodePing,
  encodePong,
  encodePub,
  encodePubText,
  encodeString,
  encodeSub,
  encodeUnsub,
  encodeWelcome,
  encodeMsgs,
  encodePubs,
  forEachEntry,
  pubToMsg,
  singleMsgs,
  sliceMsgs,
  type Batch,
} from '../../src/bus/protocol.js'

describe('hub frames', () => {
  it('round-trips every frame type', () => {
    const payload = new Uint8Array([1, 2, 3])
    expect(decodeFrame(encodeHello('client-1', true))).toEqual({ type: 'hello', version: BUS_PROTOCOL_VERSION, echo: true, id: 'client-1' })
    expect(decodeFrame(encodeWelcome('hub'))).toEqual({ type: 'welcome', version: BUS_PROTOCOL_VERSION, hubId: 'hub' })
    expect(decodeFrame(encodeSub('log.>'))).toEqual({ type: 'sub', pattern: 'log.>' })
    expect(decodeFrame(encodeUnsub('log.*'))).toEqual({ type: 'unsub', pattern: 'log.*' })
    const pub = decodeFrame(encodePub(300, 'log.é', payload))
    expect(pub).toMatchObject({ type: 'pub', seq: 300, topic: 'log.é' })
    expect([...(pub as { payload: Uint8Array }).payload]).toEqual([1, 2, 3])
    const msg = decodeFrame(encodeMsg(2 ** 40, 'o', 't', payload))
    expect(msg).toMatchObject({ type: 'msg', seq: 2 ** 40, origin: 'o', topic: 't' })
    expect([...(msg as { payload: Uint8Array }).payload]).toEqual([1, 2, 3])
    expect(decodeFrame(encodeAck(7))).toEqual({ type: 'ack', seq: 7 })
    expect(decodeFrame(encodePing(9))).toEqual({ type: 'ping', id: 9 })
    expect(decodeFrame(encodePong(9))).toEqual({ type: 'pong', id: 9 })
  })

  it('pubToMsg equals encodeMsg for any seq, origin, topic and payload', () => {
    fc.assert(
      fc.property(fc.nat(), fc.string({ minLength: 1, maxLength: 64 }), fc.string({ minLength: 1, maxLength: 200 }), fc.uint8Array({ maxLength: 300 }), (seq, origin, topic, payload) => {
        if (Buffer.byteLength(origin) > 64) return
        const msg = pubToMsg(encodePub(seq, topic, payload), encodeString(origin))
        expect(Buffer.from(msg).equals(Buffer.from(encodeMsg(seq, origin, topic, payload)))).toBe(true)
        expect(decodeFrame(msg)).toMatchObject({ type: 'msg', seq, origin, topic })
      }),
    )
  })

  it('encodePubText (the JSON fast path) equals encodePub of the UTF-8 text', () => {
    fc.assert(
      fc.property(fc.nat(), fc.string({ minLength: 1, maxLength: 50 }), fc.jsonValue(), (seq, topic, value) => {
        const text = JSON.stringify(value)
        const a = encodePubText(seq, encodeString(topic), text)
        const b = encodePub(seq, topic, new TextEncoder().encode(text))
        expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true)
      }),
    )
  })

  it('garbage never crashes: it decodes or throws ERR_PROTOCOL', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
        try {
          decodeFrame(bytes)
        } catch (e) {
          expect(e).toBeInstanceOf(RxnetError)
          expect((e as RxnetError).code).toBe('ERR_PROTOCOL')
        }
      }),
      { numRuns: 5000 },
    )
  })

  it('every truncation of a valid frame is refused with ERR_PROTOCOL (except the open-ended payload/pattern)', () => {
    const frames = [encodeHello('abc', false), encodeWelcome('h'), encodeMsg(1000, 'origin', 'topic', new Uint8Array()), encodeAck(1 << 20), encodePing(5000)]
    for (const f of frames) {
      for (let n = 0; n < f.length; n++) {
        expect(() => decodeFrame(f.subarray(0, n)), `${f[0]} cut at ${n}`).toThrow(expect.objectContaining({ code: 'ERR_PROTOCOL' }))
      }
    }
  })

  it('refuses oversized ids and topics on their declared length, invalid UTF-8, trailing bytes, unknown types', () => {
    const bad = [
      new Uint8Array([1, 1, 0, 100, ...new Uint8Array(100).fill(97)]), // id of 100 bytes
      new Uint8Array([5, 1, 0xff, 0xff, 0x03]), // topic declares ~65k bytes
      new Uint8Array([3, 0xc3, 0x28]), // SUB with invalid UTF-8
      new Uint8Array([7, 1, 0]), // ACK with a trailing byte
      new Uint8Array([42]),
      new Uint8Array([7, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), // varint too long
      new Uint8Array([1, 1, 0, 0]), // empty client id
    ]
    for (const b of bad) expect(() => decodeFrame(b)).toThrow(expect.objectContaining({ code: 'ERR_PROTOCOL' }))
  })
})

describe('batch frames (PUBS / MSGS)', () => {
  const entries = (frame: Uint8Array): [number, number[]][] => {
    const out: [number, number[]][] = []
    forEachEntry(frame, decodeFrame(frame) as Batch<'pubs'>, (seq, from, to) => out.push([seq, [...frame.subarray(from, to)]]))
    return out
  }
  const payloadsArb = fc.array(fc.uint8Array({ maxLength: 300 }), { minLength: 1, maxLength: 20 })

  it('round-trip: seq, count, topic, and each payload in order with its own seq', () => {
    fc.assert(
      fc.property(fc.nat(), fc.string({ minLength: 1, maxLength: 100 }), payloadsArb, (seq, topic, payloads) => {
        const f = encodePubs(seq, topic, payloads)
        expect(decodeFrame(f)).toMatchObject({ type: 'pubs', seq, count: payloads.length, topic, largest: Math.max(...payloads.map((p) => p.length)) })
        expect(entries(f)).toEqual(payloads.map((p, i) => [seq + i, [...p]]))
      }),
    )
  })

  it('pubToMsg turns a PUBS into the MSGS encodeMsgs makes', () => {
    fc.assert(
      fc.property(fc.nat(), fc.string({ minLength: 1, maxLength: 64 }), fc.string({ minLength: 1, maxLength: 100 }), payloadsArb, (seq, origin, topic, payloads) => {
        if (Buffer.byteLength(origin) > 64) return
        const msgs = pubToMsg(encodePubs(seq, topic, payloads), encodeString(origin))
        expect(Buffer.from(msgs).equals(Buffer.from(encodeMsgs(seq, origin, topic, payloads)))).toBe(true)
        expect(decodeFrame(msgs)).toMatchObject({ type: 'msgs', seq, origin, count: payloads.length, topic })
      }),
    )
  })

  it('singleMsgs gives one MSG per message (what bridges carry); sliceMsgs drops the first entries', () => {
    const payloads = [1, 2, 3].map((n) => new Uint8Array([n]))
    const msgs = encodeMsgs(10, 'o', 't', payloads)
    expect(singleMsgs(msgs).map((m) => Buffer.from(m).toString('hex'))).toEqual(payloads.map((p, i) => Buffer.from(encodeMsg(10 + i, 'o', 't', p)).toString('hex')))
    const single = encodeMsg(1, 'o', 't', payloads[0]!)
    expect(singleMsgs(single)).toEqual([single])
    const f = decodeFrame(msgs) as Batch<'msgs'> & { origin: string }
    expect(Buffer.from(sliceMsgs(msgs, f, 1)).equals(Buffer.from(encodeMsgs(11, 'o', 't', payloads.slice(1))))).toBe(true)
    expect(Buffer.from(sliceMsgs(msgs, f, 2)).equals(Buffer.from(encodeMsg(12, 'o', 't', payloads[2]!)))).toBe(true)
  })

  it('refuses batches whose entries do not add up to the frame: empty, truncated, trailing bytes, seq past 2^53', () => {
    const ok = encodePubs(1, 't', [new Uint8Array([1, 2]), new Uint8Array([3])])
    for (let n = 0; n < ok.length; n++) expect(() => decodeFrame(ok.subarray(0, n)), `cut at ${n}`).toThrow(expect.objectContaining({ code: 'ERR_PROTOCOL' }))
    const bad = [
      new Uint8Array([11, 1, 0, 1, 116]), // count 0
      new Uint8Array([...ok, 0]), // a trailing byte
      new Uint8Array([11, 1, 3, 1, 116, 1, 1, 1, 2]), // count 3, two entries
      new Uint8Array([12, 1, 1, 111, 1, 1, 116, 5, 1]), // MSGS: entry declares 5 bytes, has 1
      new Uint8Array([11, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f, 2, 1, 116, 0, 0]), // seq 2^53 - 1, two entries
    ]
    for (const b of bad) expect(() => decodeFrame(b)).toThrow(expect.objectContaining({ code: 'ERR_PROTOCOL' }))
  })
})
