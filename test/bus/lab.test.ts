import { afterAll, beforeAll, expect, it } from 'vitest'
import { createLab, labTempDir, type Lab, type LabProcess } from '../lab/lab.js'
import { describeLab } from '../lab/vitest.js'

type Origin = { count: number; duplicates: number; outOfOrder: number; first: number; last: number }
type Report = { a: Record<string, Origin>; b: Record<string, Origin>; hub: Record<string, number>; bridge: Record<string, number> }

describeLab('bus across 3 lab hosts (hub + clients on each, bridged over sealed multicast)', () => {
  let lab: Lab
  let nodes: LabProcess[]
  beforeAll(async () => {
    lab = await createLab({ hosts: 3 })
    // Hub sockets go in the lab's temp dir: lab.close() kills the nodes and removes it with them.
    nodes = lab.hosts.map((h) => h.spawn('test/bus/fixtures/lab-node.ts', [], { TMPDIR: labTempDir(lab) }))
    await Promise.all(nodes.map((n) => n.waitFor('ready', 20_000)))
  }, 60_000)
  afterAll(() => lab?.close())

  /** Asks for a report and waits for that one (waitFor replays earlier events: skip the ones before). */
  async function report(n: LabProcess): Promise<Report> {
    const before = n.events.filter((e) => e.type === 'report').length
    n.send({ cmd: 'report' })
    let k = 0
    return (await n.waitFor((e) => e.type === 'report' && ++k > before, 10_000)) as unknown as Report
  }
  async function until(n: LabProcess, cond: (r: Report) => boolean, what: string): Promise<Report> {
    const end = Date.now() + 15_000
    for (;;) {
      const r = await report(n)
      if (cond(r)) return r
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(r)}`)
      await new Promise((res) => setTimeout(res, 100))
    }
  }

  it('a message emitted on host 1 reaches the subscribers on hosts 2 and 3 exactly once, in order', async () => {
    const [n1, n2, n3] = nodes as [LabProcess, LabProcess, LabProcess]
    n1.send({ cmd: 'emit', from: 0, to: 1000 })
    await n1.waitFor('emitted', 15_000)
    const full = (r: Report): boolean => r.a.h1?.count === 1000 && r.b.h1?.count === 1000
    for (const n of [n2, n3]) {
      const r = await until(n, full, 'host 1 messages')
      for (const c of [r.a.h1!, r.b.h1!]) expect(c).toMatchObject({ count: 1000, duplicates: 0, outOfOrder: 0, first: 0, last: 999 })
      expect(r.hub.bridgedIn).toBe(1000)
      expect(r.hub.bridgedOut).toBe(0)
    }
    const r1 = await until(n1, (r) => r.b.h1?.count === 1000, 'local delivery')
    expect(r1.a.h1).toBeUndefined() // the emitter does not get its own messages
    expect(r1.b.h1).toMatchObject({ count: 1000, duplicates: 0, outOfOrder: 0 })
    expect(r1.hub.bridgedOut).toBe(1000)
  }, 60_000)

  it('a host cut off and reconnected resumes: what it missed shows as gaps, nothing is duplicated', async () => {
    const [n1, n2, n3] = nodes as [LabProcess, LabProcess, LabProcess]
    const h3 = lab.hosts[2]!
    await lab.partition(h3)
    n1.send({ cmd: 'emit', from: 1000, to: 1500 }) // host 3 is cut off: these never reach it
    await n1.waitFor((e) => e.type === 'emitted' && e.to === 1500, 15_000)
    await until(n2, (r) => r.b.h1?.count === 1500, 'host 2 during the partition')
    await lab.heal(h3)
    n1.send({ cmd: 'emit', from: 1500, to: 2000 })
    await n1.waitFor((e) => e.type === 'emitted' && e.to === 2000, 15_000)
    const r2 = await until(n2, (r) => r.a.h1?.count === 2000 && r.b.h1?.count === 2000, 'host 2 complete')
    expect(r2.b.h1).toMatchObject({ duplicates: 0, outOfOrder: 0, last: 1999 })
    const r3 = await until(n3, (r) => r.b.h1?.last === 1999 && r.a.h1?.last === 1999, 'host 3 resumed')
    for (const c of [r3.a.h1!, r3.b.h1!]) {
      expect(c.duplicates).toBe(0)
      expect(c.outOfOrder).toBe(0)
      expect(c.count).toBeGreaterThanOrEqual(1500) // everything before and after the cut
      expect(c.count).toBeLessThan(2000) // the cut-off share was lost, not replayed
    }
    expect(r3.bridge.gaps).toBeGreaterThan(0) // counted by the multicast channel
  }, 60_000)
})
