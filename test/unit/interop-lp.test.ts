import fc from 'fast-check'
import * as lp from 'it-length-prefixed'
import { pipe } from 'it-pipe'
import { from, lastValueFrom, toArray } from 'rxjs'
import { Uint8ArrayList } from 'uint8arraylist'
import { describe, expect, it } from 'vitest'
import { frame, unframe } from 'rxnet/operators'
import { FrameDecoder } from '../../src/framing/decoder.js'
import { encodeBatch, encodeFrame, framedSize } from '../../src/framing/encoder.js'
import { chunkAt } from './chunks.js'

const RUNS = 1000
const hex = (b: Uint8Array | Uint8ArrayList): string => Buffer.from(b.subarray()).toString('hex')

/** Sizes that cross every varint width boundary it-length-prefixed cares about. */
const payload = fc.oneof(
  fc.uint8Array({ maxLength: 200 }),
  fc.integer({ min: 120, max: 20_000 }).map((n) => new Uint8Array(n).fill(n & 0xff)),
)
const payloads = fc.array(payload, { maxLength: 12 })
const cuts = fc.array(fc.nat(), { maxLength: 10 })

describe('interop with it-length-prefixed', () => {
  it('our encoder -> its decoder (random chunking)', () => {
    fc.assert(
      fc.property(payloads, cuts, (ps, cs) => {
        const wire = encodeBatch(ps, 0, ps.length, framedSize(ps, 0, ps.length))
        // byte-identical to its encoder
        expect(hex(wire)).toBe(hex(new Uint8ArrayList(...lp.encode(ps))))
        const got = [...lp.decode(chunkAt(wire, cs))]
        expect(got.map(hex)).toEqual(ps.map(hex))
      }),
      { numRuns: RUNS },
    )
  })

  it('its encoder -> our decoder (random chunking)', () => {
    fc.assert(
      fc.property(payloads, cuts, (ps, cs) => {
        const wire = new Uint8ArrayList(...lp.encode(ps)).subarray()
        const d = new FrameDecoder()
        const got: string[] = []
        for (const c of chunkAt(wire, cs)) d.push(c, (f) => got.push(hex(f)))
        d.end()
        expect(got).toEqual(ps.map(hex))
        for (const p of ps) expect(hex(encodeFrame(p))).toBe(hex(lp.encode.single(p)))
      }),
      { numRuns: RUNS },
    )
  })

  it('frame() output decodes with lp.decode inside it-pipe, and lp.encode output unframes, async', async () => {
    await fc.assert(
      fc.asyncProperty(payloads, cuts, async (ps, cs) => {
        const framed = await lastValueFrom(from(ps).pipe(frame(), toArray()))
        const wire = new Uint8Array(Buffer.concat(framed))
        const viaPipe = await pipe(
          (async function* () {
            yield* chunkAt(wire, cs)
          })(),
          (src) => lp.decode(src),
          async (src) => {
            const out: string[] = []
            for await (const m of src) out.push(hex(m))
            return out
          },
        )
        expect(viaPipe).toEqual(ps.map(hex))

        const theirs = await pipe(
          (async function* () {
            yield* ps
          })(),
          (src) => lp.encode(src),
          async (src) => {
            const out: Uint8Array[] = []
            for await (const c of src) out.push(c.subarray())
            return out
          },
        )
        const rechunked = chunkAt(new Uint8Array(Buffer.concat(theirs)), cs)
        const ours = await lastValueFrom(from(rechunked).pipe(unframe(), toArray()))
        expect(ours.map(hex)).toEqual(ps.map(hex))
      }),
      { numRuns: RUNS },
    )
  })

  it('agrees with it-length-prefixed on what is too long', () => {
    const wire = lp.encode.single(new Uint8Array(1000)).subarray()
    expect(() => [...lp.decode([wire], { maxDataLength: 999 })]).toThrow()
    expect(() => new FrameDecoder(999).push(wire, () => {})).toThrow(expect.objectContaining({ code: 'ERR_FRAME_TOO_LONG' }))
  })
})
