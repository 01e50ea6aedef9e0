import { spawn } from 'node:child_process'
import { randomInt } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { connectBus, startHub, type Bus, type BusMessage, type Hub } from 'rxnet'
import { exited, fixture, tmpSocket, until } from './helpers.js'

const root = process.getuid?.() === 0

/** Runs fixtures/forge-bridge.ts as `nobody` (another local user), to completion. */
async function forgeAsNobody(args: (string | number)[]): Promise<void> {
  const cmd = ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, '--import', 'tsx', fixture('forge-bridge.ts'), ...args.map(String)]
  const child = spawn('setpriv', cmd, { stdio: ['ignore', 'ignore', 'pipe'], cwd: fileURLToPath(new URL('../..', import.meta.url)) })
  let err = ''
  child.stderr!.on('data', (d) => (err += d))
  const code = await exited(child)
  if (code !== 0) throw new Error(`forger exited with ${code}: ${err}`)
}

const open: { close(): unknown }[] = []
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close()
})

describe('hubs bridged over multicast (one host, loopback)', () => {
  it('a message emitted on one hub reaches subscribers on every hub exactly once, in order; nothing loops', async () => {
    const multicast = { group: `239.255.${randomInt(1, 254)}.${randomInt(1, 254)}`, port: randomInt(20_000, 60_000), interface: '127.0.0.1', secret: 'bus-test' }
    const hubs: Hub[] = []
    for (let k = 0; k < 3; k++) {
      const h = await startHub({ path: tmpSocket(), multicast })
      open.push(h)
      hubs.push(h)
    }
    const clients: Bus[] = hubs.map((h) => {
      const b = connectBus(h.path)
      open.push(b)
      return b
    })
    const got: number[][] = [[], [], []]
    clients.forEach((b, k) => {
      const sub = b.messages$<number>('b.>').subscribe((i) => got[k]!.push(i))
      open.push({ close: () => sub.unsubscribe() })
    })
    // a second client on hub 0 sees the local path only once too
    const local = connectBus(hubs[0]!.path)
    open.push(local)
    const gotLocal: number[] = []
    const sub = local.messages$<number>('b.*').subscribe((i) => gotLocal.push(i))
    open.push({ close: () => sub.unsubscribe() })
    await Promise.all([...clients, local].map((b) => b.flush()))

    const N = 500
    for (let i = 0; i < N; i++) clients[0]!.emit('b.x', i)
    await clients[0]!.flush()
    await until(() => got[1]!.length >= N && got[2]!.length >= N && gotLocal.length >= N, 10_000, 'bridged delivery')
    await new Promise((r) => setTimeout(r, 100)) // a late duplicate would show up here
    expect(got[0]).toEqual([]) // no self-echo, not even via the group
    expect(got[1]).toEqual([...Array(N).keys()])
    expect(got[2]).toEqual([...Array(N).keys()])
    expect(gotLocal).toEqual([...Array(N).keys()])
    expect(hubs[0]!.stats.bridgedOut).toBe(N)
    expect(hubs[0]!.stats.bridgedIn).toBe(0) // its own datagrams are dropped as echoes
    expect(hubs[1]!.stats.bridgedIn).toBe(N)
    expect(hubs[1]!.stats.bridgedOut).toBe(0) // only locally-originated messages go to the group
    expect(hubs[2]!.bridge!.stats.gaps).toBe(0)
  })

  it("the bridge's send buffer drops the oldest by default, even with an explicit overflow: undefined, instead of failing the bridge", async () => {
    const multicast = { group: `239.255.${randomInt(1, 254)}.${randomInt(1, 254)}`, port: randomInt(20_000, 60_000), interface: '127.0.0.1', highWaterMark: 64, overflow: undefined }
    const hub = await startHub({ path: tmpSocket(), multicast })
    open.push(hub)
    const events: string[] = []
    const sub = hub.events$.subscribe((e) => events.push(e.type))
    open.push({ close: () => sub.unsubscribe() })
    const bus = connectBus(hub.path)
    open.push(bus)
    for (let i = 0; i < 50; i++) bus.emit('b.x', i) // ~2 KiB reach the hub in one read: over the 64 B budget
    await bus.flush()
    await until(() => hub.bridge!.stats.datagramsOut > 0, 5000, 'bridge send')
    expect(hub.bridge!.stats.dropped).toBeGreaterThan(0)
    expect(events).not.toContain('bridge-error')
    hub.bridge!.send(new Uint8Array([1])) // still open
    expect(hub.bridge!.stats.overflows).toBeGreaterThan(0)
  })

  it.skipIf(!root)('unsealed: a forged MSG from another user claiming a client (seq + 2^31) loses no real message; the hub drops it for local origins, the receiver refuses the jump for remote ones (needs root for setpriv)', async () => {
    const multicast = { group: `239.255.${randomInt(1, 254)}.${randomInt(1, 254)}`, port: randomInt(20_000, 60_000), interface: '127.0.0.1' }
    const here = await startHub({ path: tmpSocket(), multicast })
    const there = await startHub({ path: tmpSocket(), multicast })
    open.push(here, there)
    const local = connectBus(here.path) // a client of this hub
    const remote = connectBus(there.path) // a client of the other hub
    const sub = connectBus(here.path)
    open.push(local, remote, sub)
    const got = new Map<string, number[]>([[local.id, []], [remote.id, []]])
    const s = sub.envelopes$<number | string>('f.>').subscribe((m: BusMessage<number | string>) => got.get(m.origin)?.push(m.data as number))
    open.push({ close: () => s.unsubscribe() })
    await sub.flush()
    const N = 30
    for (let i = 0; i < N; i++) {
      local.emit('f.l', i)
      remote.emit('f.r', i)
    }
    await Promise.all([local.flush(), remote.flush()])
    await until(() => got.get(local.id)!.length === N && got.get(remote.id)!.length === N, 10_000, 'first half')
    // Far ahead of each sender's seq (N): exactly 2^31, and just under it (that one would move a window).
    const far = [N + 2 ** 31, N + 2 ** 31 - 64]
    await forgeAsNobody([multicast.group, multicast.port, local.id, 'f.l', ...far])
    await forgeAsNobody([multicast.group, multicast.port, remote.id, 'f.r', ...far])
    await until(() => here.stats.bridgedIn + here.stats.bridgeSpoofed === N + 4, 10_000, 'all four forgeries at the hub')
    for (let i = N; i < 2 * N; i++) {
      local.emit('f.l', i)
      remote.emit('f.r', i)
    }
    await Promise.all([local.flush(), remote.flush()])
    await until(() => here.stats.bridgedIn + here.stats.bridgeSpoofed === 2 * N + 4, 10_000, 'second half at the hub')
    await sub.flush()
    const all = [...Array(2 * N).keys()]
    expect(got.get(local.id)).toEqual(all)
    expect(got.get(remote.id)).toEqual(all)
    expect(here.stats.bridgeSpoofed).toBe(2) // the forgeries claiming its own client
    expect(sub.stats.implausible).toBe(2) // both, for the remote sender (more than 2^24 from its latest)
    expect(sub.stats.duplicates).toBe(0)
  })
})

