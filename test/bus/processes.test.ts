import fs from 'node:fs'
import { afterEach, describe, expect, it } from 'vitest'
import { connectBus, startHub, type Bus, type BusMessage } from 'rxnet'
import { runScript } from '../unit/run-script.js'
import { exited, fixture, spawnTs, tmpSocket, until, hubProcess } from './helpers.js'

const open: { close(): unknown }[] = []
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close()
})
function bus(path: string): Bus {
  const b = connectBus(path, { minReconnectDelay: 10, maxReconnectDelay: 50 })
  open.push(b)
  return b
}

describe('bus across real processes', () => {
  it('messages from several emitter processes arrive exactly once, in order per sender', async () => {
    const hub = await startHub({ path: tmpSocket() })
    open.push(hub)
    const r = bus(hub.path)
    const got: BusMessage<{ i: number; from: number }>[] = []
    const sub = r.envelopes$<{ i: number; from: number }>('p.>').subscribe((m) => got.push(m))
    open.push({ close: () => sub.unsubscribe() })
    await r.flush()
    const N = 1000
    const children = await Promise.all([0, 1, 2].map((k) => runScript(fixture('emitter-process.ts'), [hub.path, `p.${k}`, String(N)])))
    expect(children.map((c) => c.code)).toEqual([0, 0, 0])
    await until(() => got.length === 3 * N, 15_000, 'all messages')
    const bySender = new Map<number, number[]>()
    for (const m of got) bySender.set(m.data.from, [...(bySender.get(m.data.from) ?? []), m.data.i])
    expect(bySender.size).toBe(3)
    for (const seq of bySender.values()) expect(seq).toEqual([...Array(N).keys()])
    expect(r.stats.duplicates).toBe(0)
  })

  it('a SIGKILLed hub is restarted on its stale socket; clients reconnect, re-register, and catch up exactly once in order', async () => {
    const path = tmpSocket()
    // The sender reaches the hub through a symlink that is removed while the hub is down and
    // restored once the receiver has re-registered, so the catch-up has someone to go to.
    const link = tmpSocket()
    fs.symlinkSync(path, link)
    open.push({ close: () => fs.rmSync(link, { force: true }) })
    let hub = await hubProcess(path, (o) => open.push(o))
    const r = bus(path)
    const s = bus(link)
    const got: number[] = []
    const sub = r.messages$<number>('r.>').subscribe((i) => got.push(i))
    open.push({ close: () => sub.unsubscribe() })
    await r.flush()
    let i = 0
    for (; i < 100; i++) s.emit('r.a', i)
    await s.flush()
    await until(() => got.length === 100)
    for (; i < 150; i++) s.emit(i % 2 ? 'r.a' : 'r.b', i) // in flight when the hub dies
    hub.kill('SIGKILL')
    await exited(hub)
    fs.rmSync(link)
    await until(() => !s.connected && !r.connected, 5000, 'both disconnected')
    for (; i < 250; i++) s.emit('r.b', i) // emitted while no hub is up
    expect(s.stats.buffered).toBeGreaterThanOrEqual(100)
    expect(fs.statSync(path).isSocket()).toBe(true) // the dead hub's stale socket
    hub = await hubProcess(path, (o) => open.push(o))
    await r.flush() // reconnected and re-registered 'r.>'
    fs.symlinkSync(path, link)
    await s.flush()
    await until(() => got.length >= 250, 10_000, 'catch-up')
    expect(got).toEqual([...Array(250).keys()])
    expect(s.stats.buffered).toBe(0)
    expect(s.stats.reconnects).toBe(1)
    expect(r.stats.reconnects).toBe(1)
    hub.kill('SIGTERM')
    expect(await exited(hub)).toBe(0)
  })
})
