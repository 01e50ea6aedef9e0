import net from 'node:net'
import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { firstValueFrom } from 'rxjs'
import { afterEach, describe, expect, it } from 'vitest'
import { resolveCodec } from '../../src/codec/index.js'
import { LinkManager, createLink } from '../../src/cluster/links.js'
import { socketChannel } from '../../src/socket.js'
import type { Link } from '../../src/cluster/types.js'

const token = 'f'.repeat(32)
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
    socket.once('data', () => void released.then(() => socket.write(JSON.stringify({ rxnet: 'link', v: 1, token, id: 1, pid }) + '\n')))
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

describe('createLink', () => {
  it('a value the codec refuses, given to sink.next, aborts the link (ERR_ABORTED, cause ERR_ENCODE) instead of throwing; send() still throws', async () => {
    const server = net.createServer()
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    cleanup.push(() => new Promise<void>((r) => server.close(() => r())))
    const accepted = new Promise<net.Socket>((r) => server.once('connection', r))
    const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1')
    const far = await accepted
    cleanup.push(() => {
      client.destroy()
      far.destroy()
    })
    const json = resolveCodec('json')
    const link = createLink(socketChannel(client), 1, process.pid, json)
    const farLink = createLink(socketChannel(far), 0, process.pid, json)
    const received: unknown[] = []
    farLink.source.subscribe({ next: (v) => received.push(v), error: () => {} })
    const failed = new Promise<unknown>((resolve) => link.source.subscribe({ error: resolve }))

    expect(() => link.send(undefined)).toThrow(expect.objectContaining({ code: 'ERR_ENCODE' }))
    link.sink.next({ ok: 1 })
    expect(() => link.sink.next(undefined)).not.toThrow()
    const err = (await failed) as { code?: string; cause?: { code?: string } }
    expect(err.code).toBe('ERR_ABORTED')
    expect(err.cause?.code).toBe('ERR_ENCODE')
    await link.closed
  })
})
