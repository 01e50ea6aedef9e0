import { afterEach, describe, expect, it } from 'vitest'
import { firstValueFrom, from, lastValueFrom, of, take, toArray } from 'rxjs'
import { connectBus, startHub, type Bus, type Hub } from 'rxnet'
import { reply, request } from 'rxnet/operators'
import { tmpSocket, until } from './helpers.js'

const open: { close(): unknown }[] = []
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close()
})

async function setup(): Promise<{ hub: Hub; a: Bus; b: Bus }> {
  const hub = await startHub({ path: tmpSocket() })
  const a = connectBus(hub.path)
  const b = connectBus(hub.path)
  open.push(hub, a, b)
  return { hub, a, b }
}

describe('bus.channel(topic): a bus topic as a Connection', () => {
  it('request / reply written for Channels work on a topic channel unchanged', async () => {
    const { a, b } = await setup()
    const answerer = b.channel<unknown>('rpc.math')
    const asker = a.channel<unknown>('rpc.math')
    open.push(answerer, asker)
    const served = answerer.source.pipe(reply(answerer, ({ x, y }: { x: number; y: number }) => x + y)).subscribe()
    open.push({ close: () => served.unsubscribe() })
    await b.flush() // its interest is registered
    expect(await lastValueFrom(of({ x: 1, y: 2 }, { x: 20, y: 22 }).pipe(request<{ x: number; y: number }, number>(asker, { timeout: 5000 })))).toBe(42)
  })

  it('sink takes a stream: values go out in order, its completion closes the channel cleanly', async () => {
    const { a, b } = await setup()
    const out = a.channel<number>('c.n')
    const got = b.messages$<number>('c.n').pipe(take(3), toArray())
    const first = firstValueFrom(got)
    await b.flush()
    from([1, 2, 3]).subscribe(out.sink)
    expect(await first).toEqual([1, 2, 3])
    expect(await out.closed).toBeUndefined()
    expect(out.stats.messagesOut).toBe(3)
    expect(out.stats.bytesOut).toBeGreaterThan(0)
    expect(out.writable).toBe(false)
  })

  it('inbound is held from channel() on while nobody subscribes; a late subscriber gets it in order', async () => {
    const { a, b } = await setup()
    const ch = b.channel<number>('c.late')
    open.push(ch)
    await b.flush()
    for (let i = 0; i < 5; i++) a.emit('c.late', i)
    await a.flush()
    await until(() => ch.stats.messagesIn === 5, 5000, 'held')
    expect(await firstValueFrom(ch.source.pipe(take(5), toArray()))).toEqual([0, 1, 2, 3, 4])
    expect(ch.stats.droppedIn).toBe(0)
  })

  it('never throws from send: a value the codec refuses fails it with ERR_ENCODE; after close, sends are dropped and counted', async () => {
    const { a } = await setup()
    const ch = a.channel('c.bad')
    expect(() => ch.send(10n)).not.toThrow()
    expect(await ch.closed).toMatchObject({ code: 'ERR_ENCODE' })
    const ok = a.channel('c.ok')
    await ok.close()
    expect(() => ok.send(1)).not.toThrow()
    expect(ok.stats.dropped).toBe(1)
  })

  it('abort(e) / sink.error(e): source errors ERR_ABORTED with cause e; the bus goes on', async () => {
    const { a, b } = await setup()
    const ch = a.channel('c.x')
    const cause = new Error('gave up')
    const failed = firstValueFrom(ch.source).catch((e: unknown) => e)
    ch.sink.error(cause)
    expect(await failed).toMatchObject({ code: 'ERR_ABORTED', cause })
    expect(await ch.closed).toMatchObject({ code: 'ERR_ABORTED', cause })
    const got = firstValueFrom(b.messages$('c.x'))
    await b.flush()
    a.emit('c.x', 'still here')
    expect(await got).toBe('still here')
  })

  it('ends cleanly with its bus; close({ timeout }) aborts when the hub never takes what was sent (ERR_ABORTED, cause ERR_TIMEOUT)', async () => {
    const { a } = await setup()
    const ch = a.channel('c.end')
    const ended = lastValueFrom(ch.source, { defaultValue: 'completed' })
    await a.close()
    expect(await ended).toBe('completed')
    expect(await ch.closed).toBeUndefined()
    expect(() => a.channel('c.after')).toThrow(expect.objectContaining({ code: 'ERR_CLOSED' }))
    const lonely = connectBus(tmpSocket()) // no hub there
    open.push({ close: () => lonely.close().catch(() => {}) })
    const stuck = lonely.channel('c.stuck')
    stuck.send(1)
    await stuck.close({ timeout: 50 })
    expect(await stuck.closed).toMatchObject({ code: 'ERR_ABORTED', cause: { code: 'ERR_TIMEOUT' } })
  })

  it('refuses a topic with wildcards and unknown option names (ERR_INVALID_ARGUMENT)', async () => {
    const { a } = await setup()
    expect(() => a.channel('c.*')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
    expect(() => a.channel('c.y', { closeTimout: 5 } as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
  })
})
