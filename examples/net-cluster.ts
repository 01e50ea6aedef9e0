/**
 * net-cluster, done right: two cluster workers ask for any port and get two distinct
 * random ports (with node:net they would share one). Run: npx tsx examples/net-cluster.ts
 */
import nodeCluster from 'node:cluster'
import net from 'rxnet/net'

if (nodeCluster.isPrimary) {
  const ports: number[] = []
  for (let i = 0; i < 2; i++) {
    nodeCluster.fork().on('message', (msg: { port: number }) => {
      ports.push(msg.port)
      if (ports.length === 2) {
        console.log(`distinct ports: ${ports[0] !== ports[1]}`)
        for (const w of Object.values(nodeCluster.workers ?? {})) w?.kill() // workers close and exit
      }
    })
  }
} else {
  const server = net.createServer((socket) => socket.end('hello\n'))
  // Any any-port form works: listen(cb), listen(0, cb), listen({ port: 0 }, cb) ... (loopback here).
  server.listen({ port: 0, host: '127.0.0.1' }, () => {
    const { port } = server.address() as net.AddressInfo
    console.log(`worker ${process.pid} listening on port: ${port}`)
    process.send!({ port })
  })
}
