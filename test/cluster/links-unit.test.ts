import net from 'node:net'
import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { firstValueFrom } from 'rxjs'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { resolveCodec } from '../../src/codec/index.js'
import { LinkManager } from '../../src/cluster/links.js'
import { createLink } from '../../src/cluster/link.js'
import type { Link } from '../../src/cluster/types.js'

const token = 'f'.repeat(32)

async function until(cond: () => boolean, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out')
    await new Promise((r) => setImmediate(r))
  }
}
const cleanup: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c()
})

/** A fake link server for id 1 running as `pid`: answers the handshake when `release()` is called. */
async function fakePeer(dir: string, pid: number): Promise<{ path: string; release(): void; closed: Promise<void> }> {
  const file = path.join(dir, `1-${pid}.sock`)
  let release!: () => void
  const released = new Promise<void>((r) => (release = r))
  const sockets = new Set<net.Socket>()
  let onClosed!: () => void
  const closed = new Promise<void>((r) => (onClosed = r))
  const server = net.createServer((socket) => {
    sockets.add(socket)
    socket.once('close', onClosed)
    socket.on('error', () => {})
    socket.once('data', () => void released.then(() => socket.write(JSON.stringify({ rxnet: 'link', v: 2, token, id: 1, pid }) + '\n')))
  })
  await new Promise<void>((resolve) => server.listen(file, resolve))
  cleanup.push(() => {
    for (const s of sockets) s.destroy()
    return new Promise<void>((r) => server.close(() => r()))
  })
  return { path: file, release, closed }
}

describe('cluster links (in-process)', () => {
  it('a dial to a replaced process that completes after the dial to its successor does not replace the new link', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'rxl-'))
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }))
    const old = await fakePeer(dir, 1001)
    const successor = await fakePeer(dir, 1002)
    const manager = new LinkManager({ id: 2, path: path.join(dir, '2.sock'), token, maxId: 2, codec: resolveCodec('json'), channel: {}, closeTimeout: 500 })
    await manager.listen()
    cleanup.push(() => manager.close())
    const links: Link[] = []
    manager.links$.subscribe((l) => links.push(l))

    manager.roster([{ id: 1, pid: 1001, path: old.path }]) // dial to the old process: its answer is late
    manager.roster([{ id: 1, pid: 1002, path: successor.path }]) // replaced: dial the successor
    successor.release()
    await firstValueFrom(manager.links$)
    old.release() // the old process answers now: its connection is dropped, not adopted
    await old.closed
    expect(links.map((l) => l.pid)).toEqual([1002])
    const current: Link[] = []
    manager.links$.subscribe((l) => current.push(l)).unsubscribe()
    expect(current.map((l) => l.pid)).toEqual([1002])
  })
})

describe('LinkManager accepting side (worker: roster over IPC)', () => {
  it('a handshake from an id the roster does not list yet waits for the roster and is adopted once the roster lists that pid', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'rxl-'))
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }))
    const manager = new LinkManager({ id: 1, path: path.join(dir, '1.sock'), token, maxId: 3, codec: resolveCodec('json'), channel: {}, closeTimeout: 500 })
    await manager.listen()
    cleanup.push(() => manager.close())
    const errors: string[] = []
    manager.errors.subscribe((e) => errors.push(e.code))
    const links: Link[] = []
    manager.links$.subscribe((l) => links.push(l))
    const dial = (pid: number): net.Socket => {
      const s = net.connect(manager.path)
      s.on('error', () => {})
      cleanup.push(() => void s.destroy())
      s.write(JSON.stringify({ rxnet: 'link', v: 2, token, id: 2, pid }) + '\n')
      return s
    }
    const checked = vi.spyOn(manager as unknown as { whenRostered(id: number, pid: number, ms: number): Promise<void> }, 'whenRostered')
    const early = dial(4242)
    const answered = new Promise((r) => early.once('data', r))
    await until(() => checked.mock.calls.length === 1) // the handshake was read and checked against the roster
    await new Promise((r) => setImmediate(r))
    expect(links).toEqual([]) // not rostered yet: waiting, not refused
    expect(errors).toEqual([])
    manager.roster([{ id: 2, pid: 4242, path: path.join(dir, 'nowhere.sock') }])
    await answered
    await until(() => links.length === 1)
    expect(links[0]!.pid).toBe(4242)
    expect(manager.stats.linksRefused).toBe(0)
    expect(errors).toEqual([])
  })
})

/** Two ends of one loopback TCP connection. */
async function socketPair(allowHalfOpen = false): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer({ allowHalfOpen })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  cleanup.push(() => new Promise<void>((r) => server.close(() => r())))
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r))
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1')
  const far = await accepted
  cleanup.push(() => {
    client.destroy()
    far.destroy()
  })
  return [client, far]
}

async function linkPair(codec = resolveCodec('json')): Promise<[Link, Link, net.Socket]> {
  const [a, b] = await socketPair()
  return [createLink(a, 1, process.pid, codec), createLink(b, 0, process.pid, codec), b]
}

describe('createLink', () => {
  it('a value the codec refuses, given to send or sink.next, fails the link with ERR_ENCODE instead of throwing', async () => {
    for (const codec of [resolveCodec('json'), resolveCodec('msgpack')]) {
      const [link, farLink] = await linkPair(codec)
      farLink.source.subscribe({ error: () => {} })
      const failed = new Promise<unknown>((resolve) => link.source.subscribe({ error: resolve }))
      const bad = codec.name === 'json' ? undefined : Symbol('not encodable')
      expect(() => link.send(bad)).not.toThrow()
      expect(() => link.sink.next(bad)).not.toThrow()
      expect(await failed).toMatchObject({ code: 'ERR_ENCODE' })
      expect(await link.closed).toMatchObject({ code: 'ERR_ENCODE' })
      link.send({ after: 1 }) // after the end: dropped and counted
      expect(link.stats.dropped).toBeGreaterThan(0)
    }
  })

  it('json: the values sent in one tick travel as one frame, in order, and are counted as values', async () => {
    const [link, farLink, farSocket] = await linkPair()
    const got: unknown[] = []
    farLink.source.subscribe({ next: (v) => got.push(v), error: () => {} })
    let chunks = 0
    farSocket.on('data', () => chunks++)
    for (let i = 0; i < 1000; i++) link.send({ i })
    await new Promise<void>((r) => farLink.source.subscribe({ next: (v) => (v as { i: number }).i === 999 && r(), error: () => {} }))
    expect(got).toEqual(Array.from({ length: 1000 }, (_, i) => ({ i })))
    expect(link.stats.messagesOut).toBe(1000)
    expect(farLink.stats.messagesIn).toBe(1000)
    expect(chunks).toBe(1)
  })

  it('inbound values are held while nobody subscribes, also the rest of a batch a subscriber left mid-frame', async () => {
    const [link, farLink] = await linkPair()
    for (let i = 0; i < 10; i++) link.send(i)
    await new Promise((r) => setTimeout(r, 50)).then(() => undefined) // (only lets the frame cross; nothing is asserted on time)
    expect(await firstValueFrom(farLink.source)).toBe(0)
    const rest: unknown[] = []
    await new Promise<void>((r) => farLink.source.subscribe({ next: (v) => (rest.push(v), v === 9 && r()), error: () => {} }))
    expect(rest).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9])
  })

  it('sink.error(e) aborts with ERR_ABORTED, cause e; closed resolves with it; close() on a clean end resolves undefined', async () => {
    const [link, farLink] = await linkPair()
    const cause = new Error('stop')
    const failed = new Promise<unknown>((resolve) => link.source.subscribe({ error: resolve }))
    link.sink.error(cause)
    expect(await failed).toMatchObject({ code: 'ERR_ABORTED', cause })
    expect(await link.closed).toMatchObject({ code: 'ERR_ABORTED' })
    await farLink.closed

    const [a, b] = await linkPair()
    a.source.subscribe({ error: () => {} })
    b.source.subscribe({ error: () => {} })
    await a.close()
    expect(await a.closed).toBeUndefined()
    expect(await b.closed).toBeUndefined()
  })

  it('close({ timeout }) aborts when the far side never ends its side; await using closes', async () => {
    const [a] = await socketPair(true) // the far side never ends its side
    const link = createLink(a, 1, process.pid, resolveCodec('json'))
    link.source.subscribe({ error: () => {} })
    await link.close({ timeout: 50 })
    expect(await link.closed).toMatchObject({ code: 'ERR_ABORTED', cause: { code: 'ERR_TIMEOUT' } })
    {
      const [c, d] = await linkPair()
      d.source.subscribe({ error: () => {} })
      await using disposable = c
      disposable.send({ bye: 1 })
    }
  })
})
