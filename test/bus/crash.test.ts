import fs from 'node:fs'
import { afterEach, describe, expect, it } from 'vitest'
import { connectBus, type Bus, type BusMessage } from 'rxnet'
import { exited, fixture, spawnTs, tmpSocket, until, hubProcess } from './helpers.js'

const open: { close(): unknown }[] = []
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close()
})


describe('a hub crash (SIGKILL, then a new hub on the same path)', () => {
  it('loses nothing: 2 emitter processes x N, 2 subscribers, every message exactly once and in order per sender', async () => {
    const path = tmpSocket()
    open.push({ close: () => fs.rmSync(`${path}.roster`, { force: true }) })
    let hub = await hubProcess(path, (o) => open.push(o))
    // Subscribers come back slower than the emitters: what the emitters resend first must wait for them.
    const subs: Bus[] = [0, 1].map(() => connectBus(path, { minReconnectDelay: 300, maxReconnectDelay: 600 }))
    open.push(...subs)
    const got = subs.map(() => new Map<string, number[]>())
    subs.forEach((b, k) => {
      const s = b.envelopes$<{ i: number }>('c.>').subscribe((m: BusMessage<{ i: number }>) => {
        const list = got[k]!.get(m.origin) ?? []
        got[k]!.set(m.origin, list)
        list.push(m.data.i)
      })
      open.push({ close: () => s.unsubscribe() })
    })
    await Promise.all(subs.map((b) => b.flush()))
    const N = 20_000
    const emitters = await Promise.all([0, 1].map((k) => spawnTs(fixture('paced-emitter.ts'), [path, `c.${k}`, String(N), '100', String((3 * N) / 4)])))
    for (const e of emitters) open.push({ close: () => e.kill('SIGKILL') })
    const ids = emitters.map((e) => /ready (\w+)/.exec(e.output())![1]!)
    const count = (k: number, id: string): number => got[k]!.get(id)?.length ?? 0
    await until(() => ids.every((id) => count(0, id) >= N / 4 && count(1, id) >= N / 4), 20_000, 'a quarter through')
    hub.kill('SIGKILL')
    await exited(hub)
    expect(ids.every((id) => count(0, id) < N && count(1, id) < N)).toBe(true) // mid-stream (the emitters hold at 3N/4)
    hub = await hubProcess(path, (o) => open.push(o))
    for (const e of emitters) e.kill('SIGUSR2') // the last quarter, through the new hub
    // An emitter exits once its flush() is answered: the hub answers only when every copy of what
    // came before is out of its hands. A flush() by each subscriber then delivers all of it.
    expect(await Promise.all(emitters.map(exited))).toEqual([0, 0])
    await Promise.all(subs.map((b) => b.flush()))
    const all = [...Array(N).keys()]
    for (let k = 0; k < 2; k++) {
      for (const id of ids) expect(got[k]!.get(id)).toEqual(all) // in order, no duplicates, nothing lost
      expect(subs[k]!.stats.lost).toBe(0)
      expect(subs[k]!.stats.reconnects).toBe(1)
    }
    hub.kill('SIGTERM')
    expect(await exited(hub)).toBe(0)
    expect(fs.existsSync(`${path}.roster`)).toBe(false) // a clean stop leaves no roster
  })
})
