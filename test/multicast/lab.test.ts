// multicast() across 3 namespaced hosts on a bridge (test/lab), sealed with a secret: delivery to
// every other socket exactly once and in order (two processes share the group on host 2),
// forgeries and replays from a raw socket dropped and counted, a partitioned host resumes with
// its gap counted and nothing duplicated.
import { afterAll, beforeAll, expect, it } from 'vitest'
import { createLab, type Lab, type LabProcess } from '../lab/lab.js'
import { describeLab } from '../lab/vitest.js'

const FIXTURE = 'test/multicast/fixtures/mcnode.ts'
const GROUP = '239.255.70.1'
const PORT = 47001
const SECRET = 'lab secret'

interface Report {
  received: Record<string, string[]>
  stats: Record<string, number>
}

describeLab('multicast across 3 lab hosts', () => {
  let lab: Lab
  let nodes: LabProcess[] // h1, h2, h2 (second process), h3
  let ids: string[]

  beforeAll(async () => {
    lab = await createLab({ hosts: 3 })
    const [h1, h2, h3] = lab.hosts
    const args = ['--group', GROUP, '--port', String(PORT), '--secret', SECRET]
    nodes = [h1!, h2!, h2!, h3!].map((h) => h.spawn(FIXTURE, args))
    const ready = await Promise.all(nodes.map((p) => p.waitFor('ready', 30_000)))
    ids = ready.map((e) => String(e.id))
  }, 60_000)

  afterAll(async () => {
    await lab?.close()
  })

  async function report(p: LabProcess): Promise<Report> {
    const seen = p.events.filter((e) => e.type === 'report').length
    p.send({ cmd: 'report' })
    const r = await p.waitFor((e) => e.type === 'report' && p.events.filter((x) => x.type === 'report').length > seen, 10_000)
    return r as unknown as Report
  }

  /** Polls a node's report until `pred` holds (deadline 10 s). */
  async function reportUntil(p: LabProcess, pred: (r: Report) => boolean): Promise<Report> {
    const deadline = Date.now() + 10_000
    for (;;) {
      const r = await report(p)
      if (pred(r)) return r
      if (Date.now() > deadline) throw new Error(`condition not met; last report: ${JSON.stringify(r.stats)}`)
      await new Promise((res) => setTimeout(res, 50))
    }
  }

  async function send(p: LabProcess, prefix: string, n: number, spaced = false): Promise<void> {
    p.send({ cmd: 'send', prefix, n, spaced })
    await p.waitFor((e) => e.type === 'sent' && e.n === n, 10_000)
  }

  it('a message sent on host 1 reaches every socket on hosts 2 and 3 exactly once, in order', async () => {
    await send(nodes[0]!, 'a', 1000)
    const want = Array.from({ length: 1000 }, (_, i) => `a-${i}`)
    for (const p of nodes.slice(1)) {
      const r = await reportUntil(p, (x) => (x.received[ids[0]!]?.length ?? 0) >= 1000)
      expect(r.received[ids[0]!]).toEqual(want)
      expect(r.stats).toMatchObject({ duplicates: 0, replayed: 0, bad: 0, gaps: 0 })
    }
    const self = await reportUntil(nodes[0]!, (x) => x.stats.echoes! >= 1)
    expect(self.received[ids[0]!]).toBeUndefined()
    expect(self.stats.datagramsOut).toBeGreaterThan(1)
    expect(self.stats.datagramsOut).toBeLessThan(20) // packed: ~7 bytes framed each, 1400-byte datagrams
  })

  it('the two processes on host 2 hear each other and the other hosts hear both', async () => {
    await send(nodes[1]!, 'b', 5)
    await send(nodes[2]!, 'c', 5)
    for (const [i, p] of nodes.entries()) {
      const r = await reportUntil(p, (x) => (i === 1 || x.received[ids[1]!]?.length === 5) && (i === 2 || x.received[ids[2]!]?.length === 5))
      if (i !== 1) expect(r.received[ids[1]!]).toEqual(['b-0', 'b-1', 'b-2', 'b-3', 'b-4'])
      if (i !== 2) expect(r.received[ids[2]!]).toEqual(['c-0', 'c-1', 'c-2', 'c-3', 'c-4'])
    }
  })

  it('datagrams forged without the key, or replayed from the wire, are dropped and counted everywhere', async () => {
    const before = await Promise.all(nodes.map(report))
    nodes[3]!.send({ cmd: 'forge' })
    const forged = Number((await nodes[3]!.waitFor('forged', 10_000)).n)
    nodes[3]!.send({ cmd: 'replay' })
    const replayed = Number((await nodes[3]!.waitFor('replayed', 10_000)).n)
    expect(forged).toBe(4)
    expect(replayed).toBeGreaterThan(0)
    for (const [i, p] of nodes.entries()) {
      const b = before[i]!.stats
      const r = await reportUntil(
        p,
        (x) => x.stats.bad! - b.bad! === forged && x.stats.replayed! + x.stats.echoes! - b.replayed! - b.echoes! === replayed,
      )
      expect(r.stats.messagesIn).toBe(b.messagesIn)
      expect(r.received).toEqual(before[i]!.received)
    }
  })

  it('a host cut off and reconnected resumes: the gap is counted, nothing is duplicated', async () => {
    const h3 = nodes[3]!
    const before = await report(h3)
    await lab.partition(lab.hosts[2]!)
    await send(nodes[0]!, 'p', 30, true) // one datagram each, all lost to host 3
    await lab.heal(lab.hosts[2]!)
    await send(nodes[0]!, 'q', 30, true)
    const r = await reportUntil(h3, (x) => x.received[ids[0]!]!.filter((m) => m.startsWith('q-')).length === 30)
    expect(r.received[ids[0]!]!.slice(before.received[ids[0]!]!.length)).toEqual(Array.from({ length: 30 }, (_, i) => `q-${i}`))
    expect(r.stats.gaps! - before.stats.gaps!).toBe(30)
    expect(r.stats.duplicates).toBe(0)
    // host 2 was never cut off: it has all 60, no gap
    const h2 = await reportUntil(nodes[1]!, (x) => x.received[ids[0]!]!.filter((m) => m.startsWith('q-')).length === 30)
    expect(h2.received[ids[0]!]!.filter((m) => /^[pq]-/.test(m)).length).toBe(60)
    expect(h2.stats.gaps).toBe(0)
  })
})
