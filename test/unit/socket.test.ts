import net from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { socketChannel, type SocketChannel } from 'rxnet'

const open: { close(): unknown }[] = []
afterEach(async () => {
  for (const o of open.splice(0)) await o.close()
})

async function pair(options = {}): Promise<[SocketChannel, SocketChannel]> {
  const server = net.createServer()
  open.push({ close: () => new Promise((r) => server.close(r)) })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r))
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1')
  const a = socketChannel(client, options)
  const b = socketChannel(await accepted, options)
  open.push({ close: () => Promise.all([a.close(), b.close()]) })
  return [a, b]
}

describe('socketChannel', () => {
  it('carries messages in order, small and large, and completes on clean close', async () => {
    const [a, b] = await pair()
    const got: Uint8Array[] = []
    const done = new Promise<void>((resolve, reject) => b.source.subscribe({ next: (m) => got.push(m), error: reject, complete: resolve }))
    const sent: Uint8Array[] = []
    for (let i = 0; i < 1000; i++) {
      const m = new Uint8Array(i % 7 === 0 ? 70_000 : i % 300).fill(i & 0xff)
      sent.push(m)
      a.send(m)
      if (!a.writable) await a.whenWritable()
    }
    a.sink.complete()
    await done
    expect(got.length).toBe(sent.length)
    for (let i = 0; i < sent.length; i++) expect(Buffer.compare(got[i]!, sent[i]!)).toBe(0)
    expect(a.stats.messagesOut).toBe(1000)
    expect(b.stats.messagesIn).toBe(1000)
  })
})
