// The Channel: a loopback TCP connection as RxJS, framed by socketChannel. The server echoes
// every message in upper case; the client sends 10,000 messages, waiting on whenWritable()
// instead of overflowing its bounded send buffer, counts the echoes, then closes cleanly.
// Run: npx tsx examples/channel.ts
import net from 'node:net'
import { map } from 'rxjs'
import { codecs, mapChannel, socketChannel } from 'rxnet'

const server = net.createServer((socket) => {
  const ch = mapChannel(socketChannel(socket), codecs.utf8.decode, codecs.utf8.encode) // Channel<string>
  ch.source.pipe(map((text) => text.toUpperCase())).subscribe({ next: (text) => ch.send(text), complete: () => ch.sink.complete() })
})
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))

const bytes = socketChannel(net.connect((server.address() as net.AddressInfo).port, '127.0.0.1'), {
  highWaterMark: 256 * 1024, // bytes buffered for sending before the overflow policy applies
  overflow: 'error', // or 'drop-newest' / 'drop-oldest'
})
const client = mapChannel(bytes, codecs.utf8.decode, codecs.utf8.encode)

const total = 10_000
let echoed = 0
let last = ''
const done = new Promise<void>((resolve, reject) =>
  client.source.subscribe({
    next: (text) => {
      echoed++
      last = text
    },
    error: reject, // a typed RxnetError: e.code is ERR_CONNECTION, ERR_FRAME_TOO_LONG, ...
    complete: resolve, // the server closed cleanly after our close
  }),
)

for (let i = 1; i <= total; i++) {
  client.send(`message ${i}`)
  if (!bytes.writable) await bytes.whenWritable() // backpressure, not overflow
}
client.sink.complete() // flush, then close our side
await done
console.log(`echoed ${echoed} of ${total}, last: ${last}`)
console.log(`stats: out ${bytes.stats.messagesOut} msgs / ${bytes.stats.bytesOut} B, in ${bytes.stats.messagesIn}, dropped ${bytes.stats.dropped}`)
await bytes.closed
await new Promise((resolve) => server.close(resolve))
