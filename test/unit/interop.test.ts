import net from 'node:net'
import * as lp from 'it-length-prefixed'
import { pipe } from 'it-pipe'
import { firstValueFrom, Subject } from 'rxjs'
import { Uint8ArrayList } from 'uint8arraylist'
import { afterEach, describe, expect, it } from 'vitest'
import { createChannel, fromByteDuplex, fromDuplex, isRxnetError, socketChannel, toDuplex, type Duplex } from 'rxnet'

const open: (() => unknown)[] = []
afterEach(async () => {
  for (const close of open.splice(0).reverse()) await close()
})

/** A loopback echo server speaking framed messages through socketChannel. */
async function echoServer(): Promise<number> {
  const server = net.createServer((s) => {
    const ch = socketChannel(s)
    ch.source.subscribe({ next: (m) => ch.send(m), complete: () => ch.sink.complete(), error: () => {} })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  open.push(() => new Promise((r) => server.close(r)))
  return (server.address() as net.AddressInfo).port
}

/** An in-memory async queue: push / end / fail, iterate once. */
function asyncQueue<T>(): { push(v: T): void; end(): void; fail(e: unknown): void; iterable: AsyncIterable<T>; pulls: number } {
  const items: T[] = []
  let ended = false
  let error: { e: unknown } | null = null
  let wake: (() => void) | null = null
  const q = {
    pulls: 0,
    push(v: T) {
      items.push(v)
      wake?.()
    },
    end() {
      ended = true
      wake?.()
    },
    fail(e: unknown) {
      error = { e }
      wake?.()
    },
    iterable: {
      async *[Symbol.asyncIterator]() {
        for (;;) {
          q.pulls++
          while (items.length === 0 && !ended && error === null) await new Promise<void>((r) => (wake = r))
          if (items.length > 0) yield items.shift() as T
          else if (error !== null) throw (error as { e: unknown }).e
          else return
        }
      },
    },
  }
  return q
}

/** Two connected in-memory byte duplexes (what one writes, the other reads), libp2p-stream style. */
function bytePair(): [Duplex<Uint8Array | Uint8ArrayList>, Duplex<Uint8Array | Uint8ArrayList>] {
  const ab = asyncQueue<Uint8Array | Uint8ArrayList>()
  const ba = asyncQueue<Uint8Array | Uint8ArrayList>()
  const side = (inQ: typeof ab, outQ: typeof ab): Duplex<Uint8Array | Uint8ArrayList> => ({
    source: inQ.iterable,
    async sink(src) {
      try {
        for await (const chunk of src) outQ.push(chunk)
        outQ.end()
      } catch (e) {
        outQ.fail(e)
        throw e
      }
    },
  })
  return [side(ba, ab), side(ab, ba)]
}

const text = (b: Uint8Array | Uint8ArrayList): string => Buffer.from(b.subarray()).toString()
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s)

describe('toDuplex', () => {
  it('pipes through a socketChannel with it-pipe (echo over loopback TCP)', async () => {
    const port = await echoServer()
    const ch = socketChannel(net.connect(port, '127.0.0.1'))
    const words = Array.from({ length: 500 }, (_, i) => `message ${i}`)
    const got = await pipe(
      words.map(bytes),
      toDuplex(ch),
      async (src) => {
        const out: string[] = []
        for await (const m of src) out.push(text(m))
        return out
      },
    )
    expect(got).toEqual(words)
    await ch.closed
  })

  it('interoperates with it-length-prefixed on the far side of a real socket', async () => {
    // the far side is plain it-length-prefixed over the raw socket; we are a socketChannel duplex
    const server = net.createServer({ allowHalfOpen: true }) // it answers after our end
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    open.push(() => new Promise((r) => server.close(r)))
    const farFrames: string[] = []
    server.on('connection', (s) => {
      // (a socket's own async iterator destroys it when the loop ends, so feed a queue instead)
      const chunks = asyncQueue<Uint8Array>()
      s.on('data', (c: Buffer) => chunks.push(c))
      s.on('end', () => chunks.end())
      void (async () => {
        for await (const frame of lp.decode(chunks.iterable)) farFrames.push(text(frame))
        s.end(Buffer.concat([...lp.encode([bytes('one'), bytes('two')])].map((c) => c.subarray())))
      })()
    })
    const ch = socketChannel(net.connect((server.address() as net.AddressInfo).port, '127.0.0.1'))
    const duplex = toDuplex(ch)
    const replies: string[] = []
    const reading = (async () => {
      for await (const m of duplex.source) replies.push(text(m))
    })()
    await duplex.sink((async function* () {
      yield bytes('hello')
      yield new Uint8Array(100_000).fill(0x61)
    })())
    await reading
    expect(farFrames[0]).toBe('hello')
    expect(farFrames[1]!.length).toBe(100_000)
    expect(replies).toEqual(['one', 'two'])
  })

  it('a slow consumer of a socketChannel pushes back (pauses) instead of overflowing; nothing lost', async () => {
    const server = net.createServer()
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    open.push(() => new Promise((r) => server.close(r)))
    const accepted = new Promise<net.Socket>((r) => server.once('connection', r))
    const sender = socketChannel(net.connect((server.address() as net.AddressInfo).port, '127.0.0.1'))
    const receiver = socketChannel(await accepted)
    const total = 5000
    for (let i = 0; i < total; i++) {
      sender.send(bytes(`m${i}`))
      if (!sender.writable) await sender.whenWritable()
    }
    sender.sink.complete()
    // highWaterMark 16 with the default 'error' policy: only pausing keeps this from failing
    const got: string[] = []
    let i = 0
    for await (const m of toDuplex(receiver, { highWaterMarkMessages: 16 }).source) {
      got.push(text(m))
      if (++i % 100 === 0) await new Promise((r) => setImmediate(r)) // slow reader
    }
    expect(got.length).toBe(total)
    expect(got[0]).toBe('m0')
    expect(got[total - 1]).toBe(`m${total - 1}`)
    expect(new Set(got).size).toBe(total)
  })

  it.each([
    ['drop-oldest', [6, 7, 8, 9]],
    ['drop-newest', [0, 1, 2, 3]],
  ] as const)("buffers at most highWaterMark for a slow consumer ('%s')", async (overflow, expected) => {
    const subject = new Subject<number>()
    const duplex = toDuplex(createChannel(subject, { next() {}, error() {}, complete() {} }), { highWaterMarkMessages: 4, overflow })
    const it = duplex.source[Symbol.asyncIterator]()
    for (let i = 0; i < 10; i++) subject.next(i)
    subject.complete()
    const got: number[] = []
    for (let r = await it.next(); r.done !== true; r = await it.next()) got.push(r.value)
    expect(got).toEqual(expected)
  })

  it("overflow 'error' throws ERR_BUFFER_OVERFLOW from the iterator and unsubscribes", async () => {
    const subject = new Subject<number>()
    const duplex = toDuplex(createChannel(subject, { next() {}, error() {}, complete() {} }), { highWaterMarkMessages: 2 })
    const it = duplex.source[Symbol.asyncIterator]()
    for (let i = 0; i < 3; i++) subject.next(i)
    await expect(it.next()).rejects.toMatchObject({ code: 'ERR_BUFFER_OVERFLOW' })
    await Promise.resolve()
    expect(subject.observed).toBe(false)
  })

  it('breaking out of for-await unsubscribes from the channel', async () => {
    const subject = new Subject<number>()
    const duplex = toDuplex(createChannel(subject, { next() {}, error() {}, complete() {} }))
    const reading = (async () => {
      for await (const v of duplex.source) if (v === 2) break
    })()
    await Promise.resolve()
    for (let i = 0; i < 5; i++) subject.next(i)
    await reading
    expect(subject.observed).toBe(false)
  })

  it('sink waits on whenWritable() when the channel is not writable', async () => {
    const sent: number[] = []
    let writable = false
    let release!: () => void
    const released = new Promise<void>((r) => (release = r))
    const ch = Object.assign(createChannel<number>(new Subject<number>(), { next: (v) => sent.push(v), error() {}, complete() {} }), {
      get writable() {
        return writable
      },
      whenWritable: () => released,
    })
    const sinking = toDuplex(ch).sink((async function* () {
      yield 1
      yield 2
    })())
    await new Promise((r) => setImmediate(r))
    expect(sent).toEqual([])
    writable = true
    release()
    await sinking
    expect(sent).toEqual([1, 2])
  })

  it('a throwing source aborts the channel with that error', async () => {
    const errors: unknown[] = []
    const ch = createChannel<number>(new Subject<number>(), { next() {}, error: (e) => errors.push(e), complete() {} })
    const boom = new Error('boom')
    await expect(toDuplex(ch).sink((async function* () {
      yield 1
      throw boom
    })())).rejects.toBe(boom)
    expect(errors).toEqual([boom])
  })
})

describe('fromDuplex / fromByteDuplex', () => {
  it('round-trips with it-length-prefixed through it-pipe on the far side, any chunking', async () => {
    const [near, far] = bytePair()
    const ch = fromByteDuplex(near)
    // the far side: a libp2p-style echo through it-length-prefixed, re-chunked into Uint8ArrayLists
    const farDone = pipe(
      far.source,
      (src) => lp.decode(src),
      async function* (frames) {
        for await (const f of frames) {
          const wire = lp.encode.single(f).subarray()
          const cut = wire.length >> 1
          yield new Uint8ArrayList(wire.subarray(0, cut))
          yield new Uint8ArrayList(wire.subarray(cut, cut + 1), wire.subarray(cut + 1))
        }
      },
      (src) => far.sink(src),
    )
    const got: string[] = []
    const done = new Promise<void>((resolve, reject) => ch.source.subscribe({ next: (m) => got.push(text(m)), error: reject, complete: resolve }))
    const words = Array.from({ length: 300 }, (_, i) => 'x'.repeat(i))
    for (const w of words) ch.send(bytes(w))
    await ch.close()
    await done
    await farDone
    expect(got).toEqual(words)
  })

  it('fromByteDuplex packs what is sent in one tick into one chunk for the duplex sink', async () => {
    const chunks: Uint8Array[] = []
    const ch = fromByteDuplex({ source: [], sink: async (src) => { for await (const c of src) chunks.push(c as Uint8Array) } })
    for (let i = 0; i < 100; i++) ch.send(Uint8Array.of(i))
    await ch.close()
    expect(chunks.length).toBe(1)
    expect([...lp.decode(chunks)].map((f) => f.subarray()[0])).toEqual([...Array(100).keys()])
  })

  it('is pull-based: the duplex source is not read while nobody subscribes', async () => {
    const q = asyncQueue<string>()
    const ch = fromDuplex<string>({ source: q.iterable, sink: async () => {} })
    q.push('a')
    q.push('b')
    await new Promise((r) => setImmediate(r))
    expect(q.pulls).toBe(0)
    const got: string[] = []
    const sub = ch.source.subscribe((s) => got.push(s))
    await new Promise((r) => setImmediate(r))
    expect(got).toEqual(['a', 'b'])
    sub.unsubscribe()
    q.push('c') // read by the pending pull, held for the next subscriber
    q.end()
    const rest: string[] = []
    await new Promise<void>((resolve) => ch.source.subscribe({ next: (s) => rest.push(s), complete: resolve }))
    expect(rest).toEqual(['c'])
  })

  it('fromByteDuplex: frames after a take(1) in the same chunk wait for the next subscriber', async () => {
    const chunk = new Uint8Array(Buffer.concat([1, 2, 3].map((i) => lp.encode.single(Uint8Array.of(i)).subarray())))
    const ch = fromByteDuplex({ source: [chunk], sink: async () => {} })
    expect([...(await firstValueFrom(ch.source))]).toEqual([1])
    const rest: number[] = []
    await new Promise<void>((resolve, reject) => ch.source.subscribe({ next: (m) => rest.push(m[0]!), error: reject, complete: resolve }))
    expect(rest).toEqual([2, 3])
  })

  it('sink.complete() ends what the duplex sink reads; close() waits for it', async () => {
    const written: string[] = []
    const ch = fromDuplex<string>({ source: [], sink: async (src) => { for await (const s of src) written.push(s) } })
    ch.send('a')
    ch.send('b')
    await ch.close()
    expect(written).toEqual(['a', 'b'])
    ch.send('late') // ignored after close
    expect(written).toEqual(['a', 'b'])
  })

  it('sink.error(e) makes the duplex sink see ERR_ABORTED; source errors the same', async () => {
    let sinkError: unknown
    const ch = fromDuplex<string>({
      source: asyncQueue<string>().iterable,
      sink: async (src) => {
        try {
          for await (const _ of src) void _
        } catch (e) {
          sinkError = e
          throw e
        }
      },
    })
    const srcErr = new Promise<unknown>((resolve) => ch.source.subscribe({ error: resolve }))
    ch.sink.error(new Error('stop'))
    const e = await srcErr
    expect(isRxnetError(e, 'ERR_ABORTED')).toBe(true)
    await new Promise((r) => setImmediate(r))
    expect(isRxnetError(sinkError, 'ERR_ABORTED')).toBe(true)
  })

  it('a failing duplex source errors source with ERR_CONNECTION and the cause', async () => {
    const q = asyncQueue<string>()
    const ch = fromDuplex<string>({ source: q.iterable, sink: async () => {} })
    const err = new Promise<unknown>((resolve) => ch.source.subscribe({ error: resolve }))
    const cause = new Error('stream reset')
    q.fail(cause)
    const e = await err
    expect(isRxnetError(e, 'ERR_CONNECTION')).toBe(true)
    expect((e as Error).cause).toBe(cause)
  })

  it('a failing duplex sink errors source with ERR_CONNECTION and the cause; sends are then ignored', async () => {
    const cause = new Error('stream reset by peer')
    const ch = fromDuplex<string>({
      source: asyncQueue<string>().iterable,
      sink: async (src) => {
        for await (const _ of src) throw cause
      },
    })
    const err = new Promise<unknown>((resolve) => ch.source.subscribe({ error: resolve }))
    ch.send('boom')
    const e = await err
    expect(isRxnetError(e, 'ERR_CONNECTION')).toBe(true)
    expect((e as Error).cause).toBe(cause)
    expect(ch.writable).toBe(false)
    await expect(ch.whenWritable()).rejects.toMatchObject({ code: 'ERR_CLOSED' })
  })

  it('fromByteDuplex: ERR_FRAME_TOO_LONG on the declared length, ERR_TRUNCATED_FRAME on a cut stream', async () => {
    const tooLong = fromByteDuplex({ source: [Uint8Array.from([0x80, 0x80, 0x04])], sink: async () => {} }, { maxLength: 1024 })
    await expect(new Promise((resolve, reject) => tooLong.source.subscribe({ error: reject, complete: () => resolve(null) }))).rejects.toMatchObject({ code: 'ERR_FRAME_TOO_LONG' })
    const cut = fromByteDuplex({ source: [new Uint8ArrayList(Uint8Array.from([3, 1]))], sink: async () => {} })
    await expect(new Promise((resolve, reject) => cut.source.subscribe({ error: reject, complete: () => resolve(null) }))).rejects.toMatchObject({ code: 'ERR_TRUNCATED_FRAME' })
  })

  it("bounds the outbound buffer: 'drop-newest' drops and writable turns false", async () => {
    const release = asyncQueue<void>()
    const written: number[] = []
    const ch = fromDuplex<number>(
      {
        source: [],
        sink: async (src) => {
          for await (const v of src) {
            written.push(v)
            for await (const _ of release.iterable) break // one message per release
          }
        },
      },
      { highWaterMarkMessages: 4, overflow: 'drop-newest' },
    )
    for (let i = 0; i < 10; i++) ch.send(i)
    expect(ch.writable).toBe(false)
    for (let i = 0; i < 10; i++) release.push()
    await ch.close()
    expect(written.length).toBeLessThan(10)
    expect(written).toEqual(written.map((_, i) => i))
  })

  it('refuses bad options with ERR_INVALID_ARGUMENT', () => {
    expect(() => fromDuplex({ source: [], sink: async () => {} }, { highWaterMarkMessages: 0 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
    // 0.1's message-count `highWaterMark` is refused with a pointer to the new name (highWaterMark is bytes)
    expect(() => fromDuplex({ source: [], sink: async () => {} }, { highWaterMark: 4 } as object)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('highWaterMarkMessages') }))
    expect(() => fromByteDuplex({ source: [], sink: async () => {} }, { maxLenght: 4 } as object)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('maxLength') }))
    expect(() => toDuplex(createChannel(new Subject(), { next() {}, error() {}, complete() {} }), { overflow: 'nope' as 'error' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
  })
})
