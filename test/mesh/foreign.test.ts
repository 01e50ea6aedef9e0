// A loopback-only mesh across two real (namespaced) hosts (issue 8 item 3): another host's
// unsolicited mDNS answers are ignored (never dialled), its TCP connections refused and counted.
import { afterAll, beforeAll, expect, it } from 'vitest'
import { createLab, type Lab, type LabProcess } from '../lab/lab.js'
import { describeLab } from '../lab/vitest.js'

const NODE = 'test/mesh/fixtures/labnode.ts'
const INTRUDER = 'test/mesh/fixtures/intruder.ts'

let seq = 0
async function stats(p: LabProcess): Promise<Record<string, any>> {
  const s = ++seq
  return p.request({ cmd: 'stats', seq: s }, (e) => e.type === 'stats' && e.seq === s, 10_000)
}

/** Asks for stats until `pred` holds (bounded: 100 tries). */
async function statsUntil(p: LabProcess, pred: (s: Record<string, any>) => boolean): Promise<Record<string, any>> {
  for (let i = 0; i < 100; i++) {
    const s = await stats(p)
    if (pred(s)) return s
    await p.next((e) => e.type === 'never', 50).catch(() => undefined) // a 50 ms pause on the child's clock
  }
  throw new Error('condition never held')
}

describeLab('loopback-only mesh next to another host', () => {
  let lab: Lab
  let a: LabProcess
  let local: LabProcess
  let intruder: LabProcess
  let meshPort: number
  let intruderPort: number
  const MESH = JSON.stringify({ name: 'lo-only', interface: '127.0.0.1' })

  beforeAll(async () => {
    lab = await createLab({ hosts: 2 })
    // Listening on every address (so host B can reach the port), discovery on loopback only.
    a = lab.hosts[0]!.spawn(NODE, ['--id', 'a', '--address', '0.0.0.0'], { MESH_OPTS: MESH })
    intruder = lab.hosts[1]!.spawn(INTRUDER)
    ;[meshPort, intruderPort] = await Promise.all([a.waitFor('ready', 20_000).then((e) => e.port as number), intruder.waitFor('serving').then((e) => e.port as number)])
  }, 40_000)
  afterAll(async () => {
    await lab?.close()
  })

  it('an unsolicited mDNS answer from host B naming the mesh is ignored and never dialled; a local node still joins', async () => {
    // (Sent while `a` is the only mDNS socket on host A: a unicast packet reaches one socket of the port.)
    // Spoofed until one is seen (the mDNS socket binds a moment after 'ready'; UDP gives no receipt).
    let s: Record<string, any> = {}
    for (let i = 0; i < 50 && !(s.stats?.ignoredAnswers >= 1); i++) {
      await intruder.request({ cmd: 'spoof', target: lab.hosts[0]!.address, name: 'lo-only', port: intruderPort }, 'spoofed')
      s = await stats(a)
    }
    expect(s.stats.ignoredAnswers).toBeGreaterThanOrEqual(1)
    expect(s.stats.dialed).toBe(0)
    expect(a.events.filter((e) => e.type === 'discovered')).toHaveLength(0)
    local = lab.hosts[0]!.spawn(NODE, ['--id', 'b'], { MESH_OPTS: MESH })
    await a.waitFor((e) => e.type === 'members' && JSON.stringify(e.ids) === '["b"]', 15_000)
    expect((await a.waitFor((e) => e.type === 'discovered' && e.id === 'b')).addresses).toEqual(['127.0.0.1'])
    expect(a.events.filter((e) => e.type === 'discovered' && String(e.id).startsWith('intruder'))).toHaveLength(0)
    expect(intruder.events.filter((e) => e.type === 'dialled')).toHaveLength(0)
  }, 30_000)

  it("a TCP connection from host B to the mesh port is refused at once and counted as ERR_FOREIGN_ADDRESS", async () => {
    const closed = await intruder.request({ cmd: 'connect', host: lab.hosts[0]!.address, port: meshPort }, 'connect-closed')
    expect(closed).toMatchObject({ connected: true, bytes: 0 })
    const s = await statsUntil(a, (x) => x.stats.refused >= 1)
    expect(s.stats.refusedByCode).toEqual({ ERR_FOREIGN_ADDRESS: 1 })
    expect(s.peers.map((p: { id: string }) => p.id)).toEqual(['b'])
    expect(intruder.events.filter((e) => e.type === 'dialled')).toHaveLength(0)
  }, 30_000)
})
