// Framing and codecs as RxJS operators over a plain TCP socket on loopback: values are encoded
// (JSON), length-prefixed with frame(), written in arbitrary pieces, and come back out of
// unframe() + decode() whole, on the it-length-prefixed wire format.
// Run: npx tsx examples/framing.ts
import net from 'node:net'
import { fromEvent, lastValueFrom, of, takeUntil, toArray } from 'rxjs'
import { decode, encode, frame, unframe } from 'rxnet/operators'

const server = net.createServer((socket) => {
  // the byte stream as an Observable of chunks, until the client ends it
  fromEvent<Buffer>(socket, 'data')
    .pipe(takeUntil(fromEvent(socket, 'end')), unframe({ maxLength: 64 * 1024 }), decode<{ n: number; text: string }>('json'), toArray())
    .subscribe((values) => {
      for (const v of values) console.log(`received #${v.n}: ${v.text}`)
      socket.end()
    })
})
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1')

const bytes = await lastValueFrom(of({ n: 1, text: 'hello' }, { n: 2, text: 'framed' }, { n: 3, text: 'world' }).pipe(encode('json'), frame(), toArray()))
const wire = Buffer.concat(bytes)
console.log(`sending ${bytes.length} frames, ${wire.length} bytes, in 3-byte pieces`)
for (let i = 0; i < wire.length; i += 3) client.write(wire.subarray(i, i + 3)) // frames split anywhere still decode
client.end()

await new Promise((resolve) => client.once('close', resolve))
await new Promise((resolve) => server.close(resolve))
