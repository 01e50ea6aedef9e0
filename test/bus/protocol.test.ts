import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { RxnetError } from 'rxnet'
import {
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
  pubToMsg,
} from '../../src/bus/protocol.js'

describe('hub frames', () => {
  it('round-trips every frame type', () => {
    const payload = new Uint8Array([1, 2, 3])
    expect(decodeFrame(encodeHello('client-1', true))).toEqual({ type: 'hello', version: 1, echo: true, id: 'client-1' })
    expect(decodeFrame(encodeWelcome('hub'))).toEqual({ type: 'welcome', version: 1, hubId: 'hub' })
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
