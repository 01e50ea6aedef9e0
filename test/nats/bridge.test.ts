// Hubs bridged through NATS: local clients talk to their hub on its Unix socket; each hub forwards
// its clients' messages to NATS and subscribes there to the union of its clients' patterns.
import { describe, expect, it } from 'vitest'
import { firstValueFrom, lastValueFrom, take, toArray } from 'rxjs'
import { headers, type NatsConnection } from '@nats-io/transport-node'
import { connectBus, startHub, type Bus, type BusMessage, type Hub } from 'rxnet'
import { tmpSocket } from '../bus/helpers.js'
import { NATS_SERVER, SKIP_REASON } from './harness.js'
import { natsSuite } from './suite.js'

describe.skipIf(NATS_SERVER === null)(`hubs bridged through NATS${NATS_SERVER === null ? ` (skipped: ${SKIP_REASON})` : ''}`, () => {
  const s = natsSuite(1)
  const hub = async (): Promise<Hub> => {
    const h = await startHub({ path: tmpSocket(), nats: { servers: [s.url] } })
    s.track(h)
    return h
  }
  const client = (h: Hub): Bus => {
    const b = connectBus(h.path, { minReconnectDelay: 10 })
    s.track(b)
    return b
  }
  const plain = (): Promise<NatsConnection> => s.plain()
  /** The client's SUB reached its hub and the hub's NATS SUB reached the server. */
  const subscribed = async (h: Hub, b: Bus): Promise<void> => {
    await b.flush()
    await h.nats!.flush()
  }

  it('clients of two hubs see each other\'s messages exactly once, in order; nothing loops back', async () => {
    const [ha, hb] = [await hub(), await hub()]
    const [a, b] = [client(ha), client(hb)]
    const N = 2000
    const atB = lastValueFrom(b.envelopes$<number>('x.>').pipe(take(N), toArray()))
    const atA = lastValueFrom(a.envelopes$<number>('y.>').pipe(take(N), toArray()))
    await Promise.all([subscribed(ha, a), subscribed(hb, b)])
    for (let i = 1; i <= N; i++) {
      a.emit('x.a', i)
      b.emit('y.b', i)
    }
    const [gotB, gotA] = await Promise.all([atB, atA])
    expect(gotB.map((m) => m.data)).toEqual(Array.from({ length: N }, (_, i) => i + 1))
    expect(gotA.map((m) => m.data)).toEqual(Array.from({ length: N }, (_, i) => i + 1))
    expect(new Set(gotB.map((m) => m.origin))).toEqual(new Set([a.id])) // the origin is the far client's id
    await Promise.all([a.flush(), b.flush(), ha.nats!.flush(), hb.nats!.flush()])
    // Each hub forwarded its own client's messages only (what came from NATS was not sent back).
    expect(ha.nats!.stats.emitted).toBe(N)
    expect(hb.nats!.stats.emitted).toBe(N)
    expect(a.stats.duplicates + b.stats.duplicates).toBe(0)
  })

  it('subscribes on NATS to the union of its clients\' patterns, and drops a pattern when its last client does', async () => {
    const h = await hub()
    const [c1, c2] = [client(h), client(h)]
    const s1 = c1.messages$('log.*').subscribe()
    const s2 = c2.messages$('log.*').subscribe()
    const s3 = c2.messages$('metrics.>').subscribe()
    await subscribed(h, c1)
    await subscribed(h, c2)
    expect(h.nats!.patterns).toEqual(new Set(['log.*', 'metrics.>']))
    s1.unsubscribe()
    await subscribed(h, c1)
    expect(h.nats!.patterns).toEqual(new Set(['log.*', 'metrics.>']))
    s2.unsubscribe()
    s3.unsubscribe()
    await subscribed(h, c2)
    expect(h.nats!.patterns).toEqual(new Set())
  })

  it('plain NATS clients: a plain publish reaches hub clients (origin = the bridge\'s plainOrigin); a hub client\'s emit reaches a plain subscriber as plain JSON', async () => {
    const h = await hub()
    const c = client(h)
    const got = lastValueFrom(c.envelopes$('log.*').pipe(take(2), toArray()))
    await subscribed(h, c)
    const nc = await plain()
    const sub = nc.subscribe('out.>', { max: 1 })
    await nc.flush()
    nc.publish('log.info', JSON.stringify({ line: 1 }))
    nc.publish('log.info', JSON.stringify({ line: 2 }))
    const msgs = await got
    expect(msgs.map((m: BusMessage) => m.data)).toEqual([{ line: 1 }, { line: 2 }])
    expect(msgs.map((m) => m.origin)).toEqual([h.nats!.plainOrigin, h.nats!.plainOrigin])
    c.emit('out.x', { hello: 'nats' })
    for await (const m of sub) {
      expect(m.json()).toEqual({ hello: 'nats' })
      expect(m.headers?.get('Rx-Origin')).toBe(c.id)
    }
  })

  it('a NATS message claiming a local client\'s origin is refused (hub.stats.bridgeSpoofed), others pass', async () => {
    const h = await hub()
    const c = client(h)
    const got = firstValueFrom(c.messages$('t'))
    await subscribed(h, c)
    const nc = await plain()
    const forged = headers()
    forged.set('Rx-Origin', c.id)
    forged.set('Rx-Seq', '99')
    nc.publish('t', JSON.stringify('forged'), { headers: forged })
    nc.publish('t', JSON.stringify('genuine'))
    expect(await got).toBe('genuine')
    expect(h.stats.bridgeSpoofed).toBe(1)
  })
})
