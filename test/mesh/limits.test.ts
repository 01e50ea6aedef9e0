// Bounds and honest accounting (issue 8 items 5, 7, 10, 11, 12): an mDNS flood, pending
// handshakes, counters final at the leave event, a silent TLS client, refused option mistakes.
import { randomBytes } from 'node:crypto'
import net from 'node:net'
import { firstValueFrom, filter } from 'rxjs'
import { afterEach, describe, expect, it } from 'vitest'
import { createMesh, peers$, type Mesh, type MeshEvent } from 'rxnet'
import { encodeHandshake, HandshakeDecoder } from '../../src/mesh/handshake.js'
import { mdnsResponse, sendMdns, type FakeService } from './fixtures/mdns.js'
import { isolated } from './helpers.js'

const meshes: Mesh<any, any>[] = []
const sockets: net.Socket[] = []
const servers: net.Server[] = []
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy()
  await Promise.all(meshes.splice(0).map((m) => m.close()))
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))))
})

function mesh(options: Parameters<typeof createMesh>[0] & object): Mesh {
  const m = createMesh({ interface: '127.0.0.1', discovery: false, ...options })
  meshes.push(m)
  return m
}

function nextEvent<T extends MeshEvent['type']>(m: Mesh, type: T, pred: (e: Extract<MeshEvent, { type: T }>) => boolean = () => true) {
  return firstValueFrom(m.events$.pipe(filter((e): e is Extract<MeshEvent, { type: T }> => e.type === type && pred(e as Extract<MeshEvent, { type: T }>))))
}

function silent(port: number): net.Socket {
  const s = net.connect(port, '127.0.0.1')
  s.on('error', () => {})
  sockets.push(s)
  return s
}

describe('option mistakes are refused with ERR_INVALID_ARGUMENT', () => {
  const bad = (o: Record<string, unknown>, message: RegExp): void => {
    expect(() => createMesh({ name: 'x', ...o } as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringMatching(message) }))
  }
  it('unknown keys (naming the closest valid one), overflow, failureTimeout, strings for numbers, off-loopback seeds', () => {
    bad({ interfce: '127.0.0.1' }, /unknown option "interfce" \(did you mean "interface"\?\)/)
    bad({ overflow: 'drop' }, /overflow must be one of .*got the string "drop"/)
    bad({ heartbeatInterval: 400, failureTimeout: 700 }, /failureTimeout \(700 ms\) must be at least two heartbeat intervals/)
    bad({ heartbeatInterval: '400' }, /heartbeatInterval must be a positive integer, got the string "400"/)
    bad({ discovery: 'no' }, /discovery must be true or false/)
    bad({ seeds: ['10.1.2.3:4000'] , interface: '127.0.0.1' }, /not on loopback/)
    expect(() => createMesh({ name: 'x', heartbeatInterval: 400, failureTimeout: 800, overflow: 'drop-oldest' })).not.toThrow()
  })

  it('peers$ refuses unknown keys on subscribe (its own port / address are known)', async () => {
    const err = await firstValueFrom(peers$('x', { interface: '127.0.0.1', prot: 0 } as never)).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringMatching(/unknown option "prot" \(did you mean "port"\?\)/) })
  })
})

describe.each([
  ['plain TCP', undefined],
  ['TLS-PSK', 'sesame'],
])('pending incoming handshakes over %s', (_label, secret) => {
  it('are capped: one more is refused with ERR_LIMIT and counted once; a slot freed admits a peer again', async () => {
    const a = mesh({ name: 'cap', id: 'a', secret, maxPendingHandshakes: 2, handshakeTimeout: 10_000 })
    const { port } = await a.listen(0, '127.0.0.1')
    const held = [silent(port), silent(port)]
    const refused = nextEvent(a, 'refused')
    const third = silent(port)
    const thirdClosed = new Promise((r) => third.once('close', r))
    expect((await refused).error.code).toBe('ERR_LIMIT')
    await thirdClosed
    expect(a.stats.refusedByCode).toEqual({ ERR_LIMIT: 1 }) // once: not again as a failed TLS handshake
    // Free the slots: a real peer (redialling with backoff) now gets in.
    for (const s of held) s.destroy()
    const b = mesh({ name: 'cap', id: 'b', secret, seeds: [`127.0.0.1:${port}`], maxReconnectDelay: 200 })
    const joined = nextEvent(a, 'join')
    await b.listen(0, '127.0.0.1')
    expect((await joined).peer.id).toBe('b')
  })
})

describe('a silent client is a timeout', () => {
  it.each([
    ['plain TCP', undefined],
    ['TLS-PSK', 'sesame'],
  ])('over %s: counted as ERR_TIMEOUT, not ERR_AUTH / ERR_HANDSHAKE', async (_label, secret) => {
    const a = mesh({ name: 'quiet', id: 'a', secret, handshakeTimeout: 200 })
    const { port } = await a.listen(0, '127.0.0.1')
    const refused = nextEvent(a, 'refused')
    silent(port)
    expect((await refused).error.code).toBe('ERR_TIMEOUT')
    expect(a.stats.refusedByCode).toEqual({ ERR_TIMEOUT: 1 })
  })
})

describe('counters are final when the event is emitted', () => {
  it('peer.stats.dropped and mesh.stats.dropped at the leave event already count what the link never sent', async () => {
    const a = mesh({ name: 'drops', id: 'a', heartbeatInterval: 100, failureTimeout: 300, highWaterMark: 64 * 1024, overflow: 'drop-newest' })
    const { port } = await a.listen(0, '127.0.0.1')
    // A peer that completes the handshake, then neither reads nor heartbeats: a's queue fills, then it times out.
    const s = silent(port)
    const welcome = new Promise<void>((resolve) => {
      const d = new HandshakeDecoder()
      s.on('data', (c) => d.push(c) !== null && (s.pause(), resolve()))
    })
    s.write(encodeHandshake({ kind: 'hello', name: 'drops', id: 'z', port: 0 }))
    const peer = (await nextEvent(a, 'join')).peer
    await welcome
    // Fill the kernel's socket buffers until the link's own queue stays full (bounded: 64 MiB at most).
    const chunk = new Uint8Array(1024)
    for (let round = 0; round < 1000; round++) {
      while (peer.writable) peer.send(chunk)
      await new Promise((r) => setImmediate(r))
      if (!peer.writable) break
    }
    for (let i = 0; i < 100; i++) peer.send(chunk) // over the budget: dropped by the policy at once
    const policyDrops = peer.stats.dropped
    expect(peer.stats.bufferedBytes).toBeGreaterThan(0)
    const leave = await new Promise<{ peer: number; mesh: number; code: string | undefined }>((resolve) =>
      a.events$.subscribe((e) => {
        if (e.type === 'leave') resolve({ peer: e.peer.stats.dropped, mesh: a.stats.dropped, code: e.reason.type === 'failed' ? e.reason.error.code : undefined })
      }),
    )
    expect(leave.code).toBe('ERR_PEER_TIMEOUT')
    const queued = leave.peer
    await a.close()
    expect(peer.stats.dropped).toBe(queued) // nothing counted after the event
    expect(leave.mesh).toBe(queued)
    expect(a.stats.dropped).toBe(queued)
    expect(queued).toBeGreaterThan(policyDrops) // and the queue the link never sent
  })
})

describe.skipIf(!isolated)('mDNS discovery is bounded', () => {
  it('a flood of 2,000 fake services: targets capped, dials bounded, a real peer joins and stays joined', async () => {
    const name = `flood-${randomBytes(3).toString('hex')}`
    // Fakes point at a port nobody listens on (fast refusal) and at a server that never answers.
    const closed = net.createServer()
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r))
    const closedPort = (closed.address() as net.AddressInfo).port
    await new Promise((r) => closed.close(r))
    const mute = net.createServer((s) => (sockets.push(s), s.on('error', () => {})))
    servers.push(mute)
    await new Promise<void>((r) => mute.listen(0, '127.0.0.1', r))
    const mutePort = (mute.address() as net.AddressInfo).port
    const limits = { maxTargets: 64, maxConcurrentDials: 4, maxDialsPerSecond: 40, handshakeTimeout: 1000, connectTimeout: 1000, maxReconnectDelay: 500 }
    const a = mesh({ name, id: 'a', discovery: true, ...limits })
    const events: MeshEvent[] = []
    a.events$.subscribe((e) => events.push(e))
    const t0 = Date.now()
    await a.listen(0, '127.0.0.1')
    const fakes: FakeService[] = Array.from({ length: 2000 }, (_, i) => ({
      instance: `fake-${i}`,
      port: i % 10 === 0 ? mutePort : closedPort,
      txt: { mesh: name, id: `fake-${i}` },
      address: '127.0.0.1',
    }))
    const flood = async (): Promise<void> => {
      for (let i = 0; i < fakes.length; i += 20) await sendMdns(mdnsResponse(fakes.slice(i, i + 20)))
    }
    await flood()
    const b = mesh({ name, id: 'b', discovery: true, ...limits })
    const joined = nextEvent(a, 'join', (e) => e.peer.id === 'b')
    await b.listen(0, '127.0.0.1')
    await joined
    // Keep flooding while the dials churn through the fakes: the real link must hold.
    const failuresBefore = a.stats.dialFailures
    for (let round = 0; round < 3; round++) await flood()
    await new Promise<void>((resolve) => {
      const sub = a.events$.subscribe((e) => e.type === 'dial-failed' && a.stats.dialFailures >= failuresBefore + 40 && (sub.unsubscribe(), resolve()))
    })
    const elapsed = (Date.now() - t0) / 1000
    expect(a.members.has('b')).toBe(true)
    expect(events.filter((e) => e.type === 'leave')).toHaveLength(0)
    for (const m of [a, b]) {
      expect(m.stats.targets).toBeLessThanOrEqual(limits.maxTargets + 1) // + the learned address of the other node
      expect(m.stats.peakDialsInFlight).toBeLessThanOrEqual(limits.maxConcurrentDials)
      expect(m.stats.targetsRefused).toBeGreaterThan(0)
      expect(m.stats.dialed).toBeLessThanOrEqual(limits.maxConcurrentDials + Math.ceil(limits.maxDialsPerSecond * elapsed))
    }
    expect(a.stats.targetsRefused).toBeGreaterThan(limits.maxTargets)
    // Goodbyes forget the fakes.
    const expired = a.stats.targetsExpired
    for (let i = 0; i < fakes.length; i += 20) await sendMdns(mdnsResponse(fakes.slice(i, i + 20).map((f) => ({ ...f, ttl: 0 }))))
    await new Promise<void>((resolve) => {
      const check = (): void => (a.stats.targets <= 2 ? resolve() : void setTimeout(check, 20))
      check()
    })
    expect(a.stats.targetsExpired).toBeGreaterThan(expired)
    expect(a.members.has('b')).toBe(true)
  }, 60_000)
})
