import { getEventListeners } from 'node:events'
import net from 'node:net'
import { PassThrough } from 'node:stream'
import { afterEach, describe, expect, it } from 'vitest'
import { Backoff, backoffDelay, ConnectionError, deadline, delay, frameHandshake, lineHandshake, readHandshake, TimeoutError, waitFor, Waiters } from 'rxnet'
import { encodeFrame } from '../../src/framing/encoder.js'
import { encodeVarint } from '../../src/framing/varint.js'

describe('deadline / waitFor / delay', () => {
  it('settles from the executor; the cleanup runs exactly once; the abort listener is removed', async () => {
    const signal = new AbortController().signal
    let cleanups = 0
    const v = await deadline<number>(({ resolve }) => {
      setImmediate(() => resolve(7))
      return () => cleanups++
    }, { signal, timeout: 10_000 })
    expect(v).toBe(7)
    expect(cleanups).toBe(1)
    expect(getEventListeners(signal, 'abort')).toHaveLength(0)
  })

  it('rejects ERR_TIMEOUT after timeout (or the onTimeout error), ERR_ABORTED on the signal (cause: its reason), at once if already aborted', async () => {
    let cleanups = 0
    await expect(deadline(() => () => cleanups++, { timeout: 5, what: 'x' })).rejects.toMatchObject({ code: 'ERR_TIMEOUT' })
    await expect(deadline(() => {}, { timeout: 5, onTimeout: () => new Error('custom') })).rejects.toThrow('custom')
    const ac = new AbortController()
    const p = deadline(() => () => cleanups++, { signal: ac.signal })
    ac.abort('why')
    await expect(p).rejects.toMatchObject({ code: 'ERR_ABORTED', cause: 'why' })
    expect(cleanups).toBe(2)
    let started = false
    await expect(deadline(() => void (started = true), { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'ERR_ABORTED' })
    expect(started).toBe(false)
  })

  it('an executor that throws rejects with what it threw; one that settles synchronously still gets its cleanup run', async () => {
    await expect(deadline(() => { throw new Error('boom') })).rejects.toThrow('boom')
    let cleaned = false
    await expect(deadline<number>(({ resolve }) => { resolve(1); return () => (cleaned = true) })).resolves.toBe(1)
    expect(cleaned).toBe(true)
  })

  it('waitFor passes the promise through, or stops waiting on signal/timeout; delay is abortable', async () => {
    const forever = new Promise<void>(() => {})
    await expect(waitFor(Promise.resolve(3))).resolves.toBe(3)
    await expect(waitFor(Promise.reject(new Error('no')), { timeout: 1000 })).rejects.toThrow('no')
    await expect(waitFor(forever, { timeout: 5, what: 'forever' })).rejects.toMatchObject({ code: 'ERR_TIMEOUT' })
    await expect(delay(1)).resolves.toBeUndefined()
    const ac = new AbortController()
    const d = delay(60_000, { signal: ac.signal })
    ac.abort()
    await expect(d).rejects.toMatchObject({ code: 'ERR_ABORTED' })
  })

  it('unref: true leaves the timeout out of what keeps the process alive', async () => {
    const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
    const before = timers()
    const ac = new AbortController()
    const held = deadline<void>(() => {}, { timeout: 60_000, signal: ac.signal })
    expect(timers()).toBe(before + 1)
    const unrefd = waitFor(new Promise<void>(() => {}), { timeout: 60_000, signal: ac.signal, unref: true })
    expect(timers()).toBe(before + 1)
    ac.abort()
    await expect(held).rejects.toMatchObject({ code: 'ERR_ABORTED' })
    await expect(unrefd).rejects.toMatchObject({ code: 'ERR_ABORTED' })
    expect(timers()).toBe(before)
  })

  it('Waiters: resolveAll / rejectAll settle everyone; an aborted waiter leaves the list', async () => {
    const w = new Waiters()
    const ac = new AbortController()
    const a = w.wait()
    const b = w.wait(ac.signal)
    expect(w.size).toBe(2)
    ac.abort()
    await expect(b).rejects.toMatchObject({ code: 'ERR_ABORTED' })
    expect(w.size).toBe(1)
    w.resolveAll()
    await expect(a).resolves.toBeUndefined()
    const c = w.wait()
    w.rejectAll(new Error('closed'))
    await expect(c).rejects.toThrow('closed')
    expect(w.size).toBe(0)
  })
})

describe('backoff', () => {
  it('grows by factor from initialDelay, never above maxDelay, jitter taken off the capped value', () => {
    const low = (attempt: number): number => backoffDelay(attempt, { initialDelay: 100, maxDelay: 2000, random: () => 0.999999 })
    const high = (attempt: number): number => backoffDelay(attempt, { initialDelay: 100, maxDelay: 2000, random: () => 0 })
    expect([0, 1, 2, 3, 4, 5, 10, 1000].map(high)).toEqual([100, 200, 400, 800, 1600, 2000, 2000, 2000])
    expect([0, 1, 4, 5, 1000].map(low)).toEqual([50, 100, 800, 1000, 1000]) // jitter 0.5: never below half
    for (let i = 0; i < 200; i++) {
      const d = backoffDelay(i % 30, { initialDelay: 10, maxDelay: 500 })
      expect(d).toBeGreaterThanOrEqual(0)
      expect(d).toBeLessThanOrEqual(500)
    }
    expect(backoffDelay(3, { initialDelay: 100, maxDelay: 10_000, factor: 3, jitter: 0 })).toBe(2700)
  })

  it('Backoff counts attempts and starts over on reset(); bad delays are refused', () => {
    const b = new Backoff({ initialDelay: 100, maxDelay: 1000, jitter: 0 })
    expect([b.next(), b.next(), b.next()]).toEqual([100, 200, 400])
    expect(b.attempt).toBe(3)
    b.reset()
    expect(b.next()).toBe(100)
    expect(() => new Backoff({ initialDelay: -1, maxDelay: 10 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
  })
})

describe('readHandshake', () => {
  const sockets: net.Socket[] = []
  const servers: net.Server[] = []
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy()
    for (const s of servers.splice(0)) await new Promise((r) => s.close(r))
  })

  /** A connected loopback pair: [the side we write on, the side we read the handshake from]. */
  async function pair(): Promise<[net.Socket, net.Socket]> {
    const server = net.createServer()
    servers.push(server)
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const accepted = new Promise<net.Socket>((r) => server.once('connection', r))
    const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1')
    const s = await accepted
    sockets.push(client, s)
    return [client, s]
  }

  it('reads one length-prefixed frame and unshifts what followed it, listeners removed, socket paused', async () => {
    const [w, r] = await pair()
    const before = r.listenerCount('data')
    w.write(Buffer.concat([encodeFrame(Buffer.from('hello')), Buffer.from('rest')]))
    const hello = await readHandshake(r, { timeout: 5000 })
    expect(Buffer.from(hello).toString()).toBe('hello')
    expect(r.listenerCount('data')).toBe(before)
    expect(r.isPaused()).toBe(true)
    const rest = new Promise<Buffer>((resolve) => r.once('data', resolve))
    r.resume()
    expect((await rest).toString()).toBe('rest')
  })

  it('assembles a handshake split into single bytes (pure decoder, no socket)', () => {
    const bytes = Buffer.concat([encodeFrame(Buffer.alloc(300, 7)), Buffer.from([1, 2])])
    const d = frameHandshake(1024)
    let r = null
    for (let i = 0; i < bytes.length && r === null; i++) r = d.push(bytes.subarray(i, i + 1))
    expect(r).not.toBeNull()
    expect(r!.message).toEqual(Buffer.alloc(300, 7))
    expect(() => frameHandshake(10).push(encodeVarint(11))).toThrow(expect.objectContaining({ code: 'ERR_HANDSHAKE' }))
    const line = lineHandshake(100)
    expect(line.push(Buffer.from('{"a":'))).toBeNull()
    expect(line.push(Buffer.from('1}\nnext'))).toMatchObject({ message: '{"a":1}' })
    expect(() => lineHandshake(4).push(Buffer.from('too long'))).toThrow(expect.objectContaining({ code: 'ERR_HANDSHAKE' }))
  })

  it('an oversized declared length fails before buffering; a silent peer times out; an early end is truncated; all ERR_HANDSHAKE', async () => {
    const [w, r] = await pair()
    w.write(encodeVarint(1 << 30))
    await expect(readHandshake(r, { timeout: 5000, maxBytes: 512 })).rejects.toMatchObject({ code: 'ERR_HANDSHAKE' })
    const [, silent] = await pair()
    await expect(readHandshake(silent, { timeout: 20 })).rejects.toMatchObject({ code: 'ERR_HANDSHAKE', cause: { code: 'ERR_TIMEOUT' } })
    expect(silent.listenerCount('data')).toBe(0)
    // onTimeout builds the deadline's error (the mesh keeps ERR_TIMEOUT for silence)
    await expect(readHandshake(silent, { timeout: 20, onTimeout: () => new TimeoutError('handshake', 20) })).rejects.toMatchObject({ code: 'ERR_TIMEOUT' })
    const [w3, r3] = await pair()
    w3.end(Buffer.from([5, 1, 2]))
    await expect(readHandshake(r3, { timeout: 5000 })).rejects.toMatchObject({ code: 'ERR_HANDSHAKE' })
  })

  it('a socket that fails first rejects with lost(...); a custom decoder is used as given; the signal stops it', async () => {
    const stream = new PassThrough()
    const lost = readHandshake(stream, { timeout: 5000, lost: (m, cause) => new ConnectionError(m, cause) })
    stream.destroy(new Error('reset'))
    await expect(lost).rejects.toMatchObject({ code: 'ERR_CONNECTION', cause: { message: 'reset' } })
    const lines = new PassThrough()
    const p = readHandshake(lines, { timeout: 5000, decoder: lineHandshake(64) })
    lines.write('hi\n')
    await expect(p).resolves.toBe('hi')
    await expect(readHandshake(new PassThrough(), { timeout: 5000, signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'ERR_ABORTED' })
  })
})
