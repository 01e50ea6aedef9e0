// Hub SIGKILL in the middle of full batch frames (protocol v2): an emitter process packs thousands
// of messages per tick (many full 16 KiB PUBS frames back to back), the hub is killed while they
// stream and a new hub takes the path; the subscriber gets every message exactly once, in order.
import fs from 'node:fs'
import { afterEach, describe, expect, it } from 'vitest'
import { connectBus, type BusMessage } from 'rxnet'
import { exited, fixture, hubProcess, spawnTs, tmpSocket, until } from './helpers.js'

const open: { close(): unknown }[] = []
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await Promise.resolve(o.close()).catch(() => {})
})

describe('a hub SIGKILLed mid-batch', () => {
  it('3000 messages a tick (full PUBS frames back to back), the hub killed mid-stream: every message once, in order, at a subscriber that comes back', async () => {
    const path = tmpSocket()
    open.push({ close: () => fs.rmSync(`${path}.roster`, { force: true }) })
    let hub = await hubProcess(path, (o) => open.push(o))
    const sub = connectBus(path, { minReconnectDelay: 50, maxReconnectDelay: 100 })
    open.push(sub)
    const got = new Map<string, number[]>()
    const s = sub.envelopes$<{ i: number }>('k.>').subscribe((m: BusMessage<{ i: number }>) => {
      const list = got.get(m.origin) ?? []
      got.set(m.origin, list)
      list.push(m.data.i)
    })
    open.push({ close: () => s.unsubscribe() })
    await sub.flush()
    const N = 30_000
    const emitter = await spawnTs(fixture('paced-emitter.ts'), [path, 'k.x', String(N), '3000', String((2 * N) / 3)])
    open.push({ close: () => emitter.kill('SIGKILL') })
    const id = /ready (\w+)/.exec(emitter.output())![1]!
    const count = (): number => got.get(id)?.length ?? 0
    await until(() => count() >= N / 6, 20_000, 'a sixth through')
    hub.kill('SIGKILL')
    await exited(hub)
    expect(count()).toBeLessThan(N)
    hub = await hubProcess(path, (o) => open.push(o))
    emitter.kill('SIGUSR2')
    expect(await exited(emitter)).toBe(0) // its flush() was answered: the new hub has everything
    await sub.flush({ timeout: 10_000 })
    const list = got.get(id)!
    const wrong = list.findIndex((v, k) => v !== k)
    expect(wrong, `first out of place at ${wrong}: ${list[wrong]}`).toBe(-1)
    expect(list.length).toBe(N)
    expect(sub.stats.lost).toBe(0)
    hub.kill('SIGTERM')
    expect(await exited(hub)).toBe(0)
  })
})
