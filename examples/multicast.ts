// Two members of a sealed multicast group on this machine (interface 127.0.0.1: nothing leaves
// the host). One sends a few messages; the other prints them with their sender, then both close.
// Run: npx tsx examples/multicast.ts
import { multicast } from 'rxnet'

const options = { group: '239.255.0.2', port: 4455, interface: '127.0.0.1', ttl: 1, secret: 'example secret' }
const listener = multicast(options)
const speaker = multicast(options)
await Promise.all([listener.ready, speaker.ready])

const done = new Promise<void>((resolve) => {
  let n = 0
  listener.source.subscribe(({ data, from }) => {
    console.log(`${from.address}:${from.port} [${from.senderId}] ${new TextDecoder().decode(data)}`)
    if (++n === 3) resolve()
  })
})

for (const line of ['hello', 'group', 'bye']) speaker.send(new TextEncoder().encode(line)) // packed into one datagram
await done
console.log('speaker sent', speaker.stats.messagesOut, 'messages in', speaker.stats.datagramsOut, 'datagram(s)')
await Promise.all([speaker.close(), listener.close()])
