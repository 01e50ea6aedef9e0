// Batch frames end to end: PUBS from a client become MSGS to the others, with every guarantee
// and limit of single messages (resends forwarded once, maxMessageSize per message).
import net from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { connectBus, socketChannel, startHub, type HubEvent } from 'rxnet'
import { decodeFrame, encodeHello, encodePing, encodePubs, encodeSub, forEachEntry, type Batch, type HubFrame } from '../../src/bus/protocol.js'
import { tmpSocket, until } from './helpers.js'

const open: { close(): unknown }[] = []
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close()
})

/** A raw client: HELLO as `id`, then `frames`; what it receives, one [seq, payload] per message. */
interface Raw {
  got: [number, string][]
  all: HubFrame[]
  /** PING, resolved at its PONG: the hub has processed everything sent before it. */
  ping(): Promise<void>
  close(): Promise<void>
}
function rawClient(path: string, id: string, frames: Uint8Array[] = []): Raw {
  const ch = socketChannel(net.connect(path))
  const got: [number, string][] = []
  const all: HubFrame[] = []
  ch.source.subscribe({
    next: (b) => {
      const f = decodeFrame(b)
      all.push(f)
      if (f.type === 'msg') got.push([f.seq, Buffer.from(f.payload).toString()])
      if (f.type === 'msgs') forEachEntry(b, f as Batch<'msgs'>, (seq, from, to) => got.push([seq, Buffer.from(b.subarray(from, to)).toString()]))
    },
    error: () => {},
  })
  ch.send(encodeHello(id, false))
  for (const f of frames) ch.send(f)
  let pings = 0
  const ping = async (): Promise<void> => {
    const n = ++pings
    ch.send(encodePing(n))
    await until(() => all.some((f) => f.type === 'pong' && f.id === n), 5000, `PONG ${n}`)
  }
  const c = { got, all, ping, close: () => ch.close() }
  open.push(c)
  return c
}
const json = (...values: unknown[]): Uint8Array[] => values.map((v) => Buffer.from(JSON.stringify(v)))

describe('batch frames through the hub', () => {
  it('a resent batch that the hub forwarded in part before the reconnect: only the new messages go out, once', async () => {
    const hub = await startHub({ path: tmpSocket() })
    open.push(hub)
    const receiver = rawClient(hub.path, 'receiver', [encodeSub('b.>')])
    await receiver.ping()
    const first = rawClient(hub.path, 'sender', [encodePubs(1, 'b.x', json(1, 2, 3))])
    await until(() => receiver.got.length === 3, 5000, 'first batch')
    await first.close()
    await until(() => hub.stats.clients === 1, 5000, 'sender gone')
    // The same sender again, resending from 2 (e.g. its ACK for 1..3 was lost with the connection).
    const again = rawClient(hub.path, 'sender', [encodePubs(2, 'b.x', json(2, 3, 4, 5))])
    await again.ping() // the hub has routed the batch
    await receiver.ping() // and the receiver has read all it was sent before this PONG
    expect(receiver.got).toEqual([1, 2, 3, 4, 5].map((n) => [n, String(n)]))
    expect(hub.stats.published).toBe(5)
  })

  it('maxMessageSize holds for each message of a batch: one oversized entry drops the sender', async () => {
    const hub = await startHub({ path: tmpSocket(), maxMessageSize: 1024 })
    open.push(hub)
    const events: HubEvent[] = []
    hub.events$.subscribe((e) => events.push(e))
    rawClient(hub.path, 'sender', [encodePubs(1, 'b.x', [new Uint8Array(10), new Uint8Array(2000), new Uint8Array(10)])])
    await until(() => events.some((e) => e.type === 'drop'), 5000, 'drop')
    expect(events.find((e) => e.type === 'drop')).toMatchObject({ client: 'sender', error: { code: 'ERR_FRAME_TOO_LONG' } })
    expect(hub.stats.published).toBe(0)
  })

  it('a small maxMessageSize still carries batches of small messages (frames up to MAX_BATCH_BYTES), at both ends', async () => {
    const hub = await startHub({ path: tmpSocket(), maxMessageSize: 1024 })
    open.push(hub)
    const a = connectBus(hub.path, { maxMessageSize: 1024 })
    const b = connectBus(hub.path, { maxMessageSize: 1024 })
    open.push(a, b)
    const got: number[] = []
    b.messages$<{ i: number }>('b.>').subscribe((v) => got.push(v.i))
    await Promise.all([a.flush(), b.flush()])
    for (let i = 0; i < 500; i++) a.emit('b.x', { i, pad: 'x'.repeat(80) }) // ~50 KB in one tick
    await a.flush()
    await until(() => got.length === 500, 5000, 'all 500')
    expect(got).toEqual(Array.from({ length: 500 }, (_, i) => i))
    expect(hub.stats.dropped).toBe(0)
    expect(a.stats.reconnects + b.stats.reconnects).toBe(0)
  })
})
