/**
 * `rxnet demo`: until the mesh lands, shows the framing hot path: two framed channels over a
 * loopback TCP connection exchanging messages.
 * @module
 */
import net from 'node:net'
import { socketChannel } from '../socket.js'
import { utf8 } from '../codec/index.js'

export async function run(_args: string[]): Promise<number> {
  const server = net.createServer((socket) => {
    const ch = socketChannel(socket)
    ch.source.subscribe({ next: (m) => ch.send(utf8.encode(`echo: ${utf8.decode(m)}`)), complete: () => ch.sink.complete() })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as net.AddressInfo
  const ch = socketChannel(net.connect(port, '127.0.0.1'))
  const done = new Promise<void>((resolve, reject) => {
    let n = 0
    ch.source.subscribe({
      next: (m) => {
        console.log(utf8.decode(m))
        if (++n === 3) ch.sink.complete()
      },
      error: reject,
      complete: resolve,
    })
  })
  for (const word of ['one', 'two', 'three']) ch.send(utf8.encode(word))
  await done
  server.close()
  return 0
}
