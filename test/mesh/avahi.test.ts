// Interop with the system mDNS stack: avahi (own dbus) in lab host h1, an rxnet node in h2.
import { afterAll, beforeAll, expect, it } from 'vitest'
import { avahiUnavailableReason, startAvahi, type Avahi } from '../lab/avahi.js'
import { createLab, labUnavailableReason, type Lab, type LabProcess } from '../lab/lab.js'
import { describeLab } from '../lab/vitest.js'

const avahiReason = labUnavailableReason() ? undefined : avahiUnavailableReason()
const title = (t: string): string => `${t}${avahiReason ? ` [skipped: ${avahiReason}]` : ''}`

describeLab('mesh interop with avahi', () => {
  let lab: Lab
  let avahi: Avahi
  let node: LabProcess

  beforeAll(async () => {
    if (avahiReason) return
    lab = await createLab({ hosts: 2 })
    avahi = await startAvahi(lab.hosts[0]!)
    node = lab.hosts[1]!.spawn('test/mesh/fixtures/labnode.ts', ['--id', 'rx1'], { MESH_OPTS: JSON.stringify({ name: 'interop' }) })
    await node.waitFor('ready', 20_000)
  }, 40_000)
  afterAll(async () => {
    await lab?.close()
  })

  it.skipIf(avahiReason)(title('avahi-browse lists our node as _rxnet._tcp with its TXT records'), async () => {
    const { port } = await node.waitFor('ready')
    const deadline = Date.now() + 15_000
    let line = ''
    while (!line && Date.now() < deadline) {
      const r = await avahi.run('avahi-browse', ['-rpt', '_rxnet._tcp'], { check: true })
      line = r.stdout.split('\n').find((l) => l.startsWith('=;') && l.includes('interop-rx1')) ?? ''
    }
    const f = line.split(';')
    expect(f[4]).toBe('_rxnet._tcp')
    expect(f[7]).toBe(lab.hosts[1]!.address)
    expect(f[8]).toBe(String(port))
    expect(f[9]).toContain('"mesh=interop"')
    expect(f[9]).toContain('"id=rx1"')
  }, 30_000)

  it.skipIf(avahiReason)(title('a service published with avahi-publish is discovered by our browser'), async () => {
    const pub = avahi.exec('avahi-publish', ['-s', 'from-avahi', '_rxnet._tcp', '4567', 'mesh=interop', 'id=av1'])
    const found = await node.waitFor((e) => e.type === 'discovered' && e.id === 'av1', 15_000)
    expect(found.port).toBe(4567)
    expect(found.addresses).toContain(lab.hosts[0]!.address)
    pub.kill()
    await pub.exited
  }, 30_000)
})
