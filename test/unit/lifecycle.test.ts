import { describe, expect, it } from 'vitest'
import { Subject } from 'rxjs'
import { ConnectionKernel, OPEN, type Connection, type ConnectionStats, type KernelOptions, type RxnetError } from 'rxnet'
import { observeSource } from '../../src/lifecycle.js'

/** A kernel-backed connection whose "resource" the test drives by hand. */
class Probe extends ConnectionKernel<number> {
  readonly stats: ConnectionStats = { messagesIn: 0, bytesIn: 0, messagesOut: 0, bytesOut: 0, dropped: 0, overflows: 0, bufferedBytes: 0, droppedIn: 0 }
  room = true
  closes = 0
  destroyed: RxnetError[] = []
  private onDestroy!: () => void
  readonly whenDestroyed = new Promise<void>((r) => (this.onDestroy = r))
  observed: boolean[] = []
  sent: number[] = []
  constructor(options: KernelOptions = {}) {
    super(options)
  }
  send(v: number): void {
    if (this.state !== OPEN) (this.stats as { dropped: number }).dropped++
    else this.sent.push(v)
  }
  protected hasRoom(): boolean {
    return this.room
  }
  protected startClose(): void {
    this.closes++
  }
  protected destroy(e: RxnetError): void {
    this.destroyed.push(e)
    this.onDestroy()
  }
  protected override onObserved(o: boolean): void {
    this.observed.push(o)
  }
  // the resource's side, for the test
  in(v: number): void {
    this.emit(v)
  }
  farEnd(): void {
    this.endInbound()
  }
  broke(e: unknown): void {
    this.fail(e)
  }
  gone(e?: RxnetError): void {
    this.released(e)
  }
  drained(): void {
    this.wakeWriters()
  }
}

describe('ConnectionKernel', () => {
  it('state moves open → closing → closed; startClose runs once; close() resolves once released, idempotent', async () => {
    const p = new Probe()
    expect(p.state).toBe(OPEN)
    const c1 = p.close()
    const c2 = p.close({ timeout: 1 })
    expect(p.state).toEqual({ type: 'closing', error: undefined })
    expect(p.closes).toBe(1)
    p.farEnd()
    p.gone()
    await Promise.all([c1, c2])
    expect(p.state).toEqual({ type: 'closed', error: undefined })
    expect(await p.closed).toBeUndefined()
    expect(p.destroyed).toEqual([]) // never aborted
    await p.close()
  })

  it('fail(e): one destroy, source errors, closed resolves with e once released; non-rxnet errors become ERR_CONNECTION', async () => {
    const p = new Probe()
    const seen: unknown[] = []
    p.source.subscribe({ error: (e) => seen.push(e) })
    const cause = new Error('EPIPE')
    p.broke(cause)
    p.broke(new Error('again'))
    p.abort('later')
    expect(p.destroyed).toHaveLength(1)
    expect(seen).toEqual([p.destroyed[0]])
    expect(p.destroyed[0]).toMatchObject({ code: 'ERR_CONNECTION', cause })
    p.gone()
    expect(await p.closed).toBe(p.destroyed[0])
  })

  it('a released resource that never ended cleanly reports the error it is given', async () => {
    const p = new Probe()
    const err = p.source.subscribe({ error: () => {} })
    const { ConnectionError } = await import('rxnet')
    p.gone(new ConnectionError('closed early'))
    expect(await p.closed).toMatchObject({ code: 'ERR_CONNECTION' })
    err.unsubscribe()
  })

  it('holds inbound while unobserved up to maxHeldMessages (the rest counted in droppedIn), replays in order; onObserved on first / last', () => {
    const p = new Probe({ maxHeldMessages: 3 })
    for (let i = 0; i < 5; i++) p.in(i)
    expect(p.stats.droppedIn).toBe(2)
    const got: number[] = []
    const sub = p.source.subscribe((v) => got.push(v))
    const sub2 = p.source.subscribe(() => {})
    p.in(9)
    expect(got).toEqual([0, 1, 2, 9])
    sub.unsubscribe()
    sub2.unsubscribe()
    expect(p.observed).toEqual([true, false])
  })

  it('observeSource: a plain receiver gets what a subscriber would (held replay, live, alongside subscribers, end) without RxJS in between', () => {
    const p = new Probe()
    p.in(1)
    p.in(2)
    const got: string[] = []
    const receiver = { next: (v: number) => got.push(`r${v}`), error: (e: RxnetError) => got.push(e.code), complete: () => got.push('done'), closed: false }
    const stop = observeSource(p, receiver)
    expect(p.observed).toEqual([true])
    const sub = p.source.subscribe((v) => got.push(`s${v}`))
    p.in(3)
    sub.unsubscribe()
    p.farEnd()
    expect(got).toEqual(['r1', 'r2', 'r3', 's3', 'done'])
    stop()
    // and errors, on a connection that fails; teardown before the end reports the last observer gone
    const q = new Probe()
    const seen: string[] = []
    const stopQ = observeSource(q, { ...receiver, next: (v: number) => seen.push(String(v)), error: (e: RxnetError) => seen.push(e.code) })
    q.in(7)
    stopQ()
    expect(q.observed).toEqual([true, false])
    observeSource(q, { ...receiver, next: (v: number) => seen.push(String(v)), error: (e: RxnetError) => seen.push(e.code) })
    q.broke(new Error('EPIPE'))
    expect(seen).toEqual(['7', 'ERR_CONNECTION'])
  })

  it('observeSource on a connection that is not kernel-backed subscribes to its source', () => {
    const subject = new Subject<number>()
    const conn = { source: subject.asObservable() } as unknown as Connection<number, number>
    const got: (number | string)[] = []
    const stop = observeSource(conn, { next: (v: number) => got.push(v), error: () => got.push('error'), complete: () => got.push('done'), closed: false })
    subject.next(1)
    stop()
    subject.next(2)
    expect(got).toEqual([1])
  })

  it('closing with nobody subscribed discards inbound (counted); a late subscriber after the end gets complete', () => {
    const p = new Probe()
    void p.close()
    p.in(1)
    expect(p.stats.droppedIn).toBe(1)
    p.farEnd()
    let completed = false
    p.source.subscribe({ complete: () => (completed = true) })
    expect(completed).toBe(true)
  })

  it('whenWritable waits for room and wakeWriters; rejects ERR_CLOSED (cause: the failure) when it ends first', async () => {
    const p = new Probe()
    p.room = false
    expect(p.writable).toBe(false)
    const w = p.whenWritable()
    p.drained() // still no room: keeps waiting
    p.room = true
    p.drained()
    await w
    p.room = false
    const w2 = p.whenWritable()
    p.broke(new Error('reset'))
    await expect(w2).rejects.toMatchObject({ code: 'ERR_CLOSED', cause: { code: 'ERR_CONNECTION' } })
    await expect(p.whenWritable()).rejects.toMatchObject({ code: 'ERR_CLOSED' })
  })

  it('close() aborts after closeTimeout (ERR_ABORTED, cause ERR_TIMEOUT) and resolves once released', async () => {
    const p = new Probe({ closeTimeout: 5 })
    const closing = p.close()
    await p.whenDestroyed
    expect(p.destroyed[0]).toMatchObject({ code: 'ERR_ABORTED', cause: { code: 'ERR_TIMEOUT' } })
    p.gone()
    await closing
    expect(p.state.type).toBe('closed')
    expect(() => new Probe({ closeTimeout: -1 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
  })
})

describe('mapConnection', () => {
  it('an inbound message the codec cannot decode fails the connection with ERR_DECODE (source and closed); the layer delegates the rest', async () => {
    const { fromDuplex, mapConnection } = await import('rxnet')
    const inner = fromDuplex<string>({ source: ['{"ok":1}', 'not json'], sink: async (src) => { for await (const _ of src) void _ } })
    const conn = mapConnection(inner, (s: string) => JSON.parse(s) as unknown, (v: unknown) => JSON.stringify(v), { codec: 'json' })
    const got: unknown[] = []
    const error = await new Promise<unknown>((resolve) => conn.source.subscribe({ next: (v) => got.push(v), error: resolve }))
    expect(got).toEqual([{ ok: 1 }])
    expect(error).toMatchObject({ code: 'ERR_DECODE', cause: expect.any(SyntaxError) })
    expect(await conn.closed).toBe(error)
    expect(conn.stats).toBe(inner.stats)
    expect(conn.writable).toBe(false)
    expect(() => conn.send({ late: true })).not.toThrow()
    expect(conn.stats.dropped).toBe(1)
  })
})
