// Durable topics on JetStream (a real nats-server with JetStream in a temp dir): history with
// `from`, durable consumers that resume after a restart, and emits stored once even when they are
// republished after the server went down mid-stream.
import { describe, expect, it } from 'vitest'
import { lastValueFrom, take, toArray } from 'rxjs'
import { connect } from '@nats-io/transport-node'
import { jetstreamManager } from '@nats-io/jetstream'
import { connectBus, type NatsBus, type NatsBusOptions } from 'rxnet'
import { NATS_SERVER, SKIP_REASON, startNats } from './harness.js'
import { natsSuite } from './suite.js'

describe.skipIf(NATS_SERVER === null)(`durable topics (JetStream)${NATS_SERVER === null ? ` (skipped: ${SKIP_REASON})` : ''}`, () => {
  const s = natsSuite(1, { jetstream: true })
  let streamNo = 0
  let stream = ''
  const bus = (options: NatsBusOptions = {}): NatsBus => {
    const b = connectBus(s.url, { durable: { stream, subjects: [`${stream.toLowerCase()}.>`] }, ...options })
    s.track(b)
    return b
  }
  const fresh = (): string => {
    stream = `S${++streamNo}`
    return stream.toLowerCase()
  }

  it('history: from "start", from a stream sequence, from a Date, then live; without from only live', async () => {
    const t = fresh()
    const pub = bus()
    for (let i = 1; i <= 5; i++) pub.emit(`${t}.a`, i)
    await pub.flush()
    const sub = bus()
    expect(await lastValueFrom(sub.messages$(`${t}.>`, { from: 'start' }).pipe(take(5), toArray()))).toEqual([1, 2, 3, 4, 5])
    expect(await lastValueFrom(sub.messages$(`${t}.>`, { from: 4 }).pipe(take(2), toArray()))).toEqual([4, 5])
    const after5 = new Date() // 1..5 are stored (flushed) before this instant, 6 after it
    const fromDate = lastValueFrom(sub.messages$(`${t}.>`, { from: after5 }).pipe(take(1), toArray()))
    const live: unknown[] = []
    sub.messages$(`${t}.>`).subscribe((v) => live.push(v))
    const tail = lastValueFrom(sub.messages$(`${t}.>`, { from: 'start' }).pipe(take(6), toArray()))
    await sub.flush()
    pub.emit(`${t}.a`, 6)
    expect(await tail).toEqual([1, 2, 3, 4, 5, 6])
    await sub.flush()
    expect(live).toEqual([6])
    expect(await fromDate).toEqual([6])
  })

  it('a durable consumer stopped meanwhile receives exactly what it missed when it comes back', async () => {
    const t = fresh()
    const pub = bus()
    const first = bus()
    const got1 = lastValueFrom(first.messages$<number>(`${t}.>`, { consumer: 'billing' }).pipe(take(10), toArray()))
    for (let i = 1; i <= 10; i++) pub.emit(`${t}.x`, i)
    expect(await got1).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    await first.close() // acks sent before the connection goes
    for (let i = 11; i <= 20; i++) pub.emit(`${t}.x`, i)
    await pub.flush()
    const again = bus()
    const got2: number[] = []
    const all = new Promise<void>((resolve, reject) => again.messages$<number>(`${t}.>`, { consumer: "billing" }).subscribe({ next: (v) => (got2.push(v), v === 20 && resolve()), error: reject }))
    await all
    await again.flush()
    expect(got2).toEqual([11, 12, 13, 14, 15, 16, 17, 18, 19, 20])
  })

  it('server killed mid-stream and restarted: every durable emit is stored once (message id = sender + seq), in order', { timeout: 60_000 }, async () => {
    const t = fresh()
    const N = 5000
    const pub = bus({ highWaterMark: 256 * 1024 })
    await pub.flush()
    let restarted: Promise<void> | null = null
    for (let n = 1; n <= N; n++) {
      if (!pub.writable) await pub.whenWritable()
      pub.emit(`${t}.k`, n)
      if (n === N / 2) restarted = s.nats.servers[0]!.kill().then(() => s.nats.servers[0]!.start())
    }
    await restarted
    await pub.flush({ timeout: 30_000 })
    const nc = await connect({ servers: s.url })
    s.track(nc)
    const info = await (await jetstreamManager(nc)).streams.info(stream)
    expect(info.state.messages).toBe(N)
    const sub = bus()
    const stored = await lastValueFrom(sub.messages$<number>(`${t}.>`, { from: 'start' }).pipe(take(N), toArray()))
    expect(stored).toEqual(Array.from({ length: N }, (_, i) => i + 1))
  })

  it('messages$ with from / consumer on a bus without durable topics errors with ERR_INVALID_ARGUMENT; a bad from too', async () => {
    const plain = connectBus(s.url)
    s.track(plain)
    await expect(lastValueFrom(plain.messages$('x', { from: 'start' }))).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    fresh()
    const b = bus()
    await expect(lastValueFrom(b.messages$('x', { from: -3 }))).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    await expect(lastValueFrom(b.messages$('x', { consumer: 'a b' }))).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    expect(() => connectBus(s.url, { durable: { stream: 'A', subjects: [] } })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
  })

  it('on a server without JetStream a durable bus reports why on status$ and keeps trying (not closed)', async () => {
    const plainServer = s.track(await startNats(1))
    const b = s.track(connectBus(plainServer.url as `nats://${string}`, { durable: { stream: 'NOJS', subjects: ['nojs.>'] }, minReconnectDelay: 20, maxReconnectDelay: 50 }))
    const statuses: string[] = []
    const failedTwice = new Promise<void>((resolve) =>
      b.status$.subscribe((st) => {
        statuses.push(st.type === 'disconnected' ? `disconnected:${st.error?.code}` : st.type)
        if (statuses.filter((x) => x === 'disconnected:ERR_CONNECTION').length === 2) resolve()
      }),
    )
    await failedTwice
    expect(statuses.slice(0, 4)).toEqual(['connecting', 'disconnected:ERR_CONNECTION', 'connecting', 'disconnected:ERR_CONNECTION'])
    expect(statuses).not.toContain('closed')
  })
})
