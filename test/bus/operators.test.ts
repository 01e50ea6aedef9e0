import { afterEach, describe, expect, expectTypeOf, it } from 'vitest'
import { Subject, firstValueFrom, lastValueFrom, of, throwError, toArray, timer, map, NEVER } from 'rxjs'
import { TestScheduler } from 'rxjs/testing'
import { connectBus, createChannel, startHub, type Bus, type Channel } from 'rxnet'
import { reply, request, topic } from 'rxnet/operators'
import { tmpSocket } from './helpers.js'

const open: { close(): unknown }[] = []
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close()
})

/** Two in-memory value Channels wired back to back. */
function channelPair(): [Channel<unknown>, Channel<unknown>] {
  const ab = new Subject<unknown>()
  const ba = new Subject<unknown>()
  return [createChannel<unknown>(ba, ab), createChannel<unknown>(ab, ba)]
}

describe('topic()', () => {
  it('keeps matching topics and tears down with the subscriber (marbles)', () => {
    new TestScheduler((a, b) => expect(a).toEqual(b)).run(({ cold, expectObservable, expectSubscriptions }) => {
      const values = { a: { topic: 'log.a' }, b: { topic: 'log.a.b' }, c: { topic: 'other' }, d: { topic: 'log.d' } }
      const src = cold('a-b-c-d-a|', values)
      expectObservable(src.pipe(topic('log.*')), '^------!').toBe('a-----d-', values)
      expectSubscriptions(src.subscriptions).toBe('^------!')
    })
  })

  it('errors on subscribe with ERR_INVALID_ARGUMENT for a bad pattern, and types pass through', async () => {
    await expect(firstValueFrom(of({ topic: 'x' }).pipe(topic('a.>.b')))).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    expectTypeOf(of({ topic: 'x', n: 1 }).pipe(topic('x'))).toEqualTypeOf<import('rxjs').Observable<{ topic: string; n: number }>>()
  })
})

describe('request() / reply() over a Channel', () => {
  it('answers requests, passes other values through, and completes when everything is answered', async () => {
    const [client, server] = channelPair()
    const passed: unknown[] = []
    const sub = server.source.pipe(reply(server, async (n: number) => n * 2)).subscribe((v) => passed.push(v))
    open.push({ close: () => sub.unsubscribe() })
    server.source.subscribe()
    const replies = lastValueFrom(of(1, 2, 3).pipe(request<number, number>(client), toArray()))
    client.send('just a value')
    expect((await replies).sort()).toEqual([2, 4, 6])
    expect(passed).toEqual(['just a value'])
  })

  it('an Observable handler answers with its first value; a failing handler gives ERR_REMOTE with its code', async () => {
    const [client, server] = channelPair()
    const sub = server.source
      .pipe(
        reply(server, (q: string) => {
          if (q === 'boom') throw Object.assign(new Error('kaput'), { code: 'E_BOOM' })
          if (q === 'reject') return Promise.reject(new Error('no'))
          return timer(1).pipe(map(() => q.toUpperCase()))
        }),
      )
      .subscribe()
    open.push({ close: () => sub.unsubscribe() })
    expect(await firstValueFrom(of('hi').pipe(request(client)))).toBe('HI')
    await expect(firstValueFrom(of('boom').pipe(request(client)))).rejects.toMatchObject({ code: 'ERR_REMOTE', remoteCode: 'E_BOOM' })
    await expect(firstValueFrom(of('reject').pipe(request(client)))).rejects.toMatchObject({ code: 'ERR_REMOTE' })
  })

  it('a malformed error reply (error: null, a number, a non-string code) is ERR_REMOTE, never a throw inside the operator', async () => {
    for (const error of [null, 42, { message: 7, code: { x: 1 } }]) {
      const [client, server] = channelPair()
      const sub = server.source.subscribe((req) => server.send({ $rx: 'res', id: (req as { id: string }).id, error }))
      open.push({ close: () => sub.unsubscribe() })
      const e = await firstValueFrom(of(1).pipe(request(client, { timeout: 1000 }))).catch((x: unknown) => x)
      expect(e).toMatchObject({ code: 'ERR_REMOTE', remoteCode: undefined })
      expect(typeof (e as Error).message).toBe('string')
    }
  })

  it('errors with ERR_CLOSED (not ERR_REMOTE) when the channel or bus closes before the reply', async () => {
    const [client, server] = channelPair()
    const pending = firstValueFrom(of(1).pipe(request(client, { timeout: 5000 })))
    server.sink.complete() // the client's source (where replies come) completes
    await expect(pending).rejects.toMatchObject({ code: 'ERR_CLOSED' })
    const b = connectBus(tmpSocket())
    await b.close()
    await expect(firstValueFrom(of(1).pipe(request(b, 'x')))).rejects.toMatchObject({ code: 'ERR_CLOSED' })
  })

  it('times out with ERR_TIMEOUT when nobody answers, and validates its options', async () => {
    const [client] = channelPair()
    await expect(firstValueFrom(of(1).pipe(request(client, { timeout: 30 })))).rejects.toMatchObject({ code: 'ERR_TIMEOUT' })
    expect(() => request(client, { timeout: -1 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
    await expect(firstValueFrom(throwError(() => new Error('up')).pipe(request(client)))).rejects.toThrow('up')
    void NEVER
  })
})

describe('request() / reply() over the bus', () => {
  it('one client asks on a topic, another answers on the inbox', async () => {
    const hub = await startHub({ path: tmpSocket() })
    open.push(hub)
    const asker: Bus = connectBus(hub.path)
    const answerer: Bus = connectBus(hub.path)
    open.push(asker, answerer)
    const sub = answerer
      .messages$('math.add')
      .pipe(reply(answerer, ({ a, b }: { a: number; b: number }) => a + b))
      .subscribe()
    open.push({ close: () => sub.unsubscribe() })
    await answerer.flush()
    const sums = await lastValueFrom(of({ a: 1, b: 2 }, { a: 40, b: 2 }).pipe(request<{ a: number; b: number }, number>(asker, 'math.add'), toArray()))
    expect(sums.sort((x, y) => x - y)).toEqual([3, 42])
    expect(() => request(asker, 'math.*')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
  })

  it('a request with a bad `to` topic is ignored and an unsendable result becomes ERR_REMOTE: the replier keeps answering', async () => {
    const hub = await startHub({ path: tmpSocket() })
    open.push(hub)
    const asker: Bus = connectBus(hub.path)
    const rogue: Bus = connectBus(hub.path)
    const answerer: Bus = connectBus(hub.path)
    open.push(asker, rogue, answerer)
    let failed: unknown = null
    let calls = 0
    const sub = answerer
      .messages$('calc')
      .pipe(
        reply(answerer, (n: number) => {
          calls++
          return n === 0 ? 10n : n + 1 // a BigInt is not JSON-serialisable
        }),
      )
      .subscribe({ error: (e) => (failed = e) })
    open.push({ close: () => sub.unsubscribe() })
    await answerer.flush()
    for (const to of ['bad topic', 'a.*', '', 42]) rogue.emit('calc', { $rx: 'req', id: 'r', body: 1, to })
    await rogue.flush()
    await expect(firstValueFrom(of(0).pipe(request(asker, 'calc', { timeout: 2000 })))).rejects.toMatchObject({ code: 'ERR_REMOTE', remoteCode: 'ERR_ENCODE' })
    expect(await firstValueFrom(of(1).pipe(request(asker, 'calc', { timeout: 2000 })))).toBe(2)
    expect(failed).toBe(null)
    expect(calls).toBe(2) // the rogue requests never reached the handler
  })
})
