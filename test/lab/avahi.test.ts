// startAvahi: a private dbus + avahi-daemon per lab host; two hosts see each other's services, and
// a Node mDNS stack (bonjour-service, what the mesh uses) on a third host interoperates with them.
import { afterAll, beforeAll, expect, it } from 'vitest'
import { avahiUnavailableReason, startAvahi, type Avahi } from './avahi.js'
import { createLab, labUnavailableReason, type Lab } from './lab.js'
import { describeLab } from './vitest.js'

const avahiReason = labUnavailableReason() ? undefined : avahiUnavailableReason()
/** Test title, with the reason when avahi cannot run here. */
const t = (title: string) => (avahiReason ? `${title} [skipped: ${avahiReason}]` : title)

describeLab('lab: avahi in hosts', () => {
  let lab: Lab
  let avahi: Avahi[] = []

  beforeAll(async () => {
    if (avahiReason) return
    lab = await createLab({ hosts: 3 })
    avahi = await Promise.all(lab.hosts.slice(0, 2).map((h) => startAvahi(h))) // h3: Node's mDNS only
  }, 40_000)
  afterAll(async () => {
    await lab?.close()
  })

  it.skipIf(avahiReason)(t('a service published on h2 is browsed from h1 with its lab address'), async () => {
    const [a, b] = avahi
    expect(a.env.DBUS_SYSTEM_BUS_ADDRESS).not.toBe(b.env.DBUS_SYSTEM_BUS_ADDRESS)
    const pub = b.exec('avahi-publish', ['-s', 'peer-b', '_rxnet._tcp', '4000', 'id=b'])
    // Browse until resolved (mDNS announcements take a moment); bounded.
    const f = await browseResolved(a, 'peer-b', lab.hosts[1].address)
    expect(f[1]).toBe('eth0')
    expect(f[6]).toBe(`${b.hostName}.local`)
    expect(f[8]).toBe('4000')
    expect(f[9]).toBe('"id=b"')
    pub.kill()
    await pub.exited
  })

  /** Polls `avahi-browse -rpt` on `a` until a resolved line for `name` shows up (bounded). */
  async function browseResolved(a: Avahi, name: string, address: string): Promise<string[]> {
    const deadline = Date.now() + 15_000
    while (Date.now() < deadline) {
      const r = await a.run('avahi-browse', ['-rpt', '_rxnet._tcp'], { check: true })
      // (A Node publisher also announces its IPv6 link-local address: pick the IPv4 one.)
      const line = r.stdout.split('\n').find((l) => l.startsWith('=;') && l.includes(`;${name};`) && l.includes(`;${address};`))
      if (line) return line.split(';')
    }
    throw new Error(`avahi on ${a.host.name} did not resolve ${name}`)
  }

  it.skipIf(avahiReason)(t('bonjour-service on h3 and avahi on h1/h2 see each other'), async () => {
    const pub = avahi[1].exec('avahi-publish', ['-s', 'avahi-b', '_rxnet._tcp', '4000', 'id=b'])
    const node = lab.hosts[2].spawn('test/lab/fixtures/bonjour-publish.ts', ['node-c'])
    await node.waitFor('published', 15_000)
    const seen = await node.waitFor((e) => e.type === 'up' && e.name === 'avahi-b', 15_000)
    expect(seen).toMatchObject({ port: 4000, addresses: [lab.hosts[1].address], txt: { id: 'b' } })
    const f = await browseResolved(avahi[0], 'node-c', lab.hosts[2].address)
    expect(f[8]).toBe('4100')
    expect(f[9]).toBe('"id=node-c"')
    node.kill()
    pub.kill()
    await Promise.all([node.exited, pub.exited])
  })

  it.skipIf(avahiReason)(t('stop ends both daemons, idempotently'), async () => {
    const [a] = avahi
    await Promise.all([a.stop(), a.stop()])
    expect(a.daemon.exit).toBeDefined()
    expect(a.dbus.exit).toBeDefined()
    const r = await a.run('avahi-browse', ['-rpt', '_rxnet._tcp'])
    expect(r.code).not.toBe(0)
  })
})
