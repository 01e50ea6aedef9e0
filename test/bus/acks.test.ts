import net from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { connectBus, socketChannel, startHub, type HubEvent } from 'rxnet'
import { encodeHello, encodeSub } from '../../src/bus/protocol.js'
import { tmpSocket, until } from './helpers.js'

const open: { close(): unknown }[] = []
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close()
})

describe('hub acknowledgements wait for delivery, boundedly', () => {
  it('a receiver that stops reading (under half its budget) holds ACKs up for at most slowClientTimeout, then is dropped', async () => {
    const hub = await startHub({ path: tmpSocket(), slowClientTimeout: 300 })
    open.push(hub)
    const events: HubEvent[] = []
    const sub = hub.events$.subscribe((e) => events.push(e))
    open.push({ close: () => sub.unsubscribe() })
    // A client that registers an interest and then never reads (nobody subscribes to its source).
    const stuck = socketChannel(net.connect(hub.path))
    open.push({ close: () => stuck.sink.error(new Error('test over')) })
    stuck.send(encodeHello('stuck', false))
    stuck.send(encodeSub('k.>'))
    await until(() => hub.stats.clients === 1, 5000, 'the stuck client')
    const bus = connectBus(hub.path)
    open.push(bus)
    await bus.flush()
    const big = 'z'.repeat(64 * 1024)
    for (let i = 0; i < 16; i++) bus.emit('k.x', big) // 1 MiB: more than its kernel buffer, well under half its 8 MiB budget
    await bus.flush({ timeout: 10_000 }) // resolves once the stuck client is gone
    const drop = events.find((e): e is Extract<HubEvent, { type: 'drop' }> => e.type === 'drop' && e.client === 'stuck')
    expect(drop?.error.code).toBe('ERR_TIMEOUT')
    expect(bus.stats.buffered).toBe(0)
  })
})
