// Observers (rxnet peers, the dashboard) connect like peers but are never members: once welcomed
// they no longer count against maxPendingHandshakes (they have their own cap, MAX_OBSERVERS), so
// however many watch a node, peers still get in.
import { afterEach, describe, expect, it } from 'vitest'
import { filter, firstValueFrom, timeout } from 'rxjs'
import { createMesh, observeMesh, type Mesh } from 'rxnet'

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

const opts = { interface: '127.0.0.1', discovery: false, heartbeatInterval: 50 } as const

async function node(id: string, extra: { seeds?: string[]; maxPendingHandshakes?: number } = {}): Promise<{ mesh: Mesh; seed: string }> {
  const mesh = createMesh({ ...opts, name: 'obs-slots', id, ...extra })
  cleanups.push(() => mesh.close())
  const { port } = await mesh.listen(0, '127.0.0.1')
  return { mesh, seed: `127.0.0.1:${port}` }
}

describe('observers and handshake slots', () => {
  it('with maxPendingHandshakes 2 and two observers watching, a peer still joins', async () => {
    const a = await node('a', { maxPendingHandshakes: 2 })
    for (let i = 0; i < 2; i++) {
      const seen = observeMesh('obs-slots', { ...opts, seeds: [a.seed] })
      // The first summary from `a` says the observer was welcomed (and holds its connection).
      const first = new Promise<void>((resolve, reject) => {
        const sub = seen.pipe(filter((s) => s.node === 'a')).subscribe({ next: () => resolve(), error: reject })
        cleanups.push(() => sub.unsubscribe())
      })
      await first
    }
    const b = await node('b', { seeds: [a.seed] })
    await firstValueFrom(b.mesh.members$.pipe(filter((m) => m.has('a')), timeout(10_000)))
    expect(a.mesh.members.has('b')).toBe(true)
    expect(a.mesh.stats.refusedByCode['ERR_LIMIT'] ?? 0).toBe(0)
  }, 30_000)
})
