// startAvahi: a private dbus + avahi-daemon per lab host; two hosts see each other's services.
import { afterAll, beforeAll, expect, it } from 'vitest'
import { avahiUnavailableReason, startAvahi, type Avahi } from './avahi.js'
import { createLab, labUnavailableReason, type Lab } from './lab.js'
import { describeLab } from './vitest.js'

const avahiReason = labUnavailableReason() ? undefined : avahiUnavailableReason()

describeLab('lab: avahi in hosts', () => {
  let lab: Lab
  let avahi: Avahi[] = []

  beforeAll(async () => {
    if (avahiReason) return
    lab = await createLab({ hosts: 2 })
    avahi = await Promise.all(lab.hosts.map((h) => startAvahi(h)))
  }, 40_000)
  afterAll(async () => {
    await lab?.close()
  })

  it.skipIf(avahiReason)(`a service published on h2 is browsed from h1 with its lab address${avahiReason ? ` [skipped: ${avahiReason}]` : ''}`, async () => {
    const [a, b] = avahi
    expect(a.env.DBUS_SYSTEM_BUS_ADDRESS).not.toBe(b.env.DBUS_SYSTEM_BUS_ADDRESS)
    const pub = b.exec('avahi-publish', ['-s', 'peer-b', '_rxnet._tcp', '4000', 'id=b'])
    // Browse until resolved (mDNS announcements take a moment); bounded.
    const deadline = Date.now() + 15_000
    let resolved = ''
    while (!resolved && Date.now() < deadline) {
      const r = await a.run('avahi-browse', ['-rpt', '_rxnet._tcp'], { check: true })
      resolved = r.stdout.split('\n').find((l) => l.startsWith('=;') && l.includes(';peer-b;')) ?? ''
    }
    const f = resolved.split(';')
    expect(f[1]).toBe('eth0')
    expect(f[6]).toBe(`${b.hostName}.local`)
    expect(f[7]).toBe(lab.hosts[1].address)
    expect(f[8]).toBe('4000')
    expect(f[9]).toBe('"id=b"')
    pub.kill()
    await pub.exited
  })

  it.skipIf(avahiReason)('stop ends both daemons, idempotently', async () => {
    const [a] = avahi
    await Promise.all([a.stop(), a.stop()])
    expect(a.daemon.exit).toBeDefined()
    expect(a.dbus.exit).toBeDefined()
    const r = await a.run('avahi-browse', ['-rpt', '_rxnet._tcp'])
    expect(r.code).not.toBe(0)
  })
})
