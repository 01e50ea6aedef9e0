import { afterEach, describe, expect, it } from 'vitest'
import { ReplaySubject, Subject, filter, firstValueFrom, from, lastValueFrom, toArray, timeout } from 'rxjs'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createMesh, startHub, connectBus, multicast, meshMetrics, hubMetrics, busMetrics, multicastMetrics, clusterMetrics, withRates, deriveRates, type Mesh, type MetricsSnapshot, type ClusterNode, type Link, type WorkerEvent } from 'rxnet'

const cleanups: (() => Promise<unknown> | unknown)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

function snap(node: string, time: number, counters: Record<string, number>, links: MetricsSnapshot['links'] = []): MetricsSnapshot {
  return { transport: 'mesh', node, name: 'm', time, counters, gauges: {}, links }
}

const LINK_COUNTERS = ['messages_received', 'messages_sent', 'received_bytes', 'sent_bytes', 'dropped_messages', 'overflows']

describe('rates', () => {
  it('deriveRates: per second, no rate for a new or a decreasing counter, none over zero time', () => {
    expect(deriveRates({ a: 10, b: 5, c: 9 }, { a: 30, b: 5, c: 1, d: 4 }, 2)).toEqual({ a: 10, b: 0 })
    expect(deriveRates({ a: 1 }, { a: 2 }, 0)).toEqual({})
  })

  it('withRates pairs each snapshot with the previous one of the same source and link, interleaved sources apart', async () => {
    const l = (sent: number): MetricsSnapshot['links'][number] => ({ kind: 'peer', from: 'a', to: 'b', state: 'up', counters: { messages_received: 0, messages_sent: sent, received_bytes: 0, sent_bytes: sent * 10, dropped_messages: 0, overflows: 0 }, gauges: {} })
    const out = await lastValueFrom(
      from([snap('a', 1000, { messages_sent: 0 }, [l(0)]), snap('b', 1000, { messages_sent: 100 }), snap('a', 3000, { messages_sent: 40 }, [l(40)]), snap('b', 1500, { messages_sent: 150 })]).pipe(withRates(), toArray()),
    )
    expect(out.map((s) => s.rates)).toEqual([{}, {}, { messages_sent: 20 }, { messages_sent: 100 }])
    expect(out[0]!.links[0]!.rates).toEqual({})
    expect(out[2]!.links[0]!.rates).toMatchObject({ messages_sent: 20, sent_bytes: 200 })
  })

  it('withRates keeps its memory per subscription', async () => {
    const rated = from([snap('a', 0, { x: 0 }), snap('a', 1000, { x: 5 })]).pipe(withRates())
    const first = await lastValueFrom(rated.pipe(toArray()))
    const second = await lastValueFrom(rated.pipe(toArray()))
    expect(first.map((s) => s.rates)).toEqual(second.map((s) => s.rates))
    expect(second[0]!.rates).toEqual({})
  })
})

describe('collectors', () => {
  it('refuse unknown and invalid options', () => {
    const mesh = createMesh({ name: 'opts', interface: '127.0.0.1', discovery: false })
    cleanups.push(() => mesh.close())
    expect(() => meshMetrics(mesh, { intreval: 5 } as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('"interval"') }))
    expect(() => meshMetrics(mesh, { interval: 0 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
  })

  it('mesh: node counters, members, one up link per peer with RTT; counters move; an ended link turns down, then goes', async () => {
    const a: Mesh = createMesh({ name: 'metrics-shape', id: 'a', interface: '127.0.0.1', discovery: false, heartbeatInterval: 50 })
    cleanups.push(() => a.close())
    const { port } = await a.listen(0, '127.0.0.1')
    const b: Mesh = createMesh({ name: 'metrics-shape', id: 'b', interface: '127.0.0.1', discovery: false, seeds: [`127.0.0.1:${port}`], heartbeatInterval: 50 })
    cleanups.push(() => b.close())
    await b.listen(0, '127.0.0.1')
    const snaps = new ReplaySubject<MetricsSnapshot>(1)
    const sub = meshMetrics(a, { interval: 20, linger: 200 }).subscribe(snaps)
    cleanups.push(() => sub.unsubscribe())
    const withRtt = await firstValueFrom(snaps.pipe(filter((s) => s.links.length === 1 && s.links[0]!.rttSeconds !== undefined), timeout(10_000)))
    expect(withRtt).toMatchObject({ transport: 'mesh', node: 'a', name: 'metrics-shape', gauges: { members: 1 } })
    expect(Object.keys(withRtt.counters)).toEqual(expect.arrayContaining([...LINK_COUNTERS, 'accepted_connections', 'dial_attempts', 'refused_connections', 'link_timeouts']))
    const link = withRtt.links[0]!
    expect(link).toMatchObject({ kind: 'peer', from: 'a', to: 'b', state: 'up', info: { port: expect.any(Number) } })
    expect(Object.keys(link.counters).sort()).toEqual([...LINK_COUNTERS].sort())
    expect(link.rttSeconds).toBeGreaterThan(0)
    expect(link.rttSeconds).toBeLessThan(1)

    const before = withRtt.counters.messages_sent!
    a.broadcast('hello')
    a.broadcast('world')
    const moved = await firstValueFrom(snaps.pipe(filter((s) => s.counters.messages_sent! >= before + 2), timeout(10_000)))
    expect(moved.links[0]!.counters.messages_sent).toBeGreaterThanOrEqual(before + 2)

    const down = firstValueFrom(snaps.pipe(filter((s) => s.links.some((l) => l.state === 'down')), timeout(10_000)))
    await b.close()
    const d = await down
    expect(d.links[0]!.rttSeconds).toBeUndefined()
    expect(d.counters.messages_sent).toBeGreaterThanOrEqual(before + 2) // ended links still counted
    const gone = await firstValueFrom(snaps.pipe(filter((s) => s.links.length === 0), timeout(10_000)))
    expect(gone.counters.messages_sent).toBeGreaterThanOrEqual(before + 2)
    expect(gone.gauges.members).toBe(0)
  })

  it('mesh: an idle link whose heartbeats arrive stays up past suspectAfter (heartbeats are activity, not messages)', async () => {
    const options = { name: 'metrics-idle', interface: '127.0.0.1', discovery: false, heartbeatInterval: 20 }
    const a: Mesh = createMesh({ ...options, id: 'a' })
    cleanups.push(() => a.close())
    const { port } = await a.listen(0, '127.0.0.1')
    const b: Mesh = createMesh({ ...options, id: 'b', seeds: [`127.0.0.1:${port}`] })
    cleanups.push(() => b.close())
    await b.listen(0, '127.0.0.1')
    const suspectAfter = 300
    const snaps = new ReplaySubject<MetricsSnapshot>(1)
    const sub = meshMetrics(a, { interval: 20, suspectAfter }).subscribe(snaps)
    cleanups.push(() => sub.unsubscribe())
    const first = await firstValueFrom(snaps.pipe(filter((s) => s.links.length === 1), timeout(10_000)))
    // nothing but heartbeats crosses the link for three times suspectAfter
    const later = await firstValueFrom(snaps.pipe(filter((s) => s.time - first.time >= 3 * suspectAfter), timeout(10_000)))
    expect(later.links).toEqual([expect.objectContaining({ to: 'b', state: 'up', counters: expect.objectContaining({ messages_received: 0, received_bytes: 0 }) })])
  })

  it('mesh: completes when the mesh closes', async () => {
    const a = createMesh({ name: 'metrics-close', interface: '127.0.0.1', discovery: false })
    await a.listen(0, '127.0.0.1')
    const all = lastValueFrom(meshMetrics(a, { interval: 1000 }).pipe(toArray(), timeout(10_000)))
    await a.close()
    expect((await all).length).toBeGreaterThanOrEqual(1)
  })

  it('hub and bus: counters by stem, client count, completes on close', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rxnet-metrics-'))
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }))
    const hub = await startHub({ path: path.join(dir, 'hub.sock') })
    cleanups.push(() => hub.close())
    const bus = connectBus(hub.path)
    cleanups.push(() => bus.close())
    const reader = connectBus(hub.path)
    cleanups.push(() => reader.close())
    const got = firstValueFrom(reader.messages$('t'))
    await reader.flush()
    bus.emit('t', { n: 1 })
    await got
    const h = await firstValueFrom(hubMetrics(hub, { interval: 20 }).pipe(filter((s) => s.counters.messages_published! >= 1), timeout(10_000)))
    expect(h).toMatchObject({ transport: 'hub', node: hub.id, name: hub.path, gauges: { clients: 2 }, counters: { messages_published: 1, messages_delivered: 1, clients_dropped: 0 } })
    const b = await firstValueFrom(busMetrics(bus, { interval: 20 }))
    expect(b).toMatchObject({ transport: 'bus', node: bus.id, gauges: { connected: 1 }, counters: { messages_sent: 1, messages_received: 0, duplicate_messages: 0 } })
    expect((await firstValueFrom(busMetrics(reader))).counters.messages_received).toBe(1)
    const all = lastValueFrom(hubMetrics(hub).pipe(toArray(), timeout(10_000)))
    await bus.close()
    await reader.close()
    await hub.close()
    expect((await all).length).toBeGreaterThanOrEqual(1)
  })

  it('multicast: message and datagram counters, gaps and duplicates, completes on close', async () => {
    const mc = multicast({ interface: '127.0.0.1', group: '239.255.0.61', port: 45861 })
    await mc.ready
    const all = lastValueFrom(multicastMetrics(mc, { interval: 20 }).pipe(toArray(), timeout(10_000)))
    const first = await firstValueFrom(multicastMetrics(mc))
    expect(first).toMatchObject({ transport: 'multicast', node: mc.id, counters: { gaps: 0, duplicate_datagrams: 0, replayed_datagrams: 0, datagrams_sent: 0 }, gauges: { senders: 0 } })
    await mc.close()
    expect((await all).length).toBeGreaterThanOrEqual(1)
  })

  it('cluster: links with counters, workers with restarts, exits counted (primary)', async () => {
    const links = new Subject<Link>()
    const workers = new Subject<WorkerEvent>()
    let resolveClosed!: () => void
    const stats = { messagesIn: 3, bytesIn: 30, messagesOut: 4, bytesOut: 40, dropped: 0, overflows: 0, bufferedBytes: 0 }
    const link = { id: 1, pid: 123, stats, closed: new Promise<void>((r) => (resolveClosed = r)) } as unknown as Link
    const node = { isPrimary: true, id: 0, links$: links, workers$: workers, status: () => [{ id: 1, pid: 123, state: 'online', restarts: 2 }] } as unknown as ClusterNode
    const seen = new ReplaySubject<MetricsSnapshot>()
    const sub = clusterMetrics(node, { interval: 10, linger: 0 }).subscribe(seen)
    cleanups.push(() => sub.unsubscribe())
    links.next(link)
    workers.next({ type: 'exit', id: 1, pid: 122, code: 1, signal: null, expected: false })
    const s = await firstValueFrom(seen.pipe(filter((x) => x.links.length === 1 && x.counters.worker_exits === 1), timeout(5000)))
    expect(s).toMatchObject({ transport: 'cluster', node: '0', workers: [{ id: 1, state: 'online', restarts: 2 }], counters: { worker_restarts: 2, messages_received: 3, sent_bytes: 40 }, gauges: { links: 1, workers_online: 1 } })
    expect(s.links[0]).toMatchObject({ kind: 'link', from: '0', to: '1', state: 'up', info: { pid: 123 } })
    resolveClosed()
    await link.closed
    stats.messagesIn = 99 // after close the link's counters are frozen
    const after = await firstValueFrom(seen.pipe(filter((x) => x.links.length === 0 && x.time > s.time), timeout(5000)))
    expect(after.counters.messages_received).toBe(3)
    expect(after.gauges.links).toBe(0)
  })
})
