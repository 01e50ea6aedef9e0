import net from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { connectBus, startHub, type Hub, type HubEvent } from 'rxnet'
import { encodeHello } from '../../src/bus/protocol.js'
import { FrameProgress } from '../../src/bus/limits.js'
import { tmpSocket, until } from './helpers.js'

const open: { close(): unknown }[] = []
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close()
})

function events(hub: Hub): HubEvent[] {
  const list: HubEvent[] = []
  const sub = hub.events$.subscribe((e) => list.push(e))
  open.push({ close: () => sub.unsubscribe() })
  return list
}

/** A raw connection that says HELLO; `closed` tells when the hub has closed it. */
function raw(path: string, id: string): { socket: net.Socket; closed: Promise<void> } {
  const socket = net.connect(path)
  socket.on('error', () => {})
  const hello = encodeHello(id, false)
  socket.write(Buffer.concat([Buffer.from([hello.length]), hello]))
  open.push({ close: () => socket.destroy() })
  return { socket, closed: new Promise((resolve) => socket.once('close', () => resolve())) }
}

describe('hub limits after HELLO', () => {
  it('FrameProgress holds what the decoder holds: a frame declared but not complete, whatever the chunking', () => {
    const p = new FrameProgress()
    const frame = Buffer.concat([Buffer.from([0x80, 0x01]), Buffer.alloc(128, 7), Buffer.from([2, 1, 2])]) // 128-byte frame, then a 2-byte one
    for (let i = 0; i < frame.length; i++) {
      p.push(frame.subarray(i, i + 1))
      expect(p.held).toBe(i >= 1 && i <= 128 ? 128 : i === 130 || i === 131 ? 2 : 0)
    }
    p.push(Buffer.concat([Buffer.from([0x80, 0x01]), Buffer.alloc(10)]))
    expect(p.held).toBe(128)
  })

  it('refuses connections past maxClients, typed and counted', async () => {
    const hub = await startHub({ path: tmpSocket(), maxClients: 3 })
    open.push(hub)
    const seen = events(hub)
    const ok = [raw(hub.path, 'a'), raw(hub.path, 'b'), raw(hub.path, 'c')]
    await until(() => hub.stats.clients === 3, 5000, 'three clients')
    const extra = raw(hub.path, 'd')
    await extra.closed
    expect(hub.stats.refused).toBe(1)
    const refusals = seen.filter((e) => e.type === 'refuse')
    expect(refusals.map((e) => e.type === 'refuse' && e.error.code)).toEqual(['ERR_LIMIT'])
    expect(hub.stats.clients).toBe(3)
    ok[0]!.socket.destroy()
    await until(() => hub.stats.clients === 2, 5000, 'one left')
    const again = raw(hub.path, 'e') // room again
    await until(() => hub.stats.clients === 3, 5000, 'room again')
    expect(again.socket.destroyed).toBe(false)
  })

  it('many slow-trickle clients: partial-frame memory stays under maxPartialBytes, each is dropped (oldest first, then by frameTimeout), a normal client still gets through', async () => {
    const maxPartialBytes = 512 * 1024
    const hub = await startHub({ path: tmpSocket(), maxMessageSize: 256 * 1024, maxPartialBytes, frameTimeout: 400 })
    open.push(hub)
    const seen = events(hub)
    const CLIENTS = 40
    const HELD = maxPartialBytes / (64 * 1024) // each declares a 64 KiB frame and sends it a byte at a time
    const timers: NodeJS.Timeout[] = []
    open.push({ close: () => timers.forEach(clearInterval) })
    const trickling = []
    for (let k = 0; k < CLIENTS; k++) {
      const c = raw(hub.path, `slow-${k}`)
      c.socket.write(Buffer.from([0x80, 0x80, 0x04, 5])) // length prefix 2^16, then PUB's type byte
      timers.push(setInterval(() => c.socket.destroyed || c.socket.write(Buffer.from([0])), 20))
      trickling.push(c.closed)
    }
    await until(() => hub.stats.partialOverflows + hub.stats.partialTimeouts >= CLIENTS - HELD, 10_000, 'the budget full')
    // A normal client meanwhile: a 200 KiB message spans many reads, so it is a frame in progress too.
    const a = connectBus(hub.path, { maxMessageSize: 256 * 1024 })
    const b = connectBus(hub.path, { maxMessageSize: 256 * 1024 })
    open.push(a, b)
    const got: string[] = []
    const sub = b.messages$<string>('big').subscribe((m) => got.push(m))
    open.push({ close: () => sub.unsubscribe() })
    await b.flush()
    a.emit('big', 'y'.repeat(200 * 1024))
    await a.flush()
    await b.flush()
    expect(got.map((m) => m.length)).toEqual([200 * 1024])
    await Promise.all(trickling) // every trickler is dropped, in bounded time
    const drops = seen.filter((e): e is Extract<HubEvent, { type: 'drop' }> => e.type === 'drop' && e.client!.startsWith('slow-'))
    expect(drops).toHaveLength(CLIENTS)
    const codes = drops.map((d) => d.error.code)
    expect(codes.filter((c) => c === 'ERR_LIMIT')).toHaveLength(hub.stats.partialOverflows)
    expect(codes.filter((c) => c === 'ERR_TIMEOUT')).toHaveLength(hub.stats.partialTimeouts)
    expect(hub.stats.partialOverflows + hub.stats.partialTimeouts).toBe(CLIENTS)
    expect(hub.stats.partialOverflows).toBeGreaterThan(0)
    expect(hub.stats.partialTimeouts).toBeGreaterThan(0)
    expect(hub.stats.partialBytesPeak).toBeGreaterThan(0)
    expect(hub.stats.partialBytesPeak).toBeLessThanOrEqual(maxPartialBytes) // never more held than the budget
    expect(hub.stats.partialBytes).toBe(0)
  })

  it('refuses a maxPartialBytes that one largest frame would not fit in', async () => {
    await expect(startHub({ path: tmpSocket(), maxMessageSize: 1024, maxPartialBytes: 1024 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
  })
})
