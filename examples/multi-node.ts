/**
 * multi-node, done right: HTTP on one port served by 4 processes (the primary and 3 workers),
 * and a direct link between every pair of processes carrying messages.
 * Run: npx tsx examples/multi-node.ts   (loopback only; exits by itself)
 */
import http from 'node:http'
import { cluster } from 'rxnet'

const node = cluster({ workers: 3 })

const server = http.createServer((req, res) => res.end(`process ${node.id} (pid ${process.pid})\n`))
const { port } = await node.serve(server, { port: 0, host: '127.0.0.1', primaryServes: true })

node.links$.subscribe((link) => {
  link.source.subscribe((msg) => console.log(`[${node.id}] from ${link.id}:`, msg))
  link.send({ hello: `from ${node.id}` })
})

if (node.isPrimary) {
  // Wait until every worker serves, then ask the cluster a few times on fresh connections.
  let listening = 0
  node.workers$.subscribe(async (event) => {
    if (event.type !== 'listening' || ++listening < node.size) return
    await new Promise((r) => setTimeout(r, 200)) // let the link greetings print first
    const answers = new Set<string>()
    for (let i = 0; i < 40 && answers.size < node.size + 1; i++) {
      const res = await fetch(`http://127.0.0.1:${port}/`, { headers: { connection: 'close' } })
      answers.add((await res.text()).trim())
    }
    console.log(`answered by ${answers.size} processes:\n  ${[...answers].sort().join('\n  ')}`)
    await node.close() // drains and stops every worker, then this process has nothing left to do
  })
}
