/**
 * The tcpnet README demo on rxnet: start this in a few terminals (npx tsx examples/tcpnet.ts) and
 * every process prints "write to N nodes" and the "message from <id>" lines of the others.
 * Discovery stays on this machine (interface 127.0.0.1). Ctrl-C closes the node cleanly;
 * `--seconds N` stops it after N seconds.
 */
import { randomBytes } from 'node:crypto'
import { createMesh } from 'rxnet'

const mesh = createMesh({ name: 'my-cluster', interface: '127.0.0.1' })

// For every peer connection, pipe its messages to the terminal.
mesh.peers$.subscribe((peer) => {
  peer.source.subscribe({ next: (message) => process.stdout.write(message), error: (e) => console.error(`${peer.id} failed: ${e.code}`) })
})

// Every second, send a message to all other nodes.
const randomId = randomBytes(6).toString('hex')
const timer = setInterval(() => {
  console.log(`write to ${mesh.members.size} nodes`)
  mesh.broadcast(`message from ${randomId}\n`)
}, 1000)

// Pick a random port on loopback (use '0.0.0.0' and drop `interface` for a LAN-wide mesh).
const { port, addresses } = await mesh.listen(0, '127.0.0.1')
console.log(`listening on ${addresses.map((a) => `${a}:${port}`).join(', ')}`)

async function stop(): Promise<void> {
  clearInterval(timer)
  await mesh.close()
}
process.once('SIGINT', stop)
process.once('SIGTERM', stop)
const seconds = process.argv.indexOf('--seconds')
if (seconds > 0) setTimeout(stop, Number(process.argv[seconds + 1]) * 1000)
