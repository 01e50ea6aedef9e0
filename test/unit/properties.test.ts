import fc from 'fast-check'
import { lastValueFrom, from, toArray } from 'rxjs'
import { describe, expect, it } from 'vitest'
import { codecs, isRxnetError, type Codec } from 'rxnet'
import { decode, encode, frame, unframe } from 'rxnet/operators'
import { FrameDecoder } from '../../src/framing/decoder.js'
import { encodeFrame } from '../../src/framing/encoder.js'
import { encodeVarint, VarintReader } from '../../src/framing/varint.js'
import { chunkAt } from './chunks.js'

const RUNS = 1000

const payloads = fc.array(fc.uint8Array({ maxLength: 600 }), { maxLength: 20 })
const cuts = fc.array(fc.nat(), { maxLength: 12 })

describe('property: framing', () => {
  it('varint round-trips every safe integer', () => {
    fc.assert(
      fc.property(fc.maxSafeNat(), (n) => {
        const r = new VarintReader()
        let v = -1
        for (const b of encodeVarint(n)) v = r.push(b)
        expect(v).toBe(n)
      }),
      { numRuns: RUNS },
    )
  })

  it('unframe(frame(x)) === x under any chunking', async () => {
    await fc.assert(
      fc.asyncProperty(payloads, cuts, async (ps, cs) => {
        const wire = new Uint8Array(Buffer.concat(await lastValueFrom(from(ps).pipe(frame(), toArray()))))
        const got = await lastValueFrom(from(chunkAt(wire, cs)).pipe(unframe(), toArray()))
        expect(got.map((g) => Buffer.from(g).toString('hex'))).toEqual(ps.map((p) => Buffer.from(p).toString('hex')))
      }),
      { numRuns: RUNS },
    )
  })

  it('garbage input yields only frames or a typed error, never a crash or a hang', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), cuts, fc.integer({ min: 0, max: 1024 }), (garbage, cs, maxLength) => {
        const d = new FrameDecoder(maxLength)
        let frames = 0
        let bytes = 0
        try {
          for (const c of chunkAt(garbage, cs)) {
            d.push(c, (f) => {
              frames++
              bytes += f.length
              expect(f.length).toBeLessThanOrEqual(maxLength)
            })
          }
          d.end()
        } catch (e) {
          expect(isRxnetError(e)).toBe(true)
          expect(['ERR_FRAME_TOO_LONG', 'ERR_INVALID_LENGTH', 'ERR_TRUNCATED_FRAME']).toContain((e as { code: string }).code)
        }
        // every frame consumed at least its one-byte prefix
        expect(frames + bytes).toBeLessThanOrEqual(garbage.length)
      }),
      { numRuns: RUNS },
    )
  })

  it('garbage through unframe() errors with a typed error or completes', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), cuts, async (garbage, cs) => {
        try {
          await lastValueFrom(from(chunkAt(garbage, cs)).pipe(unframe({ maxLength: 256 }), toArray()))
        } catch (e) {
          expect(isRxnetError(e)).toBe(true)
        }
      }),
      { numRuns: RUNS },
    )
  })

  it('valid frames followed by garbage deliver the valid frames first', () => {
    fc.assert(
      fc.property(payloads, fc.uint8Array({ minLength: 1, maxLength: 50 }), (ps, garbage) => {
        const d = new FrameDecoder(1000)
        const got: Uint8Array[] = []
        try {
          d.push(new Uint8Array(Buffer.concat([...ps.map(encodeFrame), garbage])), (f) => got.push(f))
          d.end()
        } catch (e) {
          expect(isRxnetError(e)).toBe(true)
        }
        expect(got.length).toBeGreaterThanOrEqual(ps.length)
        for (let i = 0; i < ps.length; i++) expect(Buffer.compare(got[i]!, ps[i]!)).toBe(0)
      }),
      { numRuns: RUNS },
    )
  })
})

// JSON cannot carry -0, undefined or non-plain objects faithfully: compare against the JSON image.
const jsonValue = fc.jsonValue()
const msgpackValue = fc.oneof(
  fc.jsonValue(),
  fc.dictionary(fc.string(), fc.oneof(fc.uint8Array({ maxLength: 30 }), fc.double({ noNaN: true }), fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }))),
)

async function roundTrip<T>(codec: 'json' | 'msgpack' | Codec<T>, values: T[]): Promise<unknown[]> {
  return lastValueFrom(from(values).pipe(encode(codec as Codec<T>), frame(), unframe(), decode(codec as Codec<T>), toArray()))
}

describe('property: codecs', () => {
  it('json round-trips any JSON value through encode/frame/unframe/decode', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(jsonValue, { maxLength: 5 }), async (vs) => {
        expect(await roundTrip('json', vs)).toEqual(JSON.parse(JSON.stringify(vs)))
      }),
      { numRuns: RUNS },
    )
  })

  it('msgpack round-trips JSON values, binaries, doubles and 64-bit integers', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(msgpackValue, { maxLength: 5 }), async (vs) => {
        fc.pre(!hasProtoKey(vs)) // msgpackr renames "__proto__" keys (prototype-pollution guard), tested below
        const got = (await roundTrip('msgpack', vs)) as unknown[]
        expect(got.length).toBe(vs.length)
        for (let i = 0; i < vs.length; i++) expect(normalise(got[i])).toEqual(normalise(vs[i]))
      }),
      { numRuns: RUNS },
    )
  })

  it('msgpack does not revive "__proto__" keys (msgpackr guards against prototype pollution)', () => {
    const decoded = codecs.msgpack.decode(codecs.msgpack.encode(JSON.parse('{"__proto__":{"polluted":1}}'))) as Record<string, unknown>
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
    expect(Object.getPrototypeOf(decoded)).toBe(Object.prototype)
  })

  it('utf8 round-trips any string; raw round-trips any bytes', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.string({ unit: 'grapheme' }), { maxLength: 5 }), fc.array(fc.uint8Array({ maxLength: 100 }), { maxLength: 5 }), async (ss, bs) => {
        expect(await lastValueFrom(from(ss).pipe(encode('utf8'), frame(), unframe(), decode('utf8'), toArray()))).toEqual(ss)
        const raw = await lastValueFrom(from(bs).pipe(encode('raw'), frame(), unframe(), decode('raw'), toArray()))
        expect(raw.map((r) => [...r])).toEqual(bs.map((b) => [...b]))
      }),
      { numRuns: RUNS },
    )
  })

  it('decoding garbage gives a value or ERR_DECODE with a cause, for every codec', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (garbage) => {
        for (const c of Object.values(codecs) as Codec<unknown>[]) {
          try {
            c.decode(garbage)
          } catch {
            // the operator wraps it
            let err: unknown
            from([garbage]).pipe(decode(c)).subscribe({ error: (e) => (err = e) })
            expect(isRxnetError(err, 'ERR_DECODE')).toBe(true)
            expect((err as Error).cause).toBeDefined()
          }
        }
      }),
      { numRuns: RUNS },
    )
  })
})

/** msgpack decodes binaries as Buffer and small bigints as numbers: compare by value. */
function normalise(v: unknown): unknown {
  if (v instanceof Uint8Array) return { bytes: [...v] }
  if (typeof v === 'bigint') return { int: v.toString() }
  if (typeof v === 'number' && Number.isInteger(v)) return { int: String(v) } // String(-0) === '0'
  if (Array.isArray(v)) return v.map(normalise)
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalise(x)]))
  return v
}

function hasProtoKey(v: unknown): boolean {
  if (Array.isArray(v)) return v.some(hasProtoKey)
  if (v !== null && typeof v === 'object' && !(v instanceof Uint8Array)) return Object.entries(v).some(([k, x]) => k === '__proto__' || hasProtoKey(x))
  return false
}
