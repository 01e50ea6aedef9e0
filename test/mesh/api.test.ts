import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { firstValueFrom, filter, take, toArray } from 'rxjs'
import { afterEach, describe, expect, it } from 'vitest'
import { createMesh, peers$, type Mesh, type MeshEvent, type Peer } from 'rxnet'
import { backoff } from '../../src/mesh/targets.js'

const meshes: Mesh<any, any>[] = []
afterEach(async () => {
  await Promise.all(meshes.splice(0).map((m) => m.close()))
})

function node<In = Uint8Array, Out = Uint8Array | string>(opts: Record<string, unknown>): Mesh<In, Out> {
  const m = createMesh<In, Out>({ name: 'api', interface: '127.0.0.1', discovery: false, ...opts })
  meshes.push(m)
  return m
}

/** Two seeded nodes; resolves once both see each other. */
async function pair<In = Uint8Array, Out = Uint8Array | string>(opts: Record<string, unknown> = {}, host = '127.0.0.1', seedHost = host) {
  const a = node<In, Out>({ id: 'a', ...opts })
  const { port } = await a.listen(0, host)
  const b = node<In, Out>({ id: 'b', seeds: [`${seedHost.includes(':') ? `[${seedHost}]` : seedHost}:${port}`], ...opts })
  const pa = firstValueFrom(a.peers$)
  const pb = firstValueFrom(b.peers$)
  await b.listen(0, host)
  return { a, b, pa: await pa, pb: await pb }
}

describe('createMesh API', () => {
  it('address() is null before listen and { port, addresses } after; hostnames resolve', async () => {
    const m = node({ id: 'x' })
    expect(m.address()).toBeNull()
    const addr = await m.listen(0, 'localhost')
    expect(addr.port).toBeGreaterThan(0)
    expect(m.address()).toEqual(addr)
    expect(['127.0.0.1', '::1']).toContain(addr.addresses[0])
    expect(await m.listen()).toEqual(addr) // idempotent
  })

  it("listens on '::1' and peers reach it over IPv6 loopback", async () => {
    const { pa, pb } = await pair({}, '::1')
    expect(pa.address).toBe('::1')
    expect(pb.id).toBe('a')
  })

  it('a codec makes source emit values and send take values; empty messages survive', async () => {
    const { pa, pb } = await pair<unknown, unknown>({ codec: 'json' })
    const got = firstValueFrom(pa.source.pipe(take(3), toArray()))
    pb.send({ hello: 'world', n: 1 })
    pb.send([1, 2, 3])
    pb.send('')
    expect(await got).toEqual([{ hello: 'world', n: 1 }, [1, 2, 3], ''])
  })

  it('an empty raw message is delivered as an empty Uint8Array, in order', async () => {
    const { pa, pb } = await pair()
    const got = firstValueFrom(pa.source.pipe(take(3), toArray()))
    pb.send('x')
    pb.send(new Uint8Array(0))
    pb.send('y')
    expect((await got).map((m) => Buffer.from(m).toString())).toEqual(['x', '', 'y'])
  })

  it('events$ tells listening, join, leave and close; peer.source completes when the peer leaves', async () => {
    const a = node({ id: 'a' })
    const events: MeshEvent['type'][] = []
    a.events$.subscribe((e) => events.push(e.type))
    const { port } = await a.listen(0, '127.0.0.1')
    const b = node({ id: 'b', seeds: [`127.0.0.1:${port}`] })
    const peer = firstValueFrom(a.peers$)
    const joined = firstValueFrom(b.peers$) // b's side is up too (closing mid-handshake would be a failure)
    await b.listen(0, '127.0.0.1')
    const p = await peer
    await joined
    const completed = new Promise<void>((resolve) => p.source.subscribe({ complete: resolve }))
    await b.close()
    await completed
    expect((await p.left).type).toBe('closed')
    await a.close()
    expect(events).toEqual(['listening', 'join', 'leave', 'close'])
  })

  it('members$ replays the current map and peers$ replays current peers to late subscribers', async () => {
    const { a } = await pair()
    const late = await firstValueFrom(a.peers$)
    expect(late.id).toBe('b')
    const map = await firstValueFrom(a.members$)
    expect([...map.keys()]).toEqual(['b'])
  })

  it('equal ids are refused with ERR_DUPLICATE_ID; bad options with ERR_INVALID_ARGUMENT', async () => {
    const a = node({ id: 'same' })
    const { port } = await a.listen(0, '127.0.0.1')
    const b = node({ id: 'same', seeds: [`127.0.0.1:${port}`] })
    const failed = firstValueFrom(b.events$.pipe(filter((e) => e.type === 'dial-failed')))
    await b.listen(0, '127.0.0.1')
    expect((await failed).type === 'dial-failed' && ((await failed) as { error: { code: string } }).error.code).toBe('ERR_DUPLICATE_ID')
    expect(a.stats.refusedByCode.ERR_DUPLICATE_ID).toBe(1)
    expect(() => createMesh({ name: '' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
    expect(() => createMesh({ name: 'x', heartbeatInterval: -1 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
    expect(() => createMesh({ name: 'x', secret: 'k', tls: {} })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
    expect(() => createMesh({ name: 'x', seeds: ['nope'] })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
    expect(() => createMesh({ name: 'x', interface: 'eth0' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
  })

  it('a failed listen rejects with ERR_CONNECTION and can be retried; close() during listen leaves nothing open', async () => {
    const a = node({ id: 'a' })
    const { port } = await a.listen(0, '127.0.0.1')
    const b = node({ id: 'b' })
    await expect(b.listen(port, '127.0.0.1')).rejects.toMatchObject({ code: 'ERR_CONNECTION' })
    await expect(b.listen(0, 'no-such-host.invalid')).rejects.toMatchObject({ code: 'ERR_CONNECTION' })
    expect((await b.listen(0, '127.0.0.1')).port).toBeGreaterThan(0)
    const c = node({ id: 'c' })
    const listening = c.listen(0, '127.0.0.1')
    await c.close()
    await expect(listening).rejects.toMatchObject({ code: 'ERR_CLOSED' })
  })

  it('listen honours an AbortSignal; broadcast after close is ERR_CLOSED; await using closes', async () => {
    const m = node({ id: 'x' })
    await expect(m.listen(0, '127.0.0.1', { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'ERR_ABORTED' })
    await m.close()
    expect(() => m.broadcast('x')).toThrow(expect.objectContaining({ code: 'ERR_CLOSED' }))
    await expect(m.listen()).rejects.toMatchObject({ code: 'ERR_CLOSED' })
    let closed = false
    {
      await using d = createMesh({ name: 'api', id: 'd', discovery: false })
      d.events$.subscribe({ complete: () => (closed = true) })
    }
    expect(closed).toBe(true)
  })

  it('peers$(name) is cold: listens on subscribe, closes on unsubscribe (the README top example)', async () => {
    const name = `cold-${process.pid}`
    const seen: Peer[] = []
    const sub1 = peers$(name, { interface: '127.0.0.1', id: 'p1' }).subscribe((peer) => seen.push(peer))
    const other = new Promise<Peer>((resolve) => {
      const sub2 = peers$(name, { interface: '127.0.0.1', id: 'p2' }).subscribe((peer) => {
        peer.source.subscribe({ complete: () => sub2.unsubscribe() })
        resolve(peer)
      })
    })
    const p = await other
    expect(p.id).toBe('p1')
    const msg = firstValueFrom(p.source)
    await new Promise<void>((resolve) => {
      const check = (): void => (seen.length > 0 ? resolve() : void setTimeout(check, 10))
      check()
    })
    seen[0]!.send('hello')
    expect(Buffer.from(await msg).toString()).toBe('hello')
    const left = seen[0]!.left
    sub1.unsubscribe() // closes p1's node: p2 sees p1 leave, its source completes, and it unsubscribes too
    expect((await left).type).toBe('closed')
  })

  it('peers$ reports bad options and a failed listen on error (nothing thrown from subscribe); unsubscribing frees the port', async () => {
    const errors: string[] = []
    expect(() => peers$('', {}).subscribe({ error: (e) => errors.push(e.code) })).not.toThrow()
    const a = node({ id: 'a' })
    const { port } = await a.listen(0, '127.0.0.1')
    const failed = new Promise<void>((resolve) => peers$('api', { interface: '127.0.0.1', discovery: false, port }).subscribe({ error: (e) => (errors.push(e.code), resolve()) }))
    await failed
    expect(errors).toEqual(['ERR_INVALID_ARGUMENT', 'ERR_CONNECTION'])
    await a.close()
    // The cold node listens on the port now free, and gives it back when unsubscribed.
    const joined = new Promise<Peer>((resolve) => {
      const sub = peers$('api', { interface: '127.0.0.1', discovery: false, id: 'cold', port }).subscribe(resolve)
      const b = node({ id: 'b', seeds: [`127.0.0.1:${port}`] })
      void b.listen(0, '127.0.0.1')
      void firstValueFrom(b.peers$).then((peer) => (sub.unsubscribe(), peer.left))
    })
    const peer = await joined
    expect((await peer.left).type).toBe('closed')
    const again = node({ id: 'again' })
    await new Promise<void>((resolve, reject) => {
      const t0 = Date.now()
      const attempt = (): void =>
        void again.listen(port, '127.0.0.1').then(
          () => resolve(),
          (e) => (Date.now() - t0 > 5000 ? reject(e) : void setTimeout(attempt, 20)),
        )
      attempt()
    })
  })

  it('tls option: mutual TLS with certificates from one CA; a certificate from another CA is refused', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rxnet-mesh-tls-'))
    try {
      const ssl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' })
      for (const ca of ['ca', 'evil']) ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${ca}.key`, '-out', `${ca}.crt`, '-subj', `/CN=${ca}`, '-days', '1')
      for (const [n, ca] of [['a', 'ca'], ['b', 'ca'], ['c', 'evil']]) {
        ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${n}.key`, '-out', `${n}.csr`, '-subj', `/CN=${n}`)
        ssl('x509', '-req', '-in', `${n}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${n}.crt`, '-days', '1')
      }
      const tlsOf = (n: string, ca: string) => ({ key: readFileSync(join(dir, `${n}.key`)), cert: readFileSync(join(dir, `${n}.crt`)), ca: readFileSync(join(dir, `${ca}.crt`)) })
      const a = node({ id: 'ta', tls: tlsOf('a', 'ca') })
      const { port } = await a.listen(0, '127.0.0.1')
      const b = node({ id: 'tb', tls: tlsOf('b', 'ca'), seeds: [`127.0.0.1:${port}`] })
      const peerOfA = firstValueFrom(a.peers$)
      const peerOfB = firstValueFrom(b.peers$)
      await b.listen(0, '127.0.0.1')
      const [pa, pb] = await Promise.all([peerOfA, peerOfB])
      // c's certificate comes from another CA: refused on both sides, counted.
      const c = node({ id: 'tc', tls: tlsOf('c', 'ca'), seeds: [`127.0.0.1:${port}`] })
      const failed = firstValueFrom(c.events$.pipe(filter((e) => e.type === 'dial-failed')))
      await c.listen(0, '127.0.0.1')
      await failed
      expect(c.members.size).toBe(0)
      expect([...a.members.keys()]).toEqual(['tb'])
      expect(a.stats.refusedByCode.ERR_AUTH).toBeGreaterThanOrEqual(1)
      const msg = firstValueFrom(pa.source)
      pb.send('signed')
      expect(Buffer.from(await msg).toString()).toBe('signed')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('interface option', () => {
  it("'::1' keeps mDNS on loopback (over IPv4) and listens on ::1; a non-IPv4 NIC address is refused", async () => {
    const name = `v6-${process.pid}`
    const a = createMesh({ name, id: 'a', interface: '::1' })
    const b = createMesh({ name, id: 'b', interface: '::1' })
    meshes.push(a, b)
    const pa = firstValueFrom(a.peers$)
    const [addrA] = await Promise.all([a.listen(), b.listen()])
    expect(addrA.addresses).toEqual(['::1'])
    expect((await pa).address).toBe('::1')
    expect(() => createMesh({ name, interface: 'fe80::1' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
  })
})

describe('reconnect backoff', () => {
  it('doubles from reconnectDelay, is jittered ±50%, and never exceeds maxReconnectDelay (jitter included)', () => {
    const lowest = (attempt: number): number => backoff(attempt, 100, 2000, () => 0)
    const highest = (attempt: number): number => backoff(attempt, 100, 2000, () => 0.999999)
    expect([1, 2, 3, 4].map(lowest)).toEqual([100, 200, 400, 800])
    expect([1, 2, 3].map(highest)).toEqual([300, 600, 1200])
    for (const attempt of [4, 5, 10, 1000]) expect(highest(attempt)).toBe(2000) // was up to 3000
    expect(lowest(1000)).toBe(2000) // forever: attempts never run out, the delay stays capped
  })
})
