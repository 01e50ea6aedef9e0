import fs from 'node:fs'
import net from 'node:net'
import { spawn } from 'node:child_process'
import { afterEach, describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { firstValueFrom, filter, take, toArray } from 'rxjs'
import { connectBus, socketChannel, startHub, type Bus, type Hub, type HubEvent } from 'rxnet'
import { encodeHello, encodeMsg, encodeSub, encodeWelcome, MAX_PATTERNS } from '../../src/bus/protocol.js'
import { checkSocketPath, isPipePath } from '../../src/bus/listen.js'
import { tmpSocket, until } from './helpers.js'

const open: { close(): unknown }[] = []
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close()
})
async function hub(options: Partial<Parameters<typeof startHub>[0]> = {}): Promise<Hub> {
  const h = await startHub({ path: tmpSocket(), ...options })
  open.push(h)
  return h
}
function bus(path: string, options: Parameters<typeof connectBus>[1] = {}): Bus {
  const b = connectBus(path, { minReconnectDelay: 10, maxReconnectDelay: 50, ...options })
  open.push(b)
  return b
}
function collect<T>(b: Bus, pattern: string): T[] {
  const got: T[] = []
  const sub = b.messages$<T>(pattern).subscribe((d) => got.push(d))
  open.push({ close: () => sub.unsubscribe() })
  return got
}
/** A raw client socket speaking (or not) the hub protocol. */
async function rawClient(path: string): Promise<net.Socket> {
  const s = net.connect(path)
  s.on('error', () => {})
  open.push({ close: () => s.destroy() })
  await new Promise((r) => s.once('connect', r))
  return s
}
const frame = (payload: Uint8Array): Buffer => Buffer.concat([Buffer.from([payload.length]), payload])

describe('hub and bus on one host', () => {
  it('routes by NATS wildcards, without self-echo unless asked', async () => {
    const h = await hub()
    const a = bus(h.path)
    const b = bus(h.path)
    const c = bus(h.path)
    const e = bus(h.path, { echo: true })
    const star = collect(b, 'log.*')
    const tail = collect(c, 'log.>')
    const exact = collect(c, 'log')
    const own = collect(a, 'log.>')
    const echoed = collect(e, 'log.>')
    await Promise.all([a.flush(), b.flush(), c.flush(), e.flush()])
    a.emit('log', 1)
    a.emit('log.x', 2)
    a.emit('log.x.y', 3)
    a.emit('other', 4)
    e.emit('log.e', 5)
    await Promise.all([a.flush(), e.flush()])
    await Promise.all([b.flush(), c.flush(), e.flush(), a.flush()])
    await until(() => tail.length === 3 && echoed.length === 3)
    expect(star).toEqual([2, 5])
    expect(tail).toEqual([2, 3, 5])
    expect(exact).toEqual([1])
    expect(own).toEqual([5]) // a's own messages never come back
    expect(echoed).toEqual([2, 3, 5]) // e asked for its own
  })

  it('delivers every message exactly once, in emit order per sender, with overlapping patterns', async () => {
    const h = await hub()
    const senders = [bus(h.path), bus(h.path), bus(h.path)]
    const r1 = bus(h.path)
    const r2 = bus(h.path)
    const got1: { topic: string; data: { s: number; i: number } }[] = []
    const got2: { s: number; i: number }[] = []
    // r1 has two overlapping interests: each message must still arrive once per subscriber.
    const s1 = r1.envelopes$<{ s: number; i: number }>('n.*').subscribe((m) => got1.push(m))
    const s2 = r1.envelopes$<{ s: number; i: number }>('n.>').subscribe((m) => got1.push(m))
    const s3 = r2.messages$<{ s: number; i: number }>('n.>').subscribe((d) => got2.push(d))
    open.push({ close: () => [s1, s2, s3].forEach((s) => s.unsubscribe()) })
    await Promise.all([r1.flush(), r2.flush()])
    const N = 2000
    for (let i = 0; i < N; i++) senders.forEach((s, k) => s.emit(`n.${k}`, { s: k, i }))
    await Promise.all(senders.map((s) => s.flush()))
    await until(() => got2.length === 3 * N && got1.length === 6 * N, 15_000, 'all messages')
    for (let k = 0; k < 3; k++) {
      expect(got2.filter((m) => m.s === k).map((m) => m.i)).toEqual([...Array(N).keys()])
    }
    expect(r1.stats.received).toBe(3 * N)
    expect(r1.stats.duplicates + r2.stats.duplicates).toBe(0)
  })

  it('is cold: the hub forwards only what someone currently wants', async () => {
    const h = await hub()
    const a = bus(h.path)
    const b = bus(h.path)
    await a.flush()
    a.emit('t', 'nobody')
    await a.flush()
    expect(h.stats.delivered).toBe(0)
    const first = firstValueFrom(b.messages$('t'))
    await until(() => true)
    await b.flush()
    a.emit('t', 'wanted')
    expect(await first).toBe('wanted')
    await b.flush() // the UNSUB (from firstValueFrom's unsubscribe) has reached the hub
    const delivered = h.stats.delivered
    a.emit('t', 'unwanted again')
    await a.flush()
    expect(h.stats.delivered).toBe(delivered)
  })

  it('refuses a path held by a live hub, a regular file and a too-long path; replaces a stale socket; makes it 0600', async () => {
    const h = await hub()
    expect((fs.statSync(h.path).mode & 0o777).toString(8)).toBe('600')
    await expect(startHub({ path: h.path })).rejects.toMatchObject({ code: 'ERR_PATH_IN_USE' })
    const b = bus(h.path)
    const got = collect(b, 'still')
    await b.flush()
    bus(h.path).emit('still', 'alive')
    await until(() => got.length === 1) // the first hub is unaffected

    const file = tmpSocket()
    fs.writeFileSync(file, 'not a socket')
    open.push({ close: () => fs.rmSync(file, { force: true }) })
    await expect(startHub({ path: file })).rejects.toMatchObject({ code: 'ERR_NOT_A_SOCKET' })
    expect(fs.readFileSync(file, 'utf8')).toBe('not a socket')

    await expect(startHub({ path: `/tmp/${'x'.repeat(120)}.sock` })).rejects.toMatchObject({ code: 'ERR_PATH_TOO_LONG' })
    await expect(startHub({ path: '/nonexistent-dir/x.sock' })).rejects.toMatchObject({ code: 'ERR_PATH_NOT_FOUND' })
    if (process.platform === 'linux') {
      expect(() => checkSocketPath(`/tmp/${'y'.repeat(103)}`)).toThrow(expect.objectContaining({ code: 'ERR_PATH_TOO_LONG' })) // 108 bytes
      expect(() => checkSocketPath(`/tmp/${'y'.repeat(102)}`)).not.toThrow() // 107 bytes is the Linux limit
    }
    expect(isPipePath('\\\\?\\pipe\\app')).toBe(true)
    expect(() => checkSocketPath(`\\\\?\\pipe\\${'p'.repeat(200)}`)).not.toThrow()

    // A stale socket: a process that bound it was SIGKILLed, the file stayed, nobody answers.
    const stale = tmpSocket()
    const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(stale)}, () => process.kill(process.pid, 'SIGKILL'))`])
    await new Promise((r) => child.once('exit', r))
    expect(fs.statSync(stale).isSocket()).toBe(true)
    const h2 = await hub({ path: stale })
    const c = bus(h2.path)
    await c.flush()
    expect(c.connected).toBe(true)
    await h2.close()
    expect(fs.existsSync(stale)).toBe(false) // close() removes the socket file
  })

  it('drops a client that sends garbage, an oversized frame, no HELLO, or stops reading; everyone else keeps going', async () => {
    const h = await hub({ clientHighWaterMark: 64 * 1024, slowClientTimeout: 300, helloTimeout: 300, maxMessageSize: 64 * 1024 })
    const drops: HubEvent[] = []
    const sub = h.events$.pipe(filter((e) => e.type === 'drop')).subscribe((e) => drops.push(e))
    open.push({ close: () => sub.unsubscribe() })
    const sender = bus(h.path)
    const receiver = bus(h.path)
    const got = collect<number>(receiver, 'x.>')
    await receiver.flush()

    const garbage = await rawClient(h.path)
    garbage.write(Buffer.from([0x05, 0xff, 0xff, 0xff, 0x00, 0x01]))
    const oversized = await rawClient(h.path)
    oversized.write(frame(encodeHello('big', false)))
    oversized.write(Buffer.from([0x80, 0x80, 0x80, 0x08])) // declares 16 MiB
    await rawClient(h.path) // says nothing
    const stuck = await rawClient(h.path)
    stuck.write(Buffer.concat([frame(encodeHello('stuck', false)), frame(encodeSub('>'))]))
    stuck.pause() // never reads

    const N = 3000
    const payload = 'p'.repeat(1000)
    for (let i = 0; i < N; i++) {
      sender.emit(`x.${i % 3}`, i)
      sender.emit('bulk', payload)
      if (!sender.writable) await sender.whenWritable()
    }
    await sender.flush()
    await until(() => got.length === N && drops.length === 4, 15_000, 'delivery and 4 drops').catch((e) => {
      throw new Error(`${e.message}: got ${got.length}, drops ${JSON.stringify(drops.map((d) => [d.type === 'drop' && d.client, d.type === 'drop' && d.error.code]))} ${JSON.stringify(h.stats)} ${JSON.stringify(sender.stats)}`)
    })
    expect(got).toEqual([...Array(N).keys()])
    const codes = drops.map((d) => (d as { error: { code: string } }).error.code).sort()
    expect(codes).toEqual(expect.arrayContaining(['ERR_FRAME_TOO_LONG', 'ERR_PROTOCOL', 'ERR_TIMEOUT']))
    expect(drops.find((d) => d.type === 'drop' && d.client === 'stuck')).toBeDefined()
    expect(h.stats.clients).toBe(2)
  })

  it('a slow receiver slows the senders down instead of being dropped (far more data than any buffer)', async () => {
    const h = await hub({ clientHighWaterMark: 64 * 1024 })
    const sender = bus(h.path, { highWaterMark: 256 * 1024 })
    const receiver = bus(h.path)
    let next = 0
    let bad = 0
    const sub = receiver.messages$<{ i: number }>('flood').subscribe(({ i }) => {
      if (i !== next) bad++
      next = i + 1
      const until = performance.now() + 0.005 // a receiver slower than the sender
      while (performance.now() < until);
    })
    open.push({ close: () => sub.unsubscribe() })
    await receiver.flush()
    const N = 20_000
    const pad = 'p'.repeat(500)
    for (let i = 0; i < N; i++) {
      sender.emit('flood', { i, pad })
      if (!sender.writable) await sender.whenWritable()
    }
    await sender.flush()
    await until(() => next === N, 20_000, 'the slow receiver to get everything').catch((e) => {
      throw new Error(`${e.message} next=${next} hub=${JSON.stringify(h.stats)} r=${JSON.stringify(receiver.stats)} s=${JSON.stringify(sender.stats)}`)
    })
    expect(bad).toBe(0)
    expect(h.stats.dropped).toBe(0)
    expect(receiver.stats.reconnects).toBe(0)
  })

  it('a client registering more than MAX_PATTERNS patterns is dropped (ERR_PROTOCOL); the bus client refuses the extra pattern itself', async () => {
    const h = await hub()
    const drops: HubEvent[] = []
    const sub = h.events$.pipe(filter((e) => e.type === 'drop')).subscribe((e) => drops.push(e))
    open.push({ close: () => sub.unsubscribe() })
    const a = bus(h.path)
    const got = collect<number>(a, 'alive')
    const flood = await rawClient(h.path)
    const subs = Array.from({ length: MAX_PATTERNS + 1 }, (_, i) => frame(encodeSub(`p.${i}`)))
    flood.write(Buffer.concat([frame(encodeHello('flood', false)), ...subs]))
    await until(() => drops.length === 1, 10_000, 'drop')
    expect(drops[0]).toMatchObject({ client: 'flood', error: { code: 'ERR_PROTOCOL' } })
    const b = bus(h.path)
    b.emit('alive', 1)
    await until(() => got.length === 1, 5000, 'delivery after the drop')
    const subsOfA = Array.from({ length: MAX_PATTERNS - 1 }, (_, i) => a.messages$(`q.${i}`).subscribe())
    open.push({ close: () => subsOfA.forEach((s) => s.unsubscribe()) })
    await expect(firstValueFrom(a.messages$('one.too.many'))).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    await a.flush()
    expect(a.connected).toBe(true)
    expect(h.stats.dropped).toBe(1)
  })

  it('an error on the listening server (EMFILE while accepting) is reported on events$, not thrown: the hub keeps serving', async () => {
    const h = await hub()
    const events: HubEvent[] = []
    const sub = h.events$.subscribe((e) => events.push(e))
    open.push({ close: () => sub.unsubscribe() })
    const emfile = Object.assign(new Error('accept EMFILE'), { code: 'EMFILE' })
    ;(h as unknown as { server: net.Server }).server.emit('error', emfile) // what net.Server does when accept() fails
    expect(events).toContainEqual({ type: 'server-error', error: emfile })
    const a = bus(h.path)
    const got = collect<number>(a, 'still')
    await a.flush()
    bus(h.path).emit('still', 1)
    await until(() => got.length === 1, 5000, 'delivery after the server error')
  })

  it('random bytes from a client never take the hub down (fast-check, real sockets)', async () => {
    const h = await hub({ helloTimeout: 200 })
    const a = bus(h.path)
    const b = bus(h.path)
    const got = collect<number>(b, 'alive')
    await b.flush()
    let n = 0
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 300 }), fc.boolean(), async (bytes, hello) => {
        const s = await rawClient(h.path)
        if (hello) s.write(frame(encodeHello(`fuzz-${n}`, false)))
        s.write(bytes)
        a.emit('alive', n++)
        await a.flush()
        s.destroy()
      }),
      { numRuns: 40 },
    )
    await until(() => got.length === n)
    expect(got).toEqual([...Array(n).keys()])
  })

  it('buffers emits while no hub is up, bounded: the overflow policy applies and is counted', async () => {
    const path = tmpSocket()
    // The emitters reach the hub through a symlink created only once the receiver is subscribed,
    // so what they kept is delivered to it (a hub forwards only to interests it already has).
    const link = tmpSocket()
    open.push({ close: () => fs.rmSync(link, { force: true }) })
    const dropping = bus(link, { highWaterMark: 1000, overflow: 'drop-oldest' })
    const pad = 'x'.repeat(40)
    for (let i = 0; i < 100; i++) dropping.emit('t', { i, pad }) // ~55 bytes a frame: ~18 fit
    expect(dropping.stats.dropped).toBeGreaterThan(0)
    expect(dropping.stats.buffered + dropping.stats.dropped).toBe(100)
    const strict = bus(link, { highWaterMark: 1000 })
    expect(() => {
      for (let i = 0; i < 100; i++) strict.emit('u', { i, pad })
    }).toThrow(expect.objectContaining({ code: 'ERR_BUFFER_OVERFLOW' }))
    expect(strict.stats.overflows).toBe(1)
    await hub({ path })
    const r = bus(path)
    const got = collect<{ i: number }>(r, 't')
    await r.flush()
    fs.symlinkSync(path, link)
    await dropping.flush()
    const kept = dropping.stats.buffered
    expect(kept).toBe(0)
    const survived = 100 - dropping.stats.dropped
    await until(() => got.length === survived, 10_000, 'buffered messages')
    expect(got.map((m) => m.i)).toEqual([...Array(survived).keys()].map((k) => 100 - survived + k)) // the newest survived, in order
    await strict.flush()
  })

  it('validates input: bad topics, unencodable values, wildcards in emit', async () => {
    const h = await hub()
    const b = bus(h.path)
    expect(() => b.emit('log.*', 1)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
    expect(() => b.emit('a..b', 1)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
    expect(() => b.emit('ok', undefined)).toThrow(expect.objectContaining({ code: 'ERR_ENCODE' }))
    await expect(firstValueFrom(b.messages$('a.>.b'))).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    expect(() => connectBus(`/tmp/${'z'.repeat(200)}`)).toThrow(expect.objectContaining({ code: 'ERR_PATH_TOO_LONG' }))
  })

  it('a message right at maxMessageSize is delivered; one byte more is refused by emit with ERR_FRAME_TOO_LONG', async () => {
    const max = 4096
    const h = await hub({ maxMessageSize: max })
    const a = bus(h.path, { maxMessageSize: max })
    const b = bus(h.path, { maxMessageSize: max })
    const got = collect<string>(b, 'big')
    await b.flush()
    // PUB frame: type 1 + seq 1 + topic 4 + JSON string (2 quotes) = 8 bytes around the text
    const text = 'x'.repeat(max - 8)
    a.emit('big', text)
    expect(() => a.emit('big', text + 'x')).toThrow(expect.objectContaining({ code: 'ERR_FRAME_TOO_LONG' }))
    await a.flush()
    await until(() => got.length === 1)
    expect(got[0]).toBe(text)
    expect(h.stats.dropped).toBe(0)
  })

  it('the client delivers late arrivals once and drops repeats (per-sender window, as over multicast)', async () => {
    // A fake hub: answers HELLO, then sends MSGs of one origin out of order and repeated.
    const path = tmpSocket()
    const server = net.createServer((sock) => {
      sock.on('error', () => {})
      const ch = socketChannel(sock)
      ch.source.subscribe({ error: () => {} })
      ch.send(encodeWelcome('fake'))
      const j = (v: unknown) => new TextEncoder().encode(JSON.stringify(v))
      for (const seq of [2, 1, 2, 5, 3, 1, 4, 5]) ch.send(encodeMsg(seq, 'origin', 't', j(seq)))
    })
    await new Promise<void>((r) => server.listen(path, r))
    open.push({ close: () => new Promise((r) => server.close(r)) })
    const b = bus(path)
    const got = collect<number>(b, 't')
    await until(() => got.length === 5)
    await until(() => b.stats.duplicates === 3)
    expect(got).toEqual([2, 1, 5, 3, 4])
  })

  it('emit then close() at once: close waits for the connection and the hub to take the message', async () => {
    const h = await hub()
    const r = bus(h.path)
    const got = collect<number>(r, 'quick')
    await r.flush()
    const s = connectBus(h.path)
    s.emit('quick', 1)
    await s.close()
    await until(() => got.length === 1)
    expect(got).toEqual([1])
  })

  it('close() completes subscribers and status$, removes the socket, and is idempotent', async () => {
    const h = await hub()
    const b = connectBus(h.path)
    const done = firstValueFrom(b.messages$('x').pipe(toArray()))
    const statuses = firstValueFrom(b.status$.pipe(toArray()))
    await b.flush()
    await Promise.all([b.close(), b.close()])
    expect(await done).toEqual([])
    expect((await statuses).map((s) => s.type)).toEqual(['connecting', 'connected', 'closed'])
    expect(() => b.emit('x', 1)).toThrow(expect.objectContaining({ code: 'ERR_CLOSED' }))
    await expect(b.flush()).rejects.toMatchObject({ code: 'ERR_CLOSED' })
    await until(() => h.stats.clients === 0)
    await Promise.all([h.close(), h.close()])
    expect(fs.existsSync(h.path)).toBe(false)
    // take(1) is netcluster's once()
    expect(take).toBeDefined()
  })
})
