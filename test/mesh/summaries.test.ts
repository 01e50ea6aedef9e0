import net from 'node:net'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { ReplaySubject, filter, firstValueFrom, timeout } from 'rxjs'
import { createMesh, observeMesh, type Mesh, type MetricsSnapshot } from 'rxnet'
import { fakePeer as fake } from './fake-peer.js'

const cleanups: (() => Promise<unknown> | unknown)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

const opts = { interface: '127.0.0.1', discovery: false, heartbeatInterval: 50 } as const

const fakePeer = (name: string, seed: string, flags: number): ReturnType<typeof fake> => fake(name, seed, flags, cleanups)

async function node(name: string, id: string, seeds: string[] = []): Promise<{ mesh: Mesh; seed: string }> {
  const mesh = createMesh({ ...opts, name, id, seeds })
  cleanups.push(() => mesh.close())
  const { port } = await mesh.listen(0, '127.0.0.1')
  return { mesh, seed: `127.0.0.1:${port}` }
}

async function until(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !ok(); i++) await new Promise((r) => setTimeout(r, 20))
  if (!ok()) throw new Error(`timed out waiting for ${what}`)
}

describe('peer stats summaries', () => {
  it('an observer that reaches one node of a 3-node mesh sees all 3 nodes and all 3 links; members stay N-1', async () => {
    const a = await node('sum-all', 'a')
    const b = await node('sum-all', 'b', [a.seed])
    const c = await node('sum-all', 'c', [a.seed, b.seed])
    const nodes = [a.mesh, b.mesh, c.mesh]
    await Promise.all(nodes.map((m) => firstValueFrom(m.members$.pipe(filter((ms) => ms.size === 2), timeout(10_000)))))
    const seen = new ReplaySubject<MetricsSnapshot>()
    const sub = observeMesh('sum-all', { ...opts, seeds: [a.seed] }).subscribe(seen)
    cleanups.push(() => sub.unsubscribe())
    const latest = new Map<string, MetricsSnapshot>()
    await firstValueFrom(
      seen.pipe(
        filter((s) => {
          latest.set(s.node, s)
          return ['a', 'b', 'c'].every((id) => latest.get(id)?.links.filter((l) => l.state !== 'down' && l.rttSeconds !== undefined).length === 2)
        }),
        timeout(20_000),
      ),
    )
    expect(latest.get('a')?.via).toBeUndefined()
    expect(latest.get('b')?.via).toBe('a')
    expect(latest.get('c')?.via).toBe('a')
    const pairs = new Set([...latest.values()].flatMap((s) => s.links.map((l) => [l.from, l.to].sort().join('-'))))
    expect([...pairs].sort()).toEqual(['a-b', 'a-c', 'b-c'])
    for (const m of nodes) expect(m.members.size).toBe(2)
    expect(b.mesh.stats.summaries.sent).toBeGreaterThan(0)
    expect(a.mesh.stats.summaries.received).toBeGreaterThan(0)
  })

  it('rxnet peers seeded with one node lists the two it does not reach as reported, via that node', async () => {
    const a = await node('sum-cli', 'a')
    const b = await node('sum-cli', 'b', [a.seed])
    const c = await node('sum-cli', 'c', [a.seed, b.seed])
    await Promise.all([a, b, c].map(({ mesh }) => firstValueFrom(mesh.members$.pipe(filter((ms) => ms.size === 2), timeout(10_000)))))
    await until('a to hold both peers\u2019 summaries', () => a.mesh.stats.summaries.received >= 2)
    const out: string[] = []
    const write = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => (out.push(String(chunk)), true))
    cleanups.push(() => write.mockRestore())
    const { run } = await import('../../src/cli/peers.js')
    expect(await run(['sum-cli', '--seed', a.seed, '--once', '2500', '--json'])).toBe(0)
    write.mockRestore()
    const table = JSON.parse(out.join('').trim().split('\n').pop()!) as { members: { id: string; state: string; note: string | null }[] }
    expect(table.members.map((m) => [m.id, m.state, m.note])).toEqual([
      ['a', 'connected', null],
      ['b', 'reported', 'via a'],
      ['c', 'reported', 'via a'],
    ])
    for (const { mesh } of [a, b, c]) expect(mesh.members.size).toBe(2)
  })

  it('a garbage summary frame is counted and ignored: the link stays', async () => {
    const a = await node('sum-garbage', 'a')
    const fake = await fakePeer('sum-garbage', a.seed, 1)
    await until('the fake peer to join', () => a.mesh.members.has('fake-1'))
    fake.send(new Uint8Array(0))
    fake.send(Buffer.from([5, ...Buffer.from('{not json')]))
    fake.send(new Uint8Array(0))
    fake.send(Buffer.concat([Buffer.from([5]), Buffer.from(JSON.stringify({ v: 1, transport: 'mesh', node: 'someone-else', name: 'sum-garbage', at: 1, counters: {}, gauges: {}, links: [] }))]))
    await until('two garbage summaries', () => a.mesh.stats.summaries.garbage === 2)
    // It announced the capability: it gets a's summaries, and the link still carries them.
    const before = fake.controls.filter((t) => t === 5).length
    await until('a summary after the garbage', () => fake.controls.filter((t) => t === 5).length > before)
    expect(a.mesh.members.has('fake-1')).toBe(true)
    expect(a.mesh.stats.failures).toBe(0)
  })

  it('mixed: a peer that did not announce the capability never receives a summary frame', async () => {
    const a = await node('sum-mixed', 'a')
    const b = await node('sum-mixed', 'b', [a.seed])
    const old = await fakePeer('sum-mixed', a.seed, 0)
    await until('both peers to join', () => a.mesh.members.has('fake-0') && a.mesh.members.has('b'))
    const sent = a.mesh.stats.summaries.sent
    await until('a to send b three summaries', () => a.mesh.stats.summaries.sent >= sent + 3)
    expect(old.controls).toContain(1) // it did get pings: frames reached it
    expect(old.controls).not.toContain(5)
    expect(a.mesh.members.has('fake-0')).toBe(true)
    expect(b.mesh.stats.summaries.received).toBeGreaterThan(0)
  })
})
