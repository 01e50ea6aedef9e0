import { randomBytes } from 'node:crypto'
import { afterEach, describe, expect, it } from 'vitest'
import { Child } from './helpers.js'

const children: Child[] = []
afterEach(async () => {
  await Promise.all(children.splice(0).map((c) => c.close()))
})

async function until(cond: () => Promise<boolean>, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await new Promise((r) => setTimeout(r, 50))
  }
}

function spawnNodes(n: number, extra: Record<string, unknown> = {}): { nodes: Child[]; ids: string[]; name: string } {
  const name = `t-${randomBytes(4).toString('hex')}`
  const ids = Array.from({ length: n }, (_, i) => `node${i}-${randomBytes(2).toString('hex')}`)
  const nodes = ids.map((id) => new Child({ name, id, interface: '127.0.0.1', ...extra }))
  children.push(...nodes)
  return { nodes, ids, name }
}

describe('mesh on loopback, one process per node', () => {
  it('forms a full mesh with exactly one connection per pair and delivers 100k messages per link in order', async () => {
    const { nodes, ids } = spawnNodes(3)
    await Promise.all(nodes.map((c, i) => c.waitMembers(ids.filter((_, j) => j !== i))))

    // Exactly one link per pair: each pair is outbound on exactly one side, and each process holds N-1 sockets.
    const stats = await Promise.all(nodes.map((c) => c.stats()))
    for (let a = 0; a < ids.length; a++) {
      expect(stats[a]!.sockets).toBe(ids.length - 1)
      for (let b = a + 1; b < ids.length; b++) {
        const ab = stats[a]!.peers.find((p: { id: string }) => p.id === ids[b]).outbound
        const ba = stats[b]!.peers.find((p: { id: string }) => p.id === ids[a]).outbound
        expect(ab !== ba).toBe(true)
      }
    }

    const count = 100_000
    const done = nodes.map((c) => c.wait((m) => m.type === 'recv-done', 60_000, 'recv-done'))
    for (const c of nodes) c.send({ cmd: 'flood', count, size: 16 })
    const results = await Promise.all(done)
    for (const r of results) {
      const received = r.received as Record<string, { next: number; errors: number }>
      expect(Object.keys(received).length).toBe(ids.length - 1)
      for (const v of Object.values(received)) expect(v).toEqual({ next: count, errors: 0 })
    }
    const after = await Promise.all(nodes.map((c) => c.stats()))
    for (const s of after) expect(s.stats.dropped).toBe(0)
  }, 90_000)

  it('drops a SIGKILLed node within the failure timeout and re-forms when a node with its id returns', async () => {
    const { nodes, ids, name } = spawnNodes(3)
    await Promise.all(nodes.map((c, i) => c.waitMembers(ids.filter((_, j) => j !== i))))
    const t0 = Date.now()
    const left = [nodes[0]!, nodes[1]!].map((c, i) => c.waitMembers(ids.filter((_, j) => j !== i && j !== 2), 5000))
    nodes[2]!.proc.kill('SIGKILL')
    await Promise.all(left)
    expect(Date.now() - t0).toBeLessThan(2500)

    const back = new Child({ name, id: ids[2], interface: '127.0.0.1' })
    children.push(back)
    await Promise.all([...nodes.slice(0, 2), back].map((c, i) => c.waitMembers(ids.filter((_, j) => j !== i))))
  }, 60_000)

  it('connects through seeds without mDNS, one peer per node found by several sources', async () => {
    const name = `t-${randomBytes(4).toString('hex')}`
    const a = new Child({ name, id: 'a', interface: '127.0.0.1', discovery: false })
    children.push(a)
    const { port } = (await a.wait((m) => m.type === 'listening')) as { port: number }
    const b = new Child({ name, id: 'b', interface: '127.0.0.1', discovery: false, seeds: [`127.0.0.1:${port}`, `localhost:${port}`] })
    const c = new Child({ name, id: 'c', interface: '127.0.0.1', seeds: [`127.0.0.1:${port}`] })
    children.push(b, c)
    await Promise.all([a.waitMembers(['b', 'c']), b.waitMembers(['a']), c.waitMembers(['a'])])
    // b's second seed reaches a node it already has: refused as a duplicate, and the extra socket goes away.
    await until(async () => (await a.stats()).sockets === 2 && (await b.stats()).sockets === 1)
    expect((await b.stats()).peers.map((p: { id: string }) => p.id)).toEqual(['a'])
  }, 30_000)
})
