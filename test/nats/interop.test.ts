// The bus on NATS and plain nats.js clients on the same server: payloads are plain JSON, rxnet's
// metadata is in headers only, requests and replies are NATS requests and replies.
import { describe, expect, it } from 'vitest'
import { firstValueFrom, lastValueFrom, of, take, toArray } from 'rxjs'
import { headers, type NatsConnection } from '@nats-io/transport-node'
import { connectBus, type NatsBus } from 'rxnet'
import { reply, request } from 'rxnet/operators'
import { freePort, NATS_SERVER, SKIP_REASON } from './harness.js'
import { natsSuite } from './suite.js'
import { commandSender, installedNatsVersion, TESTED_NATS_VERSIONS } from '../../src/bus/nats/wire.js'

describe.skipIf(NATS_SERVER === null)(`bus on NATS with plain NATS clients${NATS_SERVER === null ? ` (skipped: ${SKIP_REASON})` : ''}`, () => {
  const s = natsSuite(1)
  const bus = (): NatsBus => {
    const b = connectBus(s.url)
    s.track(b)
    return b
  }
  const plain = (): Promise<NatsConnection> => s.plain()

  it('a plain nc.publish of JSON reaches messages$("log.*"), origin "" and seq 0', async () => {
    const b = bus()
    const got = firstValueFrom(b.envelopes$('log.*'))
    await b.flush()
    const nc = await plain()
    nc.publish('log.info', JSON.stringify({ line: 'x' }))
    expect(await got).toEqual({ topic: 'log.info', data: { line: 'x' }, origin: '', seq: 0 })
  })

  it('an rxnet emit reaches a plain subscriber as plain JSON, with Rx-Origin / Rx-Seq headers', async () => {
    const nc = await plain()
    const sub = nc.subscribe('log.>', { max: 2 })
    await nc.flush()
    const b = bus()
    b.emit('log.info', { line: 'a' })
    b.emit('log.error.disk', [1, 2])
    const msgs = []
    for await (const m of sub) msgs.push({ subject: m.subject, json: m.json(), origin: m.headers?.get('Rx-Origin'), seq: m.headers?.get('Rx-Seq') })
    expect(msgs).toEqual([
      { subject: 'log.info', json: { line: 'a' }, origin: b.id, seq: '1' },
      { subject: 'log.error.disk', json: [1, 2], origin: b.id, seq: '2' },
    ])
  })

  it('a plain publisher forging a sender id with a far-ahead Rx-Seq does not silence that sender: refused and counted in stats.implausible (as on the local bus)', async () => {
    const victim = bus()
    const receiver = bus()
    const got = firstValueFrom(receiver.messages$('v.data').pipe(take(6), toArray()))
    await receiver.flush()
    victim.emit('v.data', 1)
    await victim.flush()
    const nc = await plain()
    const forged = headers()
    forged.set('Rx-Origin', victim.id)
    forged.set('Rx-Seq', String(2 ** 40))
    nc.publish('v.data', JSON.stringify('forged'), { headers: forged })
    await nc.flush()
    for (let i = 2; i <= 6; i++) victim.emit('v.data', i)
    expect(await got).toEqual([1, 2, 3, 4, 5, 6])
    expect(receiver.stats.implausible).toBe(1)
  })

  it('the internal send path is used only on the nats.js releases it was tested with (another version, or none readable: nc.publish())', async () => {
    const nc = await plain()
    expect(installedNatsVersion()).toMatch(TESTED_NATS_VERSIONS)
    expect(commandSender(nc, installedNatsVersion())).not.toBeNull()
    for (const other of ['3.5.0', '4.0.0', '3.4.0-beta.1', null]) expect(commandSender(nc, other), String(other)).toBeNull()
  })

  it('emits go out as ready-made HPUB commands through the installed nats.js (nc.protocol.sendCommand), read by a plain subscriber as nc.publish would send them', async () => {
    const nc = await plain()
    expect(commandSender(nc)).not.toBeNull() // else every emit falls back to nc.publish(): slower, same bytes
    const sub = nc.subscribe('cmd.>', { max: 3 })
    await nc.flush()
    const b = bus()
    const values = [{ s: 'é€😀' }, 'x'.repeat(5000), [1, 2, 3]]
    for (const v of values) b.emit('cmd.t', v)
    const got = []
    for await (const m of sub) got.push({ data: Buffer.from(m.data).toString('hex'), keys: [...m.headers!.keys()], origin: m.headers?.get('Rx-Origin'), seq: m.headers?.get('Rx-Seq') })
    expect(got).toEqual(values.map((v, i) => ({ data: Buffer.from(JSON.stringify(v)).toString('hex'), keys: ['Rx-Origin', 'Rx-Seq'], origin: b.id, seq: String(i + 1) })))
  })

  it('reply() on the bus answers a plain nc.request(); an error reply carries the NATS service-error headers', async () => {
    const b = bus()
    b.messages$('math.add')
      .pipe(
        reply(b, ({ a, c }: { a: number; c: number }) => {
          if (a < 0) throw Object.assign(new Error('negative'), { code: 'E_NEG' })
          return a + c
        }),
      )
      .subscribe()
    await b.flush()
    const nc = await plain()
    const r = await nc.request('math.add', JSON.stringify({ a: 1, c: 2 }), { timeout: 5000 })
    expect(r.json()).toBe(3)
    const e = await nc.request('math.add', JSON.stringify({ a: -1, c: 2 }), { timeout: 5000 })
    expect(e.data.length).toBe(0)
    expect(e.headers?.get('Nats-Service-Error')).toBe('negative')
    expect(e.headers?.get('Nats-Service-Error-Code')).toBe('E_NEG')
  })

  it('request() on the bus calls a plain NATS responder; its service-error headers become ERR_REMOTE', async () => {
    const nc = await plain()
    nc.subscribe('math.double', {
      callback: (_e, m) => {
        const n = m.json<number>()
        if (n < 0) {
          const h = headers()
          h.set('Nats-Service-Error', 'negative')
          h.set('Nats-Service-Error-Code', 'E_NEG')
          m.respond('', { headers: h })
        } else m.respond(JSON.stringify(n * 2))
      },
    })
    await nc.flush()
    const b = bus()
    expect(await lastValueFrom(of(1, 2, 3).pipe(request<number, number>(b, 'math.double'), toArray()))).toEqual([2, 4, 6])
    await expect(lastValueFrom(of(-1).pipe(request(b, 'math.double')))).rejects.toMatchObject({ code: 'ERR_REMOTE', remoteCode: 'E_NEG' })
  })

  it('a NATS message with malformed rxnet headers is delivered as plain (origin "", no dedupe)', async () => {
    const b = bus()
    const got = lastValueFrom(b.envelopes$('x').pipe(take(2), toArray()))
    await b.flush()
    const nc = await plain()
    for (let i = 0; i < 2; i++) {
      const h = headers()
      h.set('Rx-Origin', 'someone')
      h.set('Rx-Seq', 'not-a-number')
      nc.publish('x', JSON.stringify(i), { headers: h })
    }
    expect(await got).toEqual([
      { topic: 'x', data: 0, origin: '', seq: 0 },
      { topic: 'x', data: 1, origin: '', seq: 0 },
    ])
  })

  it('a payload the codec cannot decode is counted in stats.undecodable and dropped', async () => {
    const b = bus()
    const got = firstValueFrom(b.messages$('y'))
    await b.flush()
    const nc = await plain()
    nc.publish('y', '{not json')
    nc.publish('y', '"ok"')
    expect(await got).toBe('ok')
    expect(b.stats.undecodable).toBe(1)
  })

  it('close() with messages no server confirmed rejects with ERR_UNDELIVERED (count, cause ERR_CONNECTION) and counts them', async () => {
    const nowhere = connectBus(`nats://127.0.0.1:${await freePort()}`, { closeTimeout: 200, minReconnectDelay: 20 })
    nowhere.emit('t', 1)
    nowhere.emit('t', 2)
    await expect(nowhere.close()).rejects.toMatchObject({ code: 'ERR_UNDELIVERED', count: 2, cause: { code: 'ERR_CONNECTION' } })
    expect(nowhere.stats.undelivered).toBe(2)
    await expect(nowhere.close()).resolves.toBeUndefined() // reported once
    const b = bus()
    b.emit('t', 1)
    await expect(b.close()).resolves.toBeUndefined() // a live server confirmed it
    expect(b.stats.undelivered).toBe(0)
  })
})
