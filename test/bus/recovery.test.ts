import fs from 'node:fs'
import net from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { connectBus, socketChannel, startHub, type BusEvent, type HubEvent } from 'rxnet'
import { BUS_PROTOCOL_VERSION, decodeFrame, encodeHello, type HubFrame } from '../../src/bus/protocol.js'
import { writeRoster } from '../../src/bus/recovery.js'
import { tmpSocket, until } from './helpers.js'

const open: { close(): unknown }[] = []
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close()
})

/** What a crashed hub on `path` would have left: a roster listing client `id` watching `pattern`. */
function crashedHubRoster(path: string, id: string, pattern: string): void {
  writeRoster(`${path}.roster`, [{ id, echo: false, patterns: [pattern] }])
  open.push({ close: () => fs.rmSync(`${path}.roster`, { force: true }) })
}

/** Connects as client `id` with the raw protocol; collects the decoded frames it gets. */
function rawClient(path: string, id: string): HubFrame[] {
  const ch = socketChannel(net.connect(path))
  const frames: HubFrame[] = []
  ch.source.subscribe({ next: (b) => frames.push(decodeFrame(b)), error: () => {} })
  ch.send(encodeHello(id, false))
  open.push({ close: () => ch.close() })
  return frames
}

describe('hub recovery after a crash (roster left by the previous hub)', () => {
  it('a client that is not back within recoveryTimeout: its messages are given up, counted exactly, and it is told when it comes back', async () => {
    const path = tmpSocket()
    crashedHubRoster(path, 'gone', 'g.>')
    const hub = await startHub({ path, recoveryTimeout: 200 })
    open.push(hub)
    expect(hub.stats.recovering).toBe(1)
    const events: HubEvent[] = []
    const sub = hub.events$.subscribe((e) => events.push(e))
    open.push({ close: () => sub.unsubscribe() })
    const bus = connectBus(path)
    open.push(bus)
    for (let i = 0; i < 5; i++) bus.emit('g.a', i)
    bus.emit('other', 0) // not for it
    await bus.flush() // answered once the ghost is given up (until then the sender keeps its outbox)
    expect(hub.stats.recovering).toBe(0)
    expect(hub.stats.lost).toBe(5)
    expect(events.filter((e) => e.type === 'lost')).toEqual([{ type: 'lost', client: 'gone', origin: bus.id, count: 5 }])
    const frames = rawClient(path, 'gone')
    await until(() => frames.some((f) => f.type === 'lost'), 5000, 'LOST frame')
    expect(frames.filter((f) => f.type !== 'ack')).toEqual([{ type: 'welcome', version: BUS_PROTOCOL_VERSION, hubId: hub.id }, { type: 'lost', count: 5, origin: bus.id }])
  })

  it('a client back in time gets what was held for it, and is told (stats.lost, a lost event) what did not fit in its clientHighWaterMark', async () => {
    const path = tmpSocket()
    // The returning client: it keeps its id across reconnects, and comes back after the new hub is up.
    const back = connectBus(path, { minReconnectDelay: 1000, maxReconnectDelay: 1000 })
    open.push(back)
    const got: { i: number }[] = []
    const lost: BusEvent[] = []
    const subs = [back.messages$<{ i: number }>('h.>').subscribe((m) => got.push(m)), back.events$.subscribe((e) => lost.push(e))]
    open.push({ close: () => subs.forEach((x) => x.unsubscribe()) })
    crashedHubRoster(path, back.id, 'h.>')
    const hub = await startHub({ path, recoveryTimeout: 60_000, clientHighWaterMark: 4096 })
    open.push(hub)
    const bus = connectBus(path)
    open.push(bus)
    const big = 'x'.repeat(1000)
    for (let i = 0; i < 10; i++) bus.emit('h.a', { i, big })
    await bus.flush() // answered once `back` has adopted what was held for it
    await back.flush()
    expect(got.map((m) => m.i)).toEqual([0, 1, 2]) // ~1 KiB each: 3 fit in 4 KiB
    expect(back.stats.lost).toBe(7)
    expect(lost).toEqual([{ type: 'lost', origin: bus.id, count: 7 }])
    expect(hub.stats.recovering).toBe(0)
    expect(hub.stats.lost).toBe(7)
  })
})
