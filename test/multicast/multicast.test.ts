// multicast() on loopback (interface 127.0.0.1): several sockets per host, packing, dedupe,
// own-echo drop, gap counting with injected loss, limits, lifecycle.
import { afterEach, describe, expect, it } from 'vitest'
import { firstValueFrom, of, take, toArray } from 'rxjs'
import { DEFAULT_MULTICAST_OPTIONS, isRxnetError, type DatagramRejection, type MulticastEvent } from 'rxnet'
import { HEADER_BYTES, encodeDatagram, parseHeader } from '../../src/multicast/datagram.js'
import { Resources, collect, freshGroup, str, text, until } from './helpers.js'

const res = new Resources()
afterEach(() => res.closeAll())

describe('multicast on loopback', () => {
  it('defaults to an administratively scoped group and ttl 1', () => {
    expect(DEFAULT_MULTICAST_OPTIONS.group.startsWith('239.')).toBe(true)
    expect(DEFAULT_MULTICAST_OPTIONS.ttl).toBe(1)
    expect(DEFAULT_MULTICAST_OPTIONS.maxDatagram).toBeLessThanOrEqual(1472)
  })

  it('delivers to every other socket on the group and port (reuseAddr), never back to the sender', async () => {
    const g = freshGroup()
    const [a, b, c] = [res.channel(g), res.channel(g), res.channel(g)]
    await Promise.all([a.ready, b.ready, c.ready])
    const [ga, gb, gc] = [collect(a), collect(b), collect(c)]
    a.send(text('from a'))
    b.send(text('from b'))
    await until(() => ga.length === 1 && gb.length === 1 && gc.length === 2, 5000, 'deliveries')
    expect(str(ga[0]!.data)).toBe('from b')
    expect(str(gb[0]!.data)).toBe('from a')
    expect(gc.map((m) => str(m.data)).sort()).toEqual(['from a', 'from b'])
    const fromA = gb[0]!.from
    expect(fromA).toMatchObject({ address: '127.0.0.1', port: g.port, senderId: a.id })
    await until(() => a.stats.echoes === 1 && b.stats.echoes === 1, 5000, 'echoes')
    expect(a.stats.messagesIn).toBe(1)
    expect(a.id).toMatch(/^[0-9a-f]{16}$/)
    expect(new Set([a.id, b.id, c.id]).size).toBe(3)
  })

  it("works bound to 0.0.0.0 (the non-Linux default), and binding the group keeps other groups' traffic out", async () => {
    const g = freshGroup()
    const other = { ...g, group: g.group.replace(/\.\d+$/, (m) => `.${(Number(m.slice(1)) % 254) + 1}`) }
    const wildcard = res.channel({ ...g, bind: '0.0.0.0' })
    const byGroup = res.channel(g)
    const sender = res.channel(g)
    const otherSender = res.channel(other)
    await Promise.all([wildcard.ready, byGroup.ready, sender.ready, otherSender.ready])
    const [gw, gg] = [collect(wildcard), collect(byGroup)]
    otherSender.send(text('other group'))
    sender.send(text('our group'))
    await until(() => gg.length === 1 && gw.length === 2, 5000, 'deliveries')
    expect(gg.map((m) => str(m.data))).toEqual(['our group'])
    // a socket bound to 0.0.0.0 on Linux also gets the other group's datagrams on the same port
    expect(gw.map((m) => str(m.data)).sort()).toEqual(['other group', 'our group'])
  })

  it('packs small messages sent in one tick into few datagrams, in order', async () => {
    const g = freshGroup()
    const a = res.channel(g)
    const b = res.channel(g)
    await Promise.all([a.ready, b.ready])
    const got = collect(b)
    const n = 500
    for (let i = 0; i < n; i++) a.send(text(`message ${i}`.padEnd(60, '.')))
    await until(() => got.length === n, 5000, `${n} messages`)
    expect(got.map((m) => str(m.data).split('.')[0])).toEqual(Array.from({ length: n }, (_, i) => `message ${i}`))
    // 61 bytes framed each, (1400 - 14) / 61 = 22 per datagram
    expect(a.stats.datagramsOut).toBe(Math.ceil(n / 22))
    expect(b.stats.datagramsIn).toBe(a.stats.datagramsOut)
    expect(a.stats.messagesOut).toBe(n)
    expect(b.stats).toMatchObject({ messagesIn: n, gaps: 0, duplicates: 0, bad: 0 })
  })

  it('the largest message fits one datagram; a larger one or not bytes, given to send or sink.next, fails the channel with ERR_ENCODE (cause: the reason) and never throws', async () => {
    const g = freshGroup()
    const a = res.channel({ ...g, maxDatagram: 200 })
    const b = res.channel(g)
    await Promise.all([a.ready, b.ready])
    const got = collect(b)
    expect(a.maxMessageSize).toBe(200 - HEADER_BYTES - 2)
    a.send(new Uint8Array(a.maxMessageSize).fill(1))
    await until(() => got.length === 1)
    expect(got[0]!.data.length).toBe(a.maxMessageSize)
    for (const [bad, cause, via] of [
      [new Uint8Array(2000), 'ERR_DATAGRAM_TOO_LARGE', 'send'],
      ['nope', 'ERR_INVALID_ARGUMENT', 'send'],
      [new Uint8Array(2000), 'ERR_DATAGRAM_TOO_LARGE', 'sink'],
      ['nope', 'ERR_INVALID_ARGUMENT', 'sink'],
    ] as const) {
      const c = res.channel(g)
      await c.ready
      const failed = new Promise((resolve) => c.source.subscribe({ error: resolve }))
      if (via === 'send') expect(() => c.send(bad as Uint8Array)).not.toThrow()
      else of(bad as Uint8Array).subscribe(c.sink) // a throw here would surface as an uncaught exception
      expect(await failed).toMatchObject({ code: 'ERR_ENCODE', cause: { code: cause } })
      expect(await c.closed).toMatchObject({ code: 'ERR_ENCODE' })
    }
  })

  it('inbound messages are held (bounded by maxHeldMessages, the rest counted in stats.droppedIn) while nobody subscribes', async () => {
    const g = freshGroup()
    const a = res.channel(g)
    const b = res.channel({ ...g, maxHeldMessages: 3 })
    await Promise.all([a.ready, b.ready])
    for (let i = 0; i < 5; i++) a.send(text(`m${i}`))
    await until(() => b.stats.messagesIn === 5)
    expect(b.stats.droppedIn).toBe(2)
    const got = collect(b)
    expect(got.map((m) => str(m.data))).toEqual(['m0', 'm1', 'm2'])
  })

  it('whenWritable({ signal }) waits for room and stops with ERR_ABORTED; closed tells how the channel ended; close({ signal }) aborts', async () => {
    const g = freshGroup()
    const a = res.channel({ ...g, highWaterMark: 1000 })
    for (let i = 0; i < 8; i++) a.send(new Uint8Array(99)) // over half the high-water mark, queued until bound
    expect(a.writable).toBe(false)
    const ac = new AbortController()
    const stopped = a.whenWritable({ signal: ac.signal })
    ac.abort('enough')
    await expect(stopped).rejects.toMatchObject({ code: 'ERR_ABORTED' })
    await a.whenWritable() // the queue drains once the socket is bound
    expect(a.writable).toBe(true)
    await a.close()
    expect(await a.closed).toBeUndefined()
    await expect(a.whenWritable()).rejects.toMatchObject({ code: 'ERR_CLOSED' })

    const c = res.channel(g)
    c.send(text('queued')) // not bound yet: still queued when the signal fires
    const err = new Promise((resolve) => c.source.subscribe({ error: resolve }))
    await c.close({ signal: AbortSignal.abort('now') })
    expect(await err).toMatchObject({ code: 'ERR_ABORTED' })
    expect(await c.closed).toMatchObject({ code: 'ERR_ABORTED' })
    expect(c.stats.dropped).toBe(1)
    // as on every Connection: after a failure, whenWritable() rejects ERR_CLOSED (cause: the failure)
    await expect(c.whenWritable()).rejects.toMatchObject({ code: 'ERR_CLOSED', cause: { code: 'ERR_ABORTED' } })
  })

  it('drops duplicated datagrams (a raw socket replays every one it captured)', async () => {
    const g = freshGroup()
    const a = res.channel(g)
    const b = res.channel(g)
    await Promise.all([a.ready, b.ready])
    const raw = await res.raw(g)
    const got = collect(b)
    const rejected: DatagramRejection[] = []
    b.rejected$.subscribe((r) => rejected.push(r))
    const events: MulticastEvent[] = []
    b.events$.subscribe((e) => events.push(e))
    for (let i = 0; i < 3; i++) {
      a.send(text(`m${i}`))
      await until(() => raw.received.length === i + 1)
    }
    for (const d of raw.received.slice()) await raw.send(d)
    await until(() => b.stats.duplicates === 3, 5000, 'duplicates counted')
    expect(got.map((m) => str(m.data))).toEqual(['m0', 'm1', 'm2'])
    expect(rejected.map((r) => r.reason)).toEqual(['duplicate', 'duplicate', 'duplicate'])
    expect(rejected[0]!.error.code).toBe('ERR_BAD_DATAGRAM')
    // events$ (the common lifecycle stream) carries the same rejections as one union; rejected$ is its view
    expect(events).toEqual(rejected.map((r) => ({ type: 'rejected', ...r })))
    expect(b.senders()).toEqual([expect.objectContaining({ senderId: a.id, datagrams: 3, duplicates: 3, gaps: 0 })])
  })

  it('counts gaps per sender when datagrams are lost, and late arrivals as reordered', async () => {
    const g = freshGroup()
    const b = res.channel(g)
    await b.ready
    const raw = await res.raw(g)
    const got = collect(b)
    const s1 = Uint8Array.from([1, 1, 1, 1, 1, 1, 1, 1])
    const s2 = Uint8Array.from([2, 2, 2, 2, 2, 2, 2, 2])
    // sender 1: 10, 11, (12, 13 lost), 14, then 12 arrives late; sender 2: 0, (1..4 lost), 5
    for (const [id, seq] of [[s1, 10], [s1, 11], [s1, 14], [s2, 0], [s2, 5], [s1, 12]] as const) {
      await raw.send(encodeDatagram(id, seq, [text(`${id[0]}:${seq}`)]))
      await until(() => got.length > 0 && str(got[got.length - 1]!.data) === `${id[0]}:${seq}`, 5000, `${id[0]}:${seq}`)
    }
    expect(got.map((m) => str(m.data))).toEqual(['1:10', '1:11', '1:14', '2:0', '2:5', '1:12'])
    expect(b.stats).toMatchObject({ gaps: 2 + 4, reordered: 1, datagramsIn: 6, senders: 2 })
    const bySender = Object.fromEntries(b.senders().map((s) => [s.senderId, s]))
    expect(bySender['0101010101010101']).toMatchObject({ datagrams: 4, gaps: 2, reordered: 1 })
    expect(bySender['0202020202020202']).toMatchObject({ datagrams: 2, gaps: 4, reordered: 0 })
    expect(got[0]!.from.senderId).toBe('0101010101010101')
  })

  it('drops garbage, foreign and sealed datagrams on a plain channel, counts them, keeps going', async () => {
    const g = freshGroup()
    const b = res.channel(g)
    await b.ready
    const raw = await res.raw(g)
    const got = collect(b)
    const reasons: string[] = []
    b.rejected$.subscribe((r) => reasons.push(r.reason))
    const id = Uint8Array.from([9, 9, 9, 9, 9, 9, 9, 9])
    const good = encodeDatagram(id, 1, [text('ok')])
    const sealedFlag = Buffer.from(good)
    sealedFlag[1]! |= 1
    await raw.send(Buffer.from('hello, not rxnet'))
    await raw.send(good.subarray(0, 5))
    await raw.send(Buffer.concat([good.subarray(0, HEADER_BYTES), Buffer.from([50, 1, 2])]))
    await raw.send(sealedFlag)
    await raw.send(new Uint8Array(0))
    await until(() => b.stats.bad === 5, 5000, '5 bad datagrams')
    await raw.send(good)
    await until(() => got.length === 1)
    expect(str(got[0]!.data)).toBe('ok')
    expect(reasons).toEqual(['foreign', 'truncated', 'malformed', 'sealed', 'truncated'])
  })

  it('stats$ emits snapshots and completes on close; source completes on close; sends after close are counted', async () => {
    const g = freshGroup()
    const a = res.channel({ ...g, statsInterval: 10 })
    const snaps = firstValueFrom(a.stats$.pipe(take(3), toArray()))
    a.send(text('x'))
    const all = await snaps
    expect(all.length).toBe(3)
    expect(all[0]).toHaveProperty('datagramsOut')
    await until(() => a.stats.messagesOut === 1)
    const done = new Promise<string>((resolve, reject) => a.source.subscribe({ error: reject, complete: () => resolve('complete') }))
    const last = firstValueFrom(a.stats$.pipe(toArray()))
    await a.close()
    await expect(done).resolves.toBe('complete')
    expect((await last).at(-1)).toMatchObject({ messagesOut: 1, datagramsOut: 1 })
    a.send(text('late'))
    expect(a.stats.dropped).toBe(1)
    await a.close() // idempotent
    await expect(new Promise((resolve) => a.source.subscribe({ complete: () => resolve('late subscriber completes') }))).resolves.toBeTruthy()
  })

  it('close() flushes what was sent in the same tick', async () => {
    const g = freshGroup()
    const a = res.channel(g)
    const b = res.channel(g)
    await b.ready
    const got = collect(b)
    for (let i = 0; i < 100; i++) a.send(text(`m${i}`))
    await a.close()
    await until(() => got.length === 100)
    expect(a.stats.messagesOut).toBe(100)
  })

  it('close() resolves only once the socket has closed (closed has resolved by then)', async () => {
    const a = res.channel(freshGroup())
    await a.ready
    let socketClosed = false
    void a.closed.then(() => (socketClosed = true))
    await a.close()
    expect(socketClosed).toBe(true)
    await a.close() // idempotent
  })

  it('sink.complete() closes, sink.error() aborts with ERR_ABORTED', async () => {
    const g = freshGroup()
    const a = res.channel(g)
    const b = res.channel(g)
    const aDone = new Promise((resolve) => a.source.subscribe({ complete: () => resolve('ok') }))
    a.sink.complete()
    await expect(aDone).resolves.toBe('ok')
    await a.closed
    const bErr = new Promise((resolve) => b.source.subscribe({ error: resolve }))
    b.sink.error(new Error('boom'))
    expect(isRxnetError(await bErr, 'ERR_ABORTED')).toBe(true)
    await b.closed
  })

  it('an AbortSignal closes the channel', async () => {
    const ac = new AbortController()
    const a = res.channel({ ...freshGroup(), signal: ac.signal })
    await a.ready
    ac.abort()
    await a.closed
    a.send(text('x'))
    expect(a.stats.dropped).toBe(1)
    expect(() => res.channel({ ...freshGroup(), signal: ac.signal })).toThrow(expect.objectContaining({ code: 'ERR_ABORTED' }))
  })

  it('applies the overflow policy to the bounded send buffer', async () => {
    const g = freshGroup()
    const drop = res.channel({ ...g, highWaterMark: 1000, overflow: 'drop-newest' })
    for (let i = 0; i < 100; i++) drop.send(new Uint8Array(99)) // 100 framed bytes each: 10 fit
    expect(drop.stats.dropped).toBe(90)
    expect(drop.stats.overflows).toBe(90)
    const fail = res.channel({ ...freshGroup(), highWaterMark: 1000 })
    const err = new Promise((resolve) => fail.source.subscribe({ error: resolve }))
    for (let i = 0; i < 11; i++) fail.send(new Uint8Array(99))
    expect(isRxnetError(await err, 'ERR_BUFFER_OVERFLOW')).toBe(true)
    await expect(fail.ready).rejects.toMatchObject({ code: 'ERR_BUFFER_OVERFLOW' })
  })

  it('validates options with ERR_INVALID_ARGUMENT', () => {
    const bad = [
      { group: '10.0.0.1' },
      { group: 'nope' },
      { group: '240.0.0.1' },
      { port: 0 },
      { port: 70000 },
      { ttl: -1 },
      { maxDatagram: 10 },
      { maxDatagram: 70000 },
      { interface: 'eth0' },
      { replayWindow: 100 },
      { overflow: 'explode' },
      { secret: '' },
    ]
    for (const o of bad) expect(() => res.channel(o as never), JSON.stringify(o)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
  })

  it('refuses an unknown option name (naming the closest valid one) and says so when a number is given as a string', () => {
    expect(() => res.channel({ interfce: '127.0.0.1' } as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('"interfce" (did you mean "interface"?)') }))
    expect(() => res.channel({ port: '4455' } as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('got the string "4455"') }))
  })

  it('fails with a typed error when the interface cannot be joined', async () => {
    const a = res.channel({ ...freshGroup(), interface: '10.255.255.254' })
    const err = new Promise((resolve) => a.source.subscribe({ error: resolve }))
    await expect(a.ready).rejects.toMatchObject({ code: 'ERR_CONNECTION' })
    expect(isRxnetError(await err, 'ERR_CONNECTION')).toBe(true)
  })
})
