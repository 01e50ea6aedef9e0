import { afterEach, describe, expect, it } from 'vitest'
import { ReplaySubject, filter, firstValueFrom, timeout } from 'rxjs'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { connectBus, hubStats$, startHub, SYS_HUB_STATS_REQUEST, type MetricsSnapshot } from 'rxnet'
import { socketChannel } from '../../src/socket.js'
import { encodeHello, encodeSub } from '../../src/bus/protocol.js'

const cleanups: (() => Promise<unknown> | unknown)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rxnet-sys-'))
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

describe('hub $SYS stats', () => {
  it('answers on $SYS.HUB.<id>.STATS with its counters and clients (subscriptions); the request reaches no client', async () => {
    const hub = await startHub({ path: path.join(tempDir(), 'hub.sock') })
    cleanups.push(() => hub.close())
    const worker = connectBus(hub.path)
    cleanups.push(() => worker.close())
    worker.messages$('jobs.*').subscribe()
    worker.messages$('log.>').subscribe()
    const everything: unknown[] = []
    worker.messages$('>').subscribe((m) => everything.push(m))
    await worker.flush()
    const observer = connectBus(hub.path)
    cleanups.push(() => observer.close())
    const seen = new ReplaySubject<MetricsSnapshot>()
    const sub = hubStats$(observer, { interval: 50 }).subscribe(seen)
    cleanups.push(() => sub.unsubscribe())
    const s = await firstValueFrom(seen.pipe(filter((x) => x.links.length === 2), timeout(10_000)))
    expect(s).toMatchObject({ transport: 'hub', node: hub.id, name: hub.path, gauges: { clients: 2 }, counters: { messages_published: 0, clients_dropped: 0 } })
    const w = s.links.find((l) => l.to === worker.id)!
    expect(w).toMatchObject({ kind: 'client', from: hub.id, state: 'up', info: { slow: false } })
    expect((w.info!.subscriptions as string[]).sort()).toEqual(['>', 'jobs.*', 'log.>'])
    expect(s.links.find((l) => l.to === observer.id)?.info?.subscriptions).toEqual(['$SYS.HUB.*.STATS'])
    expect(hub.stats.published).toBe(0) // requests are the hub's own business, not published
    expect(everything.every((m) => m === null || typeof m === 'object')).toBe(true)
    expect(everything.some((m) => m === null)).toBe(false) // the request's null payload went nowhere
  })

  it('shows a client that stopped reading as slow (suspect), while the hub holds everyone back', async () => {
    const hub = await startHub({ path: path.join(tempDir(), 'hub.sock'), clientHighWaterMark: 64 * 1024, slowClientTimeout: 60_000 })
    cleanups.push(() => hub.close())
    // A raw client: HELLO, SUB, then it never reads again.
    const socket = net.connect(hub.path)
    const raw = socketChannel(socket)
    cleanups.push(() => socket.destroy())
    raw.send(encodeHello('slowpoke', false))
    raw.send(encodeSub('load'))
    const observer = connectBus(hub.path)
    cleanups.push(() => observer.close())
    const seen = new ReplaySubject<MetricsSnapshot>()
    const sub = hubStats$(observer, { interval: 100 }).subscribe(seen)
    cleanups.push(() => sub.unsubscribe())
    await firstValueFrom(seen.pipe(filter((x) => x.links.some((l) => l.to === 'slowpoke' && (l.info?.subscriptions as string[]).includes('load'))), timeout(10_000)))
    socket.pause()
    const publisher = connectBus(hub.path, { overflow: 'drop-oldest' })
    cleanups.push(() => publisher.close())
    cleanups.push(() => socket.destroy()) // first: the hub uncongests and acknowledges what the publisher sent
    await publisher.flush()
    const slow = firstValueFrom(seen.pipe(filter((x) => x.links.some((l) => l.to === 'slowpoke' && l.info?.slow === true)), timeout(20_000)))
    const chunk = 'x'.repeat(16 * 1024)
    let done = false
    void slow.finally(() => (done = true))
    for (let i = 0; i < 2000 && !done; i++) {
      publisher.emit('load', chunk)
      if (!publisher.writable) await Promise.race([publisher.whenWritable(), slow.catch(() => {})])
      if (i % 50 === 0) await new Promise((r) => setImmediate(r))
    }
    const s = await slow
    expect(s.links.find((l) => l.to === 'slowpoke')).toMatchObject({ state: 'suspect', info: { slow: true } })
    expect(SYS_HUB_STATS_REQUEST).toBe('$SYS.REQ.HUB.STATS')
  })
})
