/**
 * The Connection contract (src/connection.ts), checked the same way on every connection kind
 * (libp2p interface-compliance-tests style). The kinds are in ./kinds.ts: adding a transport is
 * one entry there. Each rule of the README's "The Connection contract" table has a test here.
 */
import { firstValueFrom, take, toArray, type Observable } from 'rxjs'
import { afterEach, describe, expect, it } from 'vitest'
import { isRxnetError, type Connection } from '../../src/index.js'
import { KINDS, until, type ConnectionKind, type NotApplicable } from './kinds.js'

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

/** Collects a source: `done` resolves with the values on complete and rejects on error. */
function collect<T>(source: Observable<T>): { values: T[]; done: Promise<T[]> } {
  const values: T[] = []
  const done = new Promise<T[]>((resolve, reject) => source.subscribe({ next: (v) => values.push(v), error: reject, complete: () => resolve(values) }))
  done.catch(() => {})
  return { values, done }
}

/** The error `p` rejects with (fails the test if it resolves). */
async function errorOf(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    (v) => expect.fail(`expected an error, got completion with ${JSON.stringify(v)?.slice(0, 80)}`),
    (e: unknown) => e,
  )
}

/** Sends `message(i)` into `conn` (its far side not reading) until it is not writable; bounded. */
async function fill<T>(kind: ConnectionKind<T>, conn: Connection<T>): Promise<number> {
  const deadline = Date.now() + 15_000
  let n = 0
  while (conn.writable && n < 200_000 && Date.now() < deadline) {
    conn.send(kind.message(n++))
    if (n % 32 === 0) await new Promise((r) => setImmediate(r))
  }
  expect(conn.writable).toBe(false)
  return n
}

const isNA = (x: unknown): x is NotApplicable => typeof x === 'object' && x !== null && 'notApplicable' in x

describe.each(KINDS.map((k) => [k.name, k] as const))('Connection contract: %s', (_name, kind: ConnectionKind<any>) => {
  /** No far side (a bus topic): b ends only when b closes, and a's graceful close waits for no one. */
  const noFarSide = kind.farSide !== undefined && isNA(kind.farSide)
  async function pair(): Promise<{ a: Connection<unknown>; b: Connection<unknown> }> {
    const p = await kind.setup()
    cleanups.push(p.teardown)
    return p
  }

  it('clean close: messages arrive in order, both sources complete, closed resolves undefined on both sides', async () => {
    const { a, b } = await pair()
    const got = collect(b.source)
    void got.done.then(() => b.close()) // a well-behaved far side closes when we do
    const mine = collect(a.source)
    for (let i = 0; i < 20; i++) a.send(kind.message(i))
    a.sink.complete() // is close()
    if (noFarSide) void a.closed.then(() => b.close()) // nothing ends b but b: it closes once a has
    expect((await got.done).map((v) => kind.seqOf(v))).toEqual([...Array(20).keys()])
    expect(await mine.done).toEqual([])
    expect(await a.closed).toBeUndefined()
    expect(await b.closed).toBeUndefined()
    expect(a.stats.messagesOut).toBe(20)
    expect(b.stats.messagesIn).toBe(20)
    expect(a.writable).toBe(false)
    await a.close() // idempotent once closed
  })

  const crash = kind.crash
  if (isNA(crash)) it.skip(`far-side crash: not applicable (${crash.notApplicable})`, () => {})
  else
    it('far-side crash (SIGKILL of the far process): source errors typed, closed resolves with that error', async () => {
      const p = await crash()
      cleanups.push(p.teardown)
      const mine = collect(p.a.source)
      await p.crashB()
      const e = await errorOf(mine.done)
      expect(isRxnetError(e)).toBe(true)
      expect(await p.a.closed).toBe(e)
    })

  const seesAbort = kind.farSideSeesAbort
  it(`abort(cause): source errors ERR_ABORTED with that cause, closed resolves with it; the far side ${isNA(seesAbort) ? `sees its end (failure not applicable: ${seesAbort.notApplicable})` : 'errors typed'}`, async () => {
    const { a, b } = await pair()
    const mine = collect(a.source)
    const theirs = collect(b.source)
    const cause = new Error('user gave up')
    a.abort(cause)
    const e = await errorOf(mine.done)
    expect(e).toMatchObject({ code: 'ERR_ABORTED', cause })
    expect(await a.closed).toBe(e)
    if (noFarSide) {
      await b.close() // nothing ends b but b
      await theirs.done
    } else if (isNA(seesAbort)) {
      await theirs.done.catch(() => {}) // it ended, one way or the other
      await b.close()
    } else {
      expect(isRxnetError(await errorOf(theirs.done))).toBe(true)
      expect(await b.closed).toMatchObject({ code: expect.any(String) })
    }
  })

  it('sink.error(e) is abort(e): ERR_ABORTED with cause e', async () => {
    const { a } = await pair()
    const cause = new Error('upstream failed')
    const mine = collect(a.source)
    a.sink.error(cause)
    expect(await errorOf(mine.done)).toMatchObject({ code: 'ERR_ABORTED', cause })
    expect(await a.closed).toMatchObject({ code: 'ERR_ABORTED', cause })
  })

  const refused = kind.refused
  if (isNA(refused)) it.skip(`refused value: not applicable (${refused.notApplicable})`, () => {})
  else
    it('a value it cannot send: send does not throw, the connection fails with ERR_ENCODE', async () => {
      const { a } = await pair()
      const mine = collect(a.source)
      expect(() => a.send(refused())).not.toThrow()
      const e = await errorOf(mine.done)
      expect(isRxnetError(e, 'ERR_ENCODE')).toBe(true)
      expect(await a.closed).toBe(e)
    })

  it('send after close is dropped and counted, never thrown', async () => {
    const { a, b } = await pair()
    collect(b.source).done.then(() => b.close(), () => {})
    await a.close()
    const dropped = a.stats.dropped
    expect(() => a.send(kind.message(1))).not.toThrow()
    expect(() => a.sink.next(kind.message(2))).not.toThrow()
    expect(a.stats.dropped).toBe(dropped + 2)
  })

  const backpressure = kind.backpressure ?? true
  if (isNA(backpressure)) it.skip(`backpressure: not applicable (${backpressure.notApplicable})`, () => {})
  else it('backpressure: writable turns false, whenWritable waits (a fired signal rejects ERR_ABORTED) and resolves once the far side reads', async () => {
    const { a, b } = await pair()
    const sent = await fill(kind, a)
    await expect(a.whenWritable({ signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'ERR_ABORTED' })
    const ac = new AbortController()
    const aborted = a.whenWritable({ signal: ac.signal })
    const waiting = a.whenWritable()
    ac.abort()
    await expect(aborted).rejects.toMatchObject({ code: 'ERR_ABORTED' })
    const got = collect(b.source) // the far side starts reading
    await waiting
    expect(a.writable).toBe(true)
    void got.done.then(() => b.close())
    await a.close({ timeout: 20_000 })
    expect((await got.done).length).toBe(sent) // nothing lost under the default 'error' policy
    expect(a.stats.dropped).toBe(0)
  })

  it('whenWritable rejects with ERR_CLOSED once the connection is closing', async () => {
    const { a } = await pair()
    void a.close()
    await expect(a.whenWritable()).rejects.toMatchObject({ code: 'ERR_CLOSED' })
  })

  it('inbound is held while nobody subscribes: a late subscriber gets every message, in order', async () => {
    const { a, b } = await pair()
    for (let i = 0; i < 5; i++) a.send(kind.message(i))
    await until(() => a.stats.messagesOut === 5 && a.stats.bufferedBytes === 0, 'the messages to leave')
    const first = await firstValueFrom(b.source.pipe(take(2), toArray()))
    for (let i = 5; i < 8; i++) a.send(kind.message(i))
    await until(() => a.stats.messagesOut === 8, 'the next messages to leave')
    const rest = collect(b.source)
    void rest.done.then(() => b.close())
    await a.close()
    if (noFarSide) void b.close()
    expect([...first, ...(await rest.done)].map((v) => kind.seqOf(v))).toEqual([...Array(8).keys()])
    expect(b.stats.droppedIn).toBe(0)
  })

  it('await using closes the connection when the scope ends', async () => {
    const { a, b } = await pair()
    collect(b.source).done.then(() => b.close(), () => {})
    {
      await using conn = a
      conn.send(kind.message(0))
    }
    expect(await a.closed).toBeUndefined()
  })

  if (noFarSide) it.skip(`close({ timeout }) with a far side that never finishes: not applicable (${(kind.farSide as NotApplicable).notApplicable})`, () => {})
  else it('close({ timeout }) aborts when the far side never finishes: closed resolves ERR_ABORTED (cause ERR_TIMEOUT)', async () => {
    const { a, b } = await pair()
    a.send(kind.message(0))
    await a.close({ timeout: 50 }) // b never reads nor closes
    expect(await a.closed).toMatchObject({ code: 'ERR_ABORTED', cause: { code: 'ERR_TIMEOUT' } })
    expect(b.writable).toBeDefined()
  })

  it('close({ signal }) aborts when the signal fires first; close() itself never rejects', async () => {
    const { a } = await pair()
    const ac = new AbortController()
    const closing = a.close({ signal: ac.signal, timeout: 60_000 })
    ac.abort(new Error('shutdown'))
    await expect(closing).resolves.toBeUndefined()
    expect(await a.closed).toMatchObject({ code: 'ERR_ABORTED' })
  })
})
