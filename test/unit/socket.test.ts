import { getEventListeners } from 'node:events'
import net from 'node:net'
import { setImmediate as tick } from 'node:timers/promises'
import { firstValueFrom } from 'rxjs'
import { afterEach, describe, expect, it } from 'vitest'
import { isRxnetError, socketChannel, type SocketChannel, type SocketChannelOptions } from 'rxnet'
import { encodeFrame } from '../../src/framing/encoder.js'
import { encodeVarint } from '../../src/framing/varint.js'

const open: (() => unknown)[] = []
afterEach(async () => {
  for (const close of open.splice(0).reverse()) await close()
})

/** A connected pair of raw loopback TCP sockets. */
async function sockets(): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer()
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  open.push(() => new Promise((r) => server.close(r)))
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r))
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1')
  await new Promise((r) => client.once('connect', r))
  const s = await accepted
  open.push(() => {
    client.destroy()
    s.destroy()
  })
  return [client, s]
}

async function pair(a: SocketChannelOptions = {}, b: SocketChannelOptions = a): Promise<[SocketChannel, SocketChannel]> {
  const [x, y] = await sockets()
  return [socketChannel(x, a), socketChannel(y, b)]
}

/** Collects a source: resolves with its values on complete, rejects on error. */
function collect<T>(ch: { source: import('rxjs').Observable<T> }): { values: T[]; done: Promise<T[]> } {
  const values: T[] = []
  const done = new Promise<T[]>((resolve, reject) => ch.source.subscribe({ next: (v) => values.push(v), error: reject, complete: () => resolve(values) }))
  return { values, done }
}

function errorOf(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => new Error('expected an error, got completion'),
    (e: unknown) => e,
  )
}

/** A 1 KiB message carrying `seq` in its first 4 bytes. */
function msg(seq: number, size = 1024): Uint8Array {
  const m = new Uint8Array(size)
  new DataView(m.buffer).setUint32(0, seq)
  return m
}
const seqOf = (m: Uint8Array): number => new DataView(m.buffer, m.byteOffset, 4).getUint32(0)

/**
 * Sends 1 KiB messages into `ch` (the far side is not reading) until `stop()` holds, yielding to
 * the event loop every 32 messages so the kernel buffers fill. Bounded in count and time.
 */
async function fill(ch: SocketChannel, stop: () => boolean, max = 60_000): Promise<number> {
  const deadline = Date.now() + 15_000
  let n = 0
  while (!stop() && n < max && Date.now() < deadline) {
    ch.send(msg(n++))
    if (n % 32 === 0) await tick()
  }
  expect(stop()).toBe(true)
  return n
}

describe('socketChannel', () => {
  it('carries messages in order, small and large, and completes on clean close', async () => {
    const [a, b] = await pair()
    const got = collect(b)
    const sent: Uint8Array[] = []
    for (let i = 0; i < 1000; i++) {
      const m = new Uint8Array(i % 7 === 0 ? 70_000 : i % 300).fill(i & 0xff)
      sent.push(m)
      a.send(m)
      if (!a.writable) await a.whenWritable()
    }
    const aDone = collect(a).done
    a.sink.complete()
    await got.done
    expect(await aDone).toEqual([]) // a's source completes too once b answers the close
    await a.closed
    await b.closed
    expect(got.values.length).toBe(sent.length)
    for (let i = 0; i < sent.length; i++) expect(Buffer.compare(got.values[i]!, sent[i]!)).toBe(0)
    expect(a.stats.messagesOut).toBe(1000)
    expect(b.stats.messagesIn).toBe(1000)
    expect(b.stats.bytesIn).toBe(sent.reduce((s, m) => s + m.length, 0))
    expect(a.stats.bufferedBytes).toBe(0)
  })

  it('reused batch buffers never corrupt messages (many rounds of distinct content)', async () => {
    const [a, b] = await pair()
    const got = collect(b)
    const rounds = 200
    const per = 50
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < per; i++) a.send(new Uint8Array(1000).fill((r * per + i) & 0xff))
      await tick() // let the batch go out and its buffer come back to the pool
    }
    a.sink.complete()
    const values = await got.done
    expect(values.length).toBe(rounds * per)
    values.forEach((v, k) => {
      expect(v.length).toBe(1000)
      expect(v.every((x) => x === (k & 0xff))).toBe(true)
    })
  })

  it('over a generic Duplex (not a net.Socket) buffers are not reused while the stream holds them', async () => {
    const { PassThrough, Duplex } = await import('node:stream')
    const wire = new PassThrough({ highWaterMark: 1 << 30 })
    const duplex = Duplex.from({ writable: wire, readable: new PassThrough() })
    const ch = socketChannel(duplex)
    for (let r = 0; r < 20; r++) {
      for (let i = 0; i < 50; i++) ch.send(new Uint8Array(1000).fill(r))
      await tick()
    }
    // read everything only now: the PassThrough still references every batch it was given
    const chunks: Buffer[] = []
    let c: Buffer | null
    while ((c = wire.read() as Buffer | null) !== null) chunks.push(c)
    const frames: Uint8Array[] = []
    const { FrameDecoder } = await import('../../src/framing/decoder.js')
    const d = new FrameDecoder()
    for (const chunk of chunks) d.push(chunk, (f) => frames.push(f))
    expect(frames.length).toBe(1000)
    frames.forEach((f, k) => expect(f.every((x) => x === Math.floor(k / 50))).toBe(true))
    duplex.destroy()
  })

  it("overflow 'error': fails the channel with ERR_BUFFER_OVERFLOW, counts it, resets the peer", async () => {
    const [a, b] = await pair({ highWaterMark: 64 * 1024, overflow: 'error' })
    const aErr = errorOf(collect(a).done)
    let failed = false
    void aErr.then(() => (failed = true))
    await fill(a, () => failed || a.stats.overflows > 0)
    const e = await aErr
    expect(isRxnetError(e, 'ERR_BUFFER_OVERFLOW')).toBe(true)
    expect(a.stats.overflows).toBe(1)
    expect(a.writable).toBe(false)
    await a.closed
    // The far side reads what arrived, then sees the reset. (When the RST lands while it still has
    // unread data, Linux reports EOF after that data, so it may see a cut frame instead.)
    const be = await errorOf(collect(b).done)
    expect(isRxnetError(be)).toBe(true)
    expect(['ERR_CONNECTION', 'ERR_TRUNCATED_FRAME']).toContain((be as { code: string }).code)
    await b.closed
    // sending after failure is counted, not thrown
    const dropped = a.stats.dropped
    a.send(msg(0))
    expect(a.stats.dropped).toBe(dropped + 1)
  })

  it("overflow 'drop-newest': keeps the oldest, counts drops, the channel survives", async () => {
    const [a, b] = await pair({ highWaterMark: 64 * 1024, overflow: 'drop-newest' })
    const sent = await fill(a, () => a.stats.dropped >= 100)
    expect(a.stats.overflows).toBeGreaterThanOrEqual(100)
    expect(a.writable).toBe(false)
    const writable = a.whenWritable()
    const got = collect(b) // the far side starts reading
    await writable
    expect(a.writable).toBe(true)
    a.sink.complete()
    const values = await got.done
    const seqs = values.map(seqOf)
    expect(seqs.length + a.stats.dropped).toBe(sent)
    // the survivors are the oldest ones, in order
    expect(seqs).toEqual(seqs.map((_, i) => i))
    expect(seqs.at(-1)).toBe(sent - 1 - a.stats.dropped)
  })

  it("overflow 'drop-oldest': keeps the newest, counts drops, the channel survives", async () => {
    const [a, b] = await pair({ highWaterMark: 64 * 1024, overflow: 'drop-oldest' })
    const sent = await fill(a, () => a.stats.dropped >= 100)
    expect(a.stats.overflows).toBeGreaterThanOrEqual(100)
    const got = collect(b)
    await a.whenWritable()
    a.sink.complete()
    const seqs = (await got.done).map(seqOf)
    expect(seqs.length + a.stats.dropped).toBe(sent)
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]!).toBeGreaterThan(seqs[i - 1]!)
    expect(seqs.at(-1)).toBe(sent - 1) // the newest made it
    expect(seqs.length).toBeLessThan(sent)
  })

  it('a small highWaterMark (below the socket buffer) still drains through whenWritable', async () => {
    const [a, b] = await pair({ highWaterMark: 4096 })
    const total = 20_000
    let blocked!: () => void
    const isBlocked = new Promise<void>((r) => (blocked = r))
    const producer = (async () => {
      for (let i = 0; i < total; i++) {
        a.send(msg(i, 512))
        if (!a.writable) {
          blocked()
          await a.whenWritable()
        }
      }
      a.sink.complete()
    })()
    await isBlocked
    const got = collect(b)
    await producer
    const seqs = (await got.done).map(seqOf)
    expect(seqs.length).toBe(total)
    expect(a.stats.dropped).toBe(0)
    expect(seqs[total - 1]).toBe(total - 1)
  })

  it('whenWritable({ signal }) rejects with ERR_ABORTED, the listener is removed; close({ signal }) aborts the connection', async () => {
    const [a, b] = await pair({ highWaterMark: 64 * 1024, overflow: 'drop-newest' })
    await fill(a, () => !a.writable && a.stats.dropped > 0)
    const ac = new AbortController()
    const waiting = a.whenWritable({ signal: ac.signal })
    ac.abort()
    await expect(waiting).rejects.toMatchObject({ code: 'ERR_ABORTED' })
    await expect(a.whenWritable({ signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'ERR_ABORTED' })
    // an unaborted wait still resolves once the far side reads
    const signal = new AbortController().signal
    const ok = a.whenWritable({ signal })
    collect(b).done.catch(() => {})
    await ok
    expect(getEventListeners(signal, 'abort')).toHaveLength(0)
    // the contract: close() never rejects; a fired signal turns the graceful close into an abort
    await a.close({ signal: AbortSignal.abort('enough') })
    const how = await a.closed
    expect(how).toMatchObject({ code: 'ERR_ABORTED', cause: { code: 'ERR_ABORTED', cause: 'enough' } })
  })

  it('whenWritable rejects with ERR_CLOSED once the channel is closing', async () => {
    const [a] = await pair()
    a.sink.complete()
    await expect(a.whenWritable()).rejects.toMatchObject({ code: 'ERR_CLOSED' })
  })

  it('a reset (RST) from the far side errors source with ERR_CONNECTION, cause attached', async () => {
    const [x, y] = await sockets()
    const ch = socketChannel(y)
    const got = collect(ch)
    const err = errorOf(got.done)
    x.write(encodeFrame(new Uint8Array([1])))
    // let the message be read first: an RST landing on unread data reads as EOF on Linux
    while (got.values.length === 0) await tick()
    x.resetAndDestroy()
    const e = await err
    expect(isRxnetError(e, 'ERR_CONNECTION')).toBe(true)
    expect((e as Error).cause).toMatchObject({ code: 'ECONNRESET' })
    await ch.closed
  })

  it('a refused connection errors source with ERR_CONNECTION (cause ECONNREFUSED) and closes', async () => {
    const server = net.createServer()
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const { port } = server.address() as net.AddressInfo
    await new Promise((r) => server.close(r)) // nobody listens there now
    const ch = socketChannel(net.connect(port, '127.0.0.1'))
    ch.send(new Uint8Array([1])) // handed to the socket before the failure
    const e = await errorOf(collect(ch).done)
    expect(isRxnetError(e, 'ERR_CONNECTION')).toBe(true)
    expect((e as Error).cause).toMatchObject({ code: 'ECONNREFUSED' })
    await ch.closed
    await ch.close()
  })

  it('destroy() of our own socket errors source with ERR_CONNECTION', async () => {
    const [, y] = await sockets()
    const ch = socketChannel(y)
    const err = errorOf(collect(ch).done)
    y.destroy()
    expect(isRxnetError(await err, 'ERR_CONNECTION')).toBe(true)
  })

  it('an oversized declared frame: ERR_FRAME_TOO_LONG, channel closed, process up', async () => {
    const [x, y] = await sockets()
    const ch = socketChannel(y, { maxLength: 1024 })
    const got = collect(ch)
    const err = errorOf(got.done)
    const xClosed = new Promise((r) => x.once('close', r))
    x.on('error', () => {}) // it will be reset
    x.write(Buffer.concat([encodeFrame(new Uint8Array([7])), encodeVarint(1 << 30)]))
    const e = await err
    expect(isRxnetError(e, 'ERR_FRAME_TOO_LONG')).toBe(true)
    expect(e).toMatchObject({ length: 1 << 30, maxLength: 1024 })
    expect(got.values.map((v) => [...v])).toEqual([[7]])
    await ch.closed
    await xClosed
    expect(y.destroyed).toBe(true)
  })

  it('refuses to send a message over maxLength: ERR_ENCODE (cause ERR_FRAME_TOO_LONG) on source, no throw', async () => {
    const [a] = await pair({ maxLength: 100 })
    const err = errorOf(collect(a).done)
    expect(() => a.send(new Uint8Array(101))).not.toThrow()
    const e = await err
    expect(isRxnetError(e, 'ERR_ENCODE')).toBe(true)
    expect((e as Error).cause).toMatchObject({ code: 'ERR_FRAME_TOO_LONG', length: 101, maxLength: 100 })
    expect(await a.closed).toBe(e)
  })

  it('a stream that ends inside a frame errors with ERR_TRUNCATED_FRAME', async () => {
    const [x, y] = await sockets()
    const ch = socketChannel(y)
    const got = collect(ch)
    const err = errorOf(got.done)
    x.end(Buffer.from([1, 9, 5, 1, 2]))
    expect(isRxnetError(await err, 'ERR_TRUNCATED_FRAME')).toBe(true)
    expect(got.values.map((v) => [...v])).toEqual([[9]])
    await ch.closed
  })

  it('emits frames that lie in one chunk without copying (same ArrayBuffer as the chunk)', async () => {
    const [x, y] = await sockets()
    const chunks: Buffer[] = []
    y.prependListener('data', (c: Buffer) => chunks.push(c))
    const ch = socketChannel(y)
    const got = collect(ch)
    const payloads = [new Uint8Array([1, 2, 3]), new Uint8Array(200).fill(4), new Uint8Array([5])]
    x.end(Buffer.concat(payloads.map(encodeFrame)))
    const frames = await got.done
    expect(frames.map((f) => [...f])).toEqual(payloads.map((p) => [...p]))
    expect(chunks).toHaveLength(1) // one small write on loopback arrives as one chunk
    for (const f of frames) expect(f.buffer).toBe(chunks[0]!.buffer)
    expect(frames[1]!.byteOffset).toBe(chunks[0]!.byteOffset + 4 + 2)
  })

  it('sink.error(e) aborts: ERR_ABORTED with cause on our source, ERR_CONNECTION on theirs', async () => {
    const [a, b] = await pair()
    const aErr = errorOf(collect(a).done)
    const bErr = errorOf(collect(b).done)
    const cause = new Error('user gave up')
    a.sink.error(cause)
    const e = await aErr
    expect(isRxnetError(e, 'ERR_ABORTED')).toBe(true)
    expect((e as Error).cause).toBe(cause)
    expect(isRxnetError(await bErr, 'ERR_CONNECTION')).toBe(true)
    await a.closed
  })

  it('a late subscriber after completion gets complete; after failure, the error', async () => {
    const [a, b] = await pair()
    const first = collect(b)
    a.send(new Uint8Array([1]))
    a.sink.complete()
    expect((await first.done).map((m) => [...m])).toEqual([[1]])
    await b.closed
    const late = collect(b)
    expect(await late.done).toEqual([])
    const [c, d] = await pair()
    c.sink.error(new Error('x'))
    await c.closed
    expect(isRxnetError(await errorOf(collect(c).done), 'ERR_ABORTED')).toBe(true)
    await d.close()
  })

  it('holds inbound messages while nobody subscribes (nothing lost)', async () => {
    const [a, b] = await pair()
    for (let i = 0; i < 100; i++) a.send(msg(i, 10))
    await tick()
    await new Promise((r) => setTimeout(r, 20))
    expect(b.stats.messagesIn).toBe(0)
    const got = collect(b)
    a.sink.complete()
    expect((await got.done).map(seqOf)).toEqual([...Array(100).keys()])
  })

  it('frames after the last subscriber left (take(1)) wait for the next subscriber', async () => {
    const [x, y] = await sockets()
    const ch = socketChannel(y)
    // three frames in one write: one chunk on loopback, decoded in one go
    x.end(Buffer.concat([1, 2, 3].map((i) => encodeFrame(new Uint8Array([i])))))
    const first = await firstValueFrom(ch.source)
    expect([...first]).toEqual([1])
    const rest = collect(ch)
    expect((await rest.done).map((m) => [...m])).toEqual([[2], [3]])
  })

  it('a held frame is not lost when the next subscriber also takes just one', async () => {
    const [x, y] = await sockets()
    const ch = socketChannel(y)
    x.end(Buffer.concat([1, 2, 3, 4].map((i) => encodeFrame(new Uint8Array([i])))))
    const got: number[] = []
    for (let i = 0; i < 3; i++) got.push((await firstValueFrom(ch.source))[0]!)
    const rest = collect(ch)
    expect([...got, ...(await rest.done).map((m) => m[0]!)]).toEqual([1, 2, 3, 4])
  })

  it('close() resolves even when nobody ever subscribed to source', async () => {
    const [a, b] = await pair()
    a.send(new Uint8Array([1]))
    await Promise.all([a.close(), b.close()])
    expect(a.stats.messagesOut).toBe(1)
  })

  it('refuses bad options with ERR_INVALID_ARGUMENT', async () => {
    const [x] = await sockets()
    expect(() => socketChannel(x, { highWaterMark: 0 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
    expect(() => socketChannel(x, { overflow: 'drop-all' as 'error' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
  })

  it('removes every listener it added once the socket closes', async () => {
    const [x, y] = await sockets()
    const before = { data: y.listenerCount('data'), end: y.listenerCount('end'), close: y.listenerCount('close'), drain: y.listenerCount('drain') }
    const ch = socketChannel(y)
    collect(ch).done.catch(() => {})
    x.end()
    await ch.closed
    expect({ data: y.listenerCount('data'), end: y.listenerCount('end'), close: y.listenerCount('close'), drain: y.listenerCount('drain') }).toEqual(before)
  })
})
