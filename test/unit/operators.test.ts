import { of, type Observable, type OperatorFunction } from 'rxjs'
import { TestScheduler } from 'rxjs/testing'
import { describe, expect, expectTypeOf, it } from 'vitest'
import { codecs, DecodeError, EncodeError, isRxnetError, type Codec } from 'rxnet'
import { decode, encode, frame, unframe } from 'rxnet/operators'

/** Typed arrays compare by content (Buffer vs Uint8Array does not matter); errors by code. */
function plain(v: unknown): unknown {
  if (v instanceof Uint8Array) return { bytes: [...v] }
  if (v instanceof Error) return { error: (v as { code?: string }).code ?? v.message }
  if (Array.isArray(v)) return v.map(plain)
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]))
  return v
}

const scheduler = (): TestScheduler => new TestScheduler((actual, expected) => expect(plain(actual)).toEqual(plain(expected)))
const u8 = (...xs: number[]): Uint8Array => new Uint8Array(xs)
const err = (code: string): Error => Object.assign(new Error(code), { code })

describe('frame() marbles', () => {
  it('prefixes every message and passes completion through', () => {
    scheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
      const src = cold('-a-b--c-|', { a: u8(1, 2, 3), b: u8(), c: new Uint8Array(200).fill(1) })
      expectObservable(src.pipe(frame())).toBe('-a-b--c-|', { a: u8(3, 1, 2, 3), b: u8(0), c: u8(0xc8, 0x01, ...new Array(200).fill(1)) })
      expectSubscriptions(src.subscriptions).toBe('^-------!')
    })
  })

  it('unsubscribes from the source when the consumer unsubscribes', () => {
    scheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
      const src = cold('-a-a-a-a-a-|', { a: u8(9) })
      expectObservable(src.pipe(frame()), '^----!').toBe('-a-a-', { a: u8(1, 9) })
      expectSubscriptions(src.subscriptions).toBe('^----!')
    })
  })

  it('passes an upstream error through', () => {
    scheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
      const src = cold('-a-#', { a: u8(1) }, err('ERR_X'))
      expectObservable(src.pipe(frame())).toBe('-a-#', { a: u8(1, 1) }, err('ERR_X'))
      expectSubscriptions(src.subscriptions).toBe('^--!')
    })
  })
})

describe('unframe() marbles', () => {
  it('reassembles frames split across chunks, several per chunk', () => {
    scheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
      const src = cold('-a-----b-----c-|', { a: u8(2, 1), b: u8(2, 1, 0), c: u8(1, 7) })
      // frames arrive with the chunk that completes them
      expectObservable(src.pipe(unframe())).toBe('-------(xy)--z-|', { x: u8(1, 2), y: u8(0), z: u8(7) })
      expectSubscriptions(src.subscriptions).toBe('^--------------!')
    })
  })

  it('errors with ERR_FRAME_TOO_LONG on the declared length and tears the source down', () => {
    scheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
      const src = cold('-a-b-c-|', { a: u8(1, 5), b: u8(100, 0), c: u8(1, 1) })
      expectObservable(src.pipe(unframe({ maxLength: 10 }))).toBe('-a-#', { a: u8(5) }, err('ERR_FRAME_TOO_LONG'))
      expectSubscriptions(src.subscriptions).toBe('^--!')
    })
  })

  it('errors with ERR_TRUNCATED_FRAME when the input completes inside a frame', () => {
    scheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
      const src = cold('-a-|', { a: u8(3, 1) })
      expectObservable(src.pipe(unframe())).toBe('---#', undefined, err('ERR_TRUNCATED_FRAME'))
      expectSubscriptions(src.subscriptions).toBe('^--!')
    })
  })

  it('errors with ERR_INVALID_LENGTH on a prefix that never ends', () => {
    scheduler().run(({ cold, expectObservable }) => {
      const src = cold('-a-|', { a: new Uint8Array(9).fill(0x80) })
      expectObservable(src.pipe(unframe())).toBe('-#', undefined, err('ERR_INVALID_LENGTH'))
    })
  })

  it('unsubscribes from the source on early unsubscribe', () => {
    scheduler().run(({ hot, expectObservable, expectSubscriptions }) => {
      const src = hot('--a--a--a--a--|', { a: u8(1, 4) })
      expectObservable(src.pipe(unframe()), '^-------!').toBe('--a--a--', { a: u8(4) })
      expectSubscriptions(src.subscriptions).toBe('^-------!')
    })
  })

  it('refuses a bad maxLength with ERR_INVALID_ARGUMENT', () => {
    expect(() => unframe({ maxLength: -1 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
    expect(() => unframe({ maxLength: 1.5 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
  })
})

describe('encode() / decode() marbles', () => {
  it('encode(json) then decode(json) is the identity', () => {
    scheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
      const src = cold('-a-b-|', { a: { n: 1 }, b: [1, 'x', null] })
      expectObservable(src.pipe(encode('json'))).toBe('-a-b-|', { a: codecs.json.encode({ n: 1 }), b: codecs.json.encode([1, 'x', null]) })
      expectObservable(src.pipe(encode('json'), decode('json'))).toBe('-a-b-|', { a: { n: 1 }, b: [1, 'x', null] })
      expectSubscriptions(src.subscriptions).toBe(['^----!', '^----!'])
    })
  })

  it('encode errors with ERR_ENCODE on an unserialisable value and unsubscribes', () => {
    scheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
      const src = cold('-a-b-c-|', { a: 1, b: undefined as unknown, c: 2 })
      expectObservable(src.pipe(encode('json'))).toBe('-a-#', { a: codecs.json.encode(1) }, err('ERR_ENCODE'))
      expectSubscriptions(src.subscriptions).toBe('^--!')
    })
  })

  it('decode errors with ERR_DECODE on undecodable input and unsubscribes', () => {
    scheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
      const src = cold('-a-b-c-|', { a: codecs.json.encode(1), b: u8(0x7b), c: codecs.json.encode(2) })
      expectObservable(src.pipe(decode('json'))).toBe('-a-#', { a: 1 }, err('ERR_DECODE'))
      expectSubscriptions(src.subscriptions).toBe('^--!')
    })
  })

  it('decode unsubscribes upstream on early unsubscribe', () => {
    scheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
      const src = cold('-a-a-a-a-|', { a: codecs.utf8.encode('hi') })
      expectObservable(src.pipe(decode('utf8')), '^--!').toBe('-a-', { a: 'hi' })
      expectSubscriptions(src.subscriptions).toBe('^--!')
    })
  })
})

describe('codec errors', () => {
  it('ERR_DECODE carries the codec error as cause', () => {
    let e: unknown
    of(u8(0xff, 0xfe)).pipe(decode('utf8')).subscribe({ error: (x) => (e = x) })
    expect(e).toBeInstanceOf(DecodeError)
    expect(isRxnetError(e, 'ERR_DECODE')).toBe(true)
    expect((e as Error).cause).toBeInstanceOf(TypeError)
    expect((e as Error).message).toContain('utf8')

    of(u8(0xc1)).pipe(decode('msgpack')).subscribe({ error: (x) => (e = x) })
    expect(isRxnetError(e, 'ERR_DECODE')).toBe(true)
    expect((e as Error).cause).toBeInstanceOf(Error)
  })

  it('ERR_ENCODE carries the codec error as cause, for every built-in codec', () => {
    const bad: [Codec<unknown>, unknown][] = [
      [codecs.json, undefined],
      [codecs.json, 10n],
      [codecs.utf8 as Codec<unknown>, 42],
      [codecs.raw as Codec<unknown>, { not: 'bytes' }],
    ]
    for (const [codec, value] of bad) {
      let e: unknown
      of(value).pipe(encode(codec)).subscribe({ error: (x) => (e = x) })
      expect(e).toBeInstanceOf(EncodeError)
      expect((e as { code: string }).code).toBe('ERR_ENCODE')
      expect((e as Error).cause).toBeDefined()
    }
    const circular: Record<string, unknown> = {}
    circular.self = circular
    let e: unknown
    of(circular).pipe(encode('json')).subscribe({ error: (x) => (e = x) })
    expect(isRxnetError(e, 'ERR_ENCODE')).toBe(true)
  })

  it('a custom codec works and its failures are wrapped', () => {
    const upper: Codec<string> = {
      name: 'upper',
      encode: (s) => codecs.utf8.encode(s.toUpperCase()),
      decode: (b) => {
        if (b.length === 0) throw new RangeError('empty')
        return codecs.utf8.decode(b)
      },
    }
    const got: string[] = []
    of('a', 'b').pipe(encode(upper), decode(upper)).subscribe((s) => got.push(s))
    expect(got).toEqual(['A', 'B'])
    let e: unknown
    of(u8()).pipe(decode(upper)).subscribe({ error: (x) => (e = x) })
    expect(isRxnetError(e, 'ERR_DECODE')).toBe(true)
    expect((e as Error).cause).toBeInstanceOf(RangeError)
  })

  it('unknown codec names and malformed codecs are ERR_INVALID_ARGUMENT', () => {
    expect(() => encode('yaml' as 'json')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
    expect(() => decode({ name: 'x' } as unknown as Codec<unknown>)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
  })
})

describe('operator types', () => {
  it('infer their input and output types', () => {
    expectTypeOf(frame()).toEqualTypeOf<OperatorFunction<Uint8Array, Uint8Array>>()
    expectTypeOf(unframe({ maxLength: 10 })).toEqualTypeOf<OperatorFunction<Uint8Array, Uint8Array>>()
    expectTypeOf(decode('utf8')).toEqualTypeOf<OperatorFunction<Uint8Array, string>>()
    expectTypeOf(decode('raw')).toEqualTypeOf<OperatorFunction<Uint8Array, Uint8Array>>()
    expectTypeOf(decode('json')).toEqualTypeOf<OperatorFunction<Uint8Array, unknown>>()
    expectTypeOf(decode<{ n: number }>('json')).toEqualTypeOf<OperatorFunction<Uint8Array, { n: number }>>()
    expectTypeOf(encode('utf8')).toEqualTypeOf<OperatorFunction<string, Uint8Array>>()
    expectTypeOf(encode('raw')).toEqualTypeOf<OperatorFunction<Uint8Array | string, Uint8Array>>()
    const point: Codec<{ x: number }> = { name: 'point', encode: (p) => u8(p.x), decode: (b) => ({ x: b[0]! }) }
    expectTypeOf(decode(point)).toEqualTypeOf<OperatorFunction<Uint8Array, { x: number }>>()
    expectTypeOf(encode(point)).toEqualTypeOf<OperatorFunction<{ x: number }, Uint8Array>>()
    const values = of(u8(1)).pipe(unframe(), decode(point))
    expectTypeOf(values).toEqualTypeOf<Observable<{ x: number }>>()
    expectTypeOf(of('a').pipe(encode('utf8'), frame())).toEqualTypeOf<Observable<Uint8Array>>()
    // @ts-expect-error utf8 encodes strings only
    of(1).pipe(encode('utf8'))
    // @ts-expect-error a Codec<{ x: number }> does not encode strings
    of('a').pipe(encode(point))
  })
})
