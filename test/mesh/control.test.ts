// The mesh control protocol (src/mesh/control.ts) on plain Uint8Arrays: round trips, the wire
// bytes, malformed input, and the demux that splits user frames from control messages.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { CONTROL_TYPES, ControlDemux, controlWire, decodeControl, encodeControl, type ControlMessage } from '../../src/mesh/control.js'

describe('mesh control messages', () => {
  it('round-trip every registered type; the wire form is marker frame + body frame', () => {
    const all: ControlMessage[] = [{ kind: 'ping', time: 12.5 }, { kind: 'pong', time: 1e9 }, { kind: 'empty' }, { kind: 'goodbye' }, { kind: 'summary', body: Uint8Array.of(123, 125) }]
    expect(all.map((m) => m.kind).sort()).toEqual(Object.keys(CONTROL_TYPES).sort())
    for (const m of all) {
      const body = encodeControl(m)
      expect(decodeControl(body)).toEqual(m)
      expect([...controlWire(m)]).toEqual([0, body.length, ...body])
    }
  })

  it('a summary of any size goes with a varint length (a 300-byte body takes two length bytes)', () => {
    const body = new Uint8Array(300).fill(7)
    const wire = controlWire({ kind: 'summary', body })
    expect([...wire.subarray(0, 4)]).toEqual([0, 301 & 0x7f | 0x80, 301 >> 7, 5])
    expect(wire.length).toBe(3 + 301)
    expect(decodeControl(wire.subarray(3))).toEqual({ kind: 'summary', body })
  })

  it('an unknown type or a wrong body length is ERR_PROTOCOL; garbage never throws anything else (fast-check)', () => {
    expect(() => decodeControl(Uint8Array.of(99))).toThrow(expect.objectContaining({ code: 'ERR_PROTOCOL' }))
    expect(() => decodeControl(Uint8Array.of(1, 0, 0))).toThrow(expect.objectContaining({ code: 'ERR_PROTOCOL' }))
    expect(() => decodeControl(new Uint8Array(0))).toThrow(expect.objectContaining({ code: 'ERR_PROTOCOL' }))
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 16 }), (b) => {
        try {
          decodeControl(b)
        } catch (e) {
          expect(e).toMatchObject({ code: 'ERR_PROTOCOL' })
        }
      }),
    )
  })

  it('the demux passes user frames through untouched and decodes what follows a marker', () => {
    const users: Uint8Array[] = []
    const controls: ControlMessage[] = []
    const d = new ControlDemux((f) => users.push(f), (m) => controls.push(m))
    const u = Uint8Array.of(7, 8, 9)
    for (const f of [u, new Uint8Array(0), encodeControl({ kind: 'goodbye' }), Uint8Array.of(0)]) d.push(f)
    expect(users).toEqual([u, Uint8Array.of(0)])
    expect(users[0]).toBe(u)
    expect(controls).toEqual([{ kind: 'goodbye' }])
  })
})
