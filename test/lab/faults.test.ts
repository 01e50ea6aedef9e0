// In-process faults, on loopback (no lab needed).
import { createSocket, type Socket as UdpSocket } from 'node:dgram'
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { from, lastValueFrom, range, toArray } from 'rxjs'
import { afterEach, describe, expect, it } from 'vitest'
import { createTcpProxy, createUdpForwarder, FaultGate, lossy, seededRandom, type TcpProxy, type UdpForwarder } from './faults.js'

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

describe('fault model', () => {
  it('seededRandom is deterministic and uniform enough', () => {
    const a = seededRandom(42)
    const b = seededRandom(42)
    const xs = Array.from({ length: 10_000 }, () => a())
    expect(xs.slice(0, 5)).toEqual(Array.from({ length: 5 }, () => b()))
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0)
    expect(Math.max(...xs)).toBeLessThan(1)
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length
    expect(mean).toBeGreaterThan(0.48)
    expect(mean).toBeLessThan(0.52)
  })

  it('lossy drops the same items for the same seed, about the requested share', async () => {
    const run = (seed: number) => lastValueFrom(range(0, 2000).pipe(lossy<number>({ loss: 0.25, seed }), toArray()))
    const [a, b, c] = await Promise.all([run(7), run(7), run(8)])
    expect(a).toEqual(b)
    expect(a).not.toEqual(c)
    expect(a.length).toBeGreaterThan(1400)
    expect(a.length).toBeLessThan(1600)
    expect(a).toEqual([...a].sort((x, y) => x - y)) // loss alone never reorders
  })

  it('duplicate and reorder keep every item and change the sequence', async () => {
    const out = await lastValueFrom(from([...Array(500).keys()]).pipe(lossy<number>({ duplicate: 0.1, reorder: 0.1, seed: 3 }), toArray()))
    expect(new Set(out).size).toBe(500)
    expect(out.length).toBeGreaterThan(520)
    expect(out).not.toEqual([...out].sort((x, y) => x - y))
  })

  it('delay holds items back and completion waits for them', async () => {
    const t0 = Date.now()
    const out = await lastValueFrom(from([1, 2, 3]).pipe(lossy<number>({ delayMs: 60 }), toArray()))
    expect(out).toEqual([1, 2, 3])
    expect(Date.now() - t0).toBeGreaterThanOrEqual(55)
  })

  it('counts what it did, and rejects probabilities outside [0, 1]', () => {
    const got: number[] = []
    const gate = new FaultGate<number>({ loss: 0.5, seed: 1 }, (v) => got.push(v))
    for (let i = 0; i < 100; i++) gate.push(i)
    expect(gate.stats.received).toBe(100)
    expect(gate.stats.dropped + gate.stats.delivered).toBe(100)
    expect(got.length).toBe(gate.stats.delivered)
    expect(() => new FaultGate({ loss: 1.5 }, () => {})).toThrow(RangeError)
  })

  it('unsubscribing cancels delayed items', async () => {
    const got: number[] = []
    const sub = from([1, 2]).pipe(lossy<number>({ delayMs: 30 })).subscribe((v) => got.push(v))
    sub.unsubscribe()
    await new Promise((r) => setTimeout(r, 60))
    expect(got).toEqual([])
  })
})

describe('UDP forwarder', () => {
  async function udpEcho(): Promise<{ sock: UdpSocket; port: number }> {
    const sock = createSocket('udp4')
    sock.on('message', (m, r) => sock.send(m, r.port, r.address))
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r))
    cleanups.push(() => new Promise<void>((r) => sock.close(() => r())))
    return { sock, port: sock.address().port }
  }

  async function client(): Promise<{ sock: UdpSocket; got: string[]; waitCount: (n: number) => Promise<void> }> {
    const sock = createSocket('udp4')
    const got: string[] = []
    const waiters: (() => void)[] = []
    sock.on('message', (m) => {
      got.push(m.toString())
      waiters.splice(0).forEach((w) => w())
    })
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r))
    cleanups.push(() => new Promise<void>((r) => sock.close(() => r())))
    const waitCount = async (n: number) => {
      const deadline = Date.now() + 5000
      while (got.length < n && Date.now() < deadline) await new Promise<void>((r) => (waiters.push(r), setTimeout(r, 100)))
    }
    return { sock, got, waitCount }
  }

  it('relays both ways; with loss the survivors match the stats', async () => {
    const echo = await udpEcho()
    const fwd: UdpForwarder = await createUdpForwarder({ target: { address: '127.0.0.1', port: echo.port }, loss: 0.3, seed: 11 })
    cleanups.push(() => fwd.close())
    const c = await client()
    for (let i = 0; i < 200; i++) c.sock.send(`m${i}`, fwd.port, '127.0.0.1')
    // Wait until every datagram went through both directions (the counts settle), bounded.
    const deadline = Date.now() + 5000
    while (fwd.downstream.received < fwd.upstream.delivered || fwd.upstream.received < 200) {
      if (Date.now() > deadline) break
      await new Promise((r) => setTimeout(r, 20))
    }
    await c.waitCount(fwd.downstream.delivered)
    expect(fwd.upstream.received).toBe(200)
    expect(fwd.upstream.dropped).toBeGreaterThan(30)
    expect(c.got.length).toBe(fwd.downstream.delivered)
    expect(c.got.length).toBeLessThan(200 - fwd.upstream.dropped + 1)
  })

  it('delays datagrams', async () => {
    const echo = await udpEcho()
    const fwd = await createUdpForwarder({ target: { address: '127.0.0.1', port: echo.port }, delayMs: 40 })
    cleanups.push(() => fwd.close())
    const c = await client()
    const t0 = Date.now()
    c.sock.send('x', fwd.port, '127.0.0.1')
    await c.waitCount(1)
    expect(c.got).toEqual(['x'])
    expect(Date.now() - t0).toBeGreaterThanOrEqual(75) // 40 ms each way
    fwd.setFaults({ loss: 1 })
    c.sock.send('y', fwd.port, '127.0.0.1')
    // Poll for the count (a loaded machine may take longer than any fixed sleep), bounded.
    for (let i = 0; i < 500 && fwd.upstream.dropped === 0; i++) await new Promise((r) => setTimeout(r, 10))
    expect(fwd.upstream.dropped).toBe(1)
    expect(c.got).toEqual(['x'])
  })
})

describe('TCP proxy', () => {
  async function echoServer(): Promise<number> {
    const sockets = new Set<Socket>()
    const server: Server = createServer((s) => {
      sockets.add(s)
      s.on('close', () => sockets.delete(s))
      s.on('error', () => {})
      s.pipe(s)
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    cleanups.push(() => new Promise((r) => server.close(r)))
    cleanups.push(() => sockets.forEach((s) => s.destroy()))
    return (server.address() as AddressInfo).port
  }

  async function open(proxy: TcpProxy): Promise<{ sock: Socket; data: () => string; until: (s: string, ms?: number) => Promise<boolean> }> {
    const sock = connect({ host: proxy.host, port: proxy.port })
    sock.on('error', () => {})
    let data = ''
    sock.on('data', (d) => (data += d.toString()))
    await new Promise((r) => sock.once('connect', r))
    cleanups.push(() => sock.destroy())
    const until = async (s: string, ms = 3000) => {
      const deadline = Date.now() + ms
      while (!data.includes(s) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
      return data.includes(s)
    }
    return { sock, data: () => data, until }
  }

  it('forwards both ways with the configured delay', async () => {
    const proxy = await createTcpProxy({ target: { host: '127.0.0.1', port: await echoServer() }, delayMs: 30 })
    cleanups.push(() => proxy.close())
    const c = await open(proxy)
    const t0 = Date.now()
    c.sock.write('hello')
    expect(await c.until('hello')).toBe(true)
    expect(Date.now() - t0).toBeGreaterThanOrEqual(55)
    expect(proxy.stats.bytesUp).toBe(5)
    expect(proxy.stats.bytesDown).toBe(5)
    expect(proxy.connections).toBe(1)
  })

  it('pause freezes the connection, resume delivers what was held', async () => {
    const proxy = await createTcpProxy({ target: { host: '127.0.0.1', port: await echoServer() } })
    cleanups.push(() => proxy.close())
    const c = await open(proxy)
    c.sock.write('a')
    expect(await c.until('a')).toBe(true)
    proxy.pause()
    c.sock.write('b')
    expect(await c.until('b', 150)).toBe(false)
    proxy.resume()
    expect(await c.until('b')).toBe(true)
  })

  it('cut resets open connections; refuse resets new ones; close releases everything', async () => {
    const proxy = await createTcpProxy({ target: { host: '127.0.0.1', port: await echoServer() } })
    const c = await open(proxy)
    const closed = new Promise<string | undefined>((r) => {
      c.sock.once('error', (e: NodeJS.ErrnoException) => r(e.code))
      c.sock.once('close', () => r(undefined))
    })
    proxy.cut()
    expect(await closed).toBe('ECONNRESET')
    expect(proxy.connections).toBe(0)
    proxy.refuse(true)
    const c2 = connect({ host: proxy.host, port: proxy.port })
    const code = await new Promise<string | undefined>((r) => {
      c2.once('error', (e: NodeJS.ErrnoException) => r(e.code))
      c2.once('close', () => r(undefined))
    })
    expect(code).toBe('ECONNRESET')
    await proxy.close()
    await proxy.close()
    const refused = await new Promise<string | undefined>((r) => {
      const s = connect({ host: proxy.host, port: proxy.port })
      s.once('error', (e: NodeJS.ErrnoException) => r(e.code))
      s.once('connect', () => (s.destroy(), r('connected')))
    })
    expect(refused).toBe('ECONNREFUSED')
  })

  it('passes a clean end through', async () => {
    const proxy = await createTcpProxy({ target: { host: '127.0.0.1', port: await echoServer() } })
    cleanups.push(() => proxy.close())
    const c = await open(proxy)
    const ended = new Promise((r) => c.sock.once('end', r))
    c.sock.end('bye')
    await ended
    expect(c.data()).toBe('bye')
    expect(proxy.stats.bytesDown).toBe(3)
    await new Promise((r) => c.sock.once('close', r))
    for (let i = 0; i < 100 && proxy.connections > 0; i++) await new Promise((r) => setTimeout(r, 10))
    expect(proxy.connections).toBe(0)
  })
})
