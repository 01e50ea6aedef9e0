import { afterEach, describe, expect, it } from 'vitest'
import { ReplaySubject, filter, firstValueFrom, timeout, type Subscription } from 'rxjs'
import { createMesh, observeMesh, type Mesh, type MetricsSnapshot } from 'rxnet'

const cleanups: (() => Promise<unknown> | unknown)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

/** Three meshes on loopback, all linked (b and c seed a; c seeds b). */
async function trio(name: string, secret?: string): Promise<{ nodes: Mesh[]; seeds: string[] }> {
  const opts = { name, interface: '127.0.0.1', discovery: false, heartbeatInterval: 50, secret }
  const a = createMesh({ ...opts, id: 'a' })
  cleanups.push(() => a.close())
  const pa = (await a.listen(0, '127.0.0.1')).port
  const b = createMesh({ ...opts, id: 'b', seeds: [`127.0.0.1:${pa}`] })
  cleanups.push(() => b.close())
  const pb = (await b.listen(0, '127.0.0.1')).port
  const c = createMesh({ ...opts, id: 'c', seeds: [`127.0.0.1:${pa}`, `127.0.0.1:${pb}`] })
  cleanups.push(() => c.close())
  const pc = (await c.listen(0, '127.0.0.1')).port
  const nodes = [a, b, c]
  await Promise.all(nodes.map((m) => firstValueFrom(m.members$.pipe(filter((ms) => ms.size === 2), timeout(10_000)))))
  return { nodes, seeds: [pa, pb, pc].map((p) => `127.0.0.1:${p}`) }
}

function watch(name: string, seeds: string[], secret?: string): { seen: ReplaySubject<MetricsSnapshot>; sub: Subscription } {
  const seen = new ReplaySubject<MetricsSnapshot>()
  const sub = observeMesh(name, { interface: '127.0.0.1', discovery: false, seeds, secret, heartbeatInterval: 50 }).subscribe(seen)
  cleanups.push(() => sub.unsubscribe())
  return { seen, sub }
}

describe('observeMesh', () => {
  it('sees every node and every link between them, with RTTs; the nodes keep N-1 members', async () => {
    const { nodes, seeds } = await trio('observe-all')
    const { seen } = watch('observe-all', seeds)
    const latest = new Map<string, MetricsSnapshot>()
    await firstValueFrom(
      seen.pipe(
        filter((s) => {
          latest.set(s.node, s)
          return ['a', 'b', 'c'].every((id) => latest.get(id)?.links.filter((l) => l.rttSeconds !== undefined).length === 2)
        }),
        timeout(15_000),
      ),
    )
    for (const [id, s] of latest) {
      expect(s).toMatchObject({ transport: 'mesh', node: id, name: 'observe-all', state: 'up', gauges: { members: 2 } })
      expect(s.links.map((l) => l.to).sort()).toEqual(['a', 'b', 'c'].filter((x) => x !== id))
    }
    // The observer is connected to each node, and none counts it as a member.
    for (const m of nodes) {
      expect(m.members.size).toBe(2)
      expect([...m.members.keys()].some((k) => k.startsWith('observer-'))).toBe(false)
    }
  })

  it('a node that goes away is reported down by the observer and by its peers', async () => {
    const { nodes, seeds } = await trio('observe-down')
    const { seen } = watch('observe-down', seeds)
    await firstValueFrom(seen.pipe(filter((s) => s.node === 'c'), timeout(15_000)))
    const down = firstValueFrom(seen.pipe(filter((s) => s.node === 'c' && s.state === 'down'), timeout(15_000)))
    const peerSees = firstValueFrom(seen.pipe(filter((s) => s.node === 'a' && s.links.some((l) => l.to === 'c' && l.state === 'down')), timeout(15_000)))
    await nodes[2]!.close()
    expect((await down).links.every((l) => l.state === 'down')).toBe(true)
    await peerSees
  })

  it('with a wrong secret it sees nothing', async () => {
    const { nodes, seeds } = await trio('observe-secret', 'right')
    const wrong = watch('observe-secret', seeds, 'wrong')
    const right = watch('observe-secret', seeds, 'right')
    await firstValueFrom(right.seen.pipe(filter((s) => s.node === 'a'), timeout(15_000)))
    await firstValueFrom(right.seen.pipe(filter((s) => s.node === 'b'), timeout(15_000)))
    // By now the wrong observer had as long to dial every node: the TLS-PSK handshakes failed.
    await firstValueFrom(nodes[0]!.events$.pipe(filter((e) => e.type === 'refused' && e.error.code === 'ERR_AUTH'), timeout(15_000)))
    let any = false
    wrong.seen.subscribe(() => (any = true))
    expect(any).toBe(false)
  })
})

describe('rxnet peers', () => {
  it('lists the nodes without becoming a member of theirs', async () => {
    const { nodes, seeds } = await trio('observe-peers-cli')
    const joined: string[] = []
    for (const m of nodes) m.events$.subscribe((e) => e.type === 'join' && joined.push(`${m.id}<-${e.peer.id}`))
    const { run } = await import('../../src/cli/peers.js')
    const lines: string[] = []
    const log = console.log
    console.log = (...a: unknown[]) => void lines.push(a.join(' '))
    try {
      expect(await run(['observe-peers-cli', '--seed', seeds[0]!, '--seed', seeds[1]!, '--seed', seeds[2]!, '--once', '1000'])).toBe(0)
    } finally {
      console.log = log
    }
    expect(lines.join('\n')).toMatch(/3 connected/)
    expect(joined).toEqual([])
    for (const m of nodes) expect(m.members.size).toBe(2)
  })
})
