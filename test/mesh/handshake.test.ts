import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { encodeHandshake, HandshakeDecoder, MAX_HANDSHAKE_BODY, type HandshakeMessage } from '../../src/mesh/handshake.js'
import { HandshakeError } from '../../src/errors.js'

const msg: HandshakeMessage = { kind: 'hello', version: 1, name: 'my-cluster', id: 'a6c953a8c1f1', port: 40123, reason: 'none', flags: 1 }

describe('mesh handshake encoder / decoder', () => {
  it('round-trips when split at every byte boundary, and hands back the bytes that follow', () => {
    const bytes = Buffer.concat([encodeHandshake(msg), Buffer.from([9, 8, 7])])
    for (let cut = 0; cut <= bytes.length; cut++) {
      const d = new HandshakeDecoder()
      const first = d.push(bytes.subarray(0, cut))
      const r = first ?? d.push(bytes.subarray(cut))
      expect(r?.message).toEqual(msg)
      expect([...(first ? Buffer.concat([r!.rest, bytes.subarray(cut)]) : r!.rest)]).toEqual([9, 8, 7])
    }
  })

  it('round-trips any name, id, port and kind (fast-check)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 60 }), fc.string({ minLength: 1, maxLength: 48 }), fc.integer({ min: 0, max: 65535 }), fc.constantFrom('hello', 'welcome', 'refuse' as const), (name, id, port, kind) => {
        const m = { kind, version: 1, name, id, port, reason: 'none' as const, flags: 0 }
        expect(new HandshakeDecoder().push(encodeHandshake(m))?.message).toEqual(m)
      }),
    )
  })

  it('the last byte is capability flags outside a refuse: a build without them writes 0 and ignores them', () => {
    const hello = encodeHandshake({ kind: 'hello', name: 'm', id: 'x', port: 1, flags: 1 })
    expect(hello[hello.length - 1]).toBe(1)
    expect(new HandshakeDecoder().push(hello)?.message).toMatchObject({ reason: 'none', flags: 1 })
    const refuse = encodeHandshake({ kind: 'refuse', name: 'm', id: 'x', port: 1, reason: 'tiebreak', flags: 1 })
    expect(new HandshakeDecoder().push(refuse)?.message).toMatchObject({ reason: 'tiebreak', flags: 0 })
  })

  it('garbage never throws anything but HandshakeError (fast-check)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        try {
          new HandshakeDecoder().push(bytes)
        } catch (e) {
          expect(e).toBeInstanceOf(HandshakeError)
        }
      }),
    )
  })

  it('checks the declared length before buffering, and the magic on the first bytes', () => {
    const big = encodeHandshake(msg)
    big.writeUInt16BE(MAX_HANDSHAKE_BODY + 1, 6)
    expect(() => new HandshakeDecoder().push(big.subarray(0, 8))).toThrow(HandshakeError)
    expect(() => new HandshakeDecoder().push(Buffer.from('G'))).toThrow(HandshakeError)
    const d = new HandshakeDecoder()
    d.push(encodeHandshake(msg).subarray(0, 5))
    expect(d.pending).toBe(5)
    expect(() => d.end()).toThrow(/truncated/)
    expect(() => encodeHandshake({ ...msg, id: 'x'.repeat(300) })).toThrow(HandshakeError)
  })
})
