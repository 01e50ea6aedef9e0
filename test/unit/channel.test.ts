import net from 'node:net'
import { Subject } from 'rxjs'
import { describe, expect, expectTypeOf, it } from 'vitest'
import { codecs, createChannel, isRxnetError, mapChannel, socketChannel, type Channel } from 'rxnet'

function recorder<T>(): { values: T[]; errors: unknown[]; completed: number; observer: { next(v: T): void; error(e: unknown): void; complete(): void } } {
  const r = {
    values: [] as T[],
    errors: [] as unknown[],
    completed: 0,
    observer: {
      next: (v: T) => void r.values.push(v),
      error: (e: unknown) => void r.errors.push(e),
      complete: () => void r.completed++,
    },
  }
  return r
}

describe('createChannel / mapChannel', () => {
  it('createChannel adds send() as sink.next()', () => {
    const out = recorder<number>()
    const ch = createChannel(new Subject<string>(), out.observer)
    ch.send(1)
    ch.sink.next(2)
    ch.sink.complete()
    expect(out.values).toEqual([1, 2])
    expect(out.completed).toBe(1)
    expectTypeOf(ch).toEqualTypeOf<Channel<string, number>>()
  })

  it('mapChannel maps both ways and passes completion and errors through', () => {
    const inbound = new Subject<Uint8Array>()
    const out = recorder<Uint8Array>()
    const text = mapChannel(createChannel(inbound, out.observer), codecs.utf8.decode, codecs.utf8.encode)
    expectTypeOf(text).toEqualTypeOf<Channel<string, string>>()
    const got = recorder<string>()
    text.source.subscribe(got.observer)
    inbound.next(codecs.utf8.encode('héllo'))
    inbound.complete()
    text.send('hi')
    text.sink.complete()
    expect(got.values).toEqual(['héllo'])
    expect(got.completed).toBe(1)
    expect(out.values.map((b) => codecs.utf8.decode(b))).toEqual(['hi'])
    expect(out.completed).toBe(1)
  })

  it('a throwing mapIn errors that subscription; a throwing mapOut aborts the channel, never throws', () => {
    const inbound = new Subject<number>()
    const out = recorder<number>()
    const ch = mapChannel(
      createChannel(inbound, out.observer),
      (n) => {
        if (n < 0) throw new RangeError('negative')
        return n * 2
      },
      (s: string) => {
        if (s === '') throw new TypeError('empty')
        return s.length
      },
    )
    const got = recorder<number>()
    ch.source.subscribe(got.observer)
    inbound.next(1)
    inbound.next(-1)
    inbound.next(2)
    expect(got.values).toEqual([2])
    expect(got.errors[0]).toBeInstanceOf(RangeError)
    expect(inbound.observed).toBe(false) // the failed subscription let go of the source
    ch.send('abc')
    expect(() => ch.send('')).not.toThrow()
    expect(out.values).toEqual([3])
    expect(out.errors[0]).toBeInstanceOf(TypeError)
  })

  it('over a socketChannel, an unencodable value aborts with ERR_ABORTED and the codec error as cause', async () => {
    const server = net.createServer((s) => s.on('error', () => {}).resume()) // it will be reset
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    try {
      const bytes = socketChannel(net.connect((server.address() as net.AddressInfo).port, '127.0.0.1'))
      const ch = mapChannel(bytes, codecs.json.decode, codecs.json.encode)
      const err = new Promise<unknown>((resolve) => ch.source.subscribe({ error: resolve }))
      ch.send({ ok: 1 })
      ch.send(undefined)
      const e = await err
      expect(isRxnetError(e, 'ERR_ABORTED')).toBe(true)
      expect((e as Error).cause).toBeInstanceOf(TypeError)
      await bytes.closed
    } finally {
      await new Promise((r) => server.close(r))
    }
  })
})
