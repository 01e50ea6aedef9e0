// The same bus code on NATS: two clients talk through a nats-server, with a durable topic read
// back from its history. Run: npx tsx examples/nats.ts [nats://host:port]
// Without a URL it starts its own nats-server (Debian: apt-get install nats-server) on 127.0.0.1
// with JetStream in a temp dir, and stops it and removes the dir at the end.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { firstValueFrom, lastValueFrom, of, take, toArray } from 'rxjs'
import { connectBus } from 'rxnet'
import { reply, request } from 'rxnet/operators'

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo
      s.close(() => resolve(port))
    })
  })
}

/** Starts nats-server bound to 127.0.0.1 with JetStream; resolves with its URL and a stop(). */
async function ownServer(): Promise<{ url: `nats://${string}`; stop: () => Promise<void> }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rxnet-example-nats-'))
  const port = await freePort()
  const conf = path.join(dir, 'nats.conf')
  writeFileSync(conf, `host: 127.0.0.1\nport: ${port}\njetstream { store_dir: "${dir}/js" }\n`)
  const child: ChildProcess = spawn(process.env['NATS_SERVER'] ?? 'nats-server', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] })
  await new Promise<void>((resolve, reject) => {
    let log = ''
    child.once('error', (e) => reject(new Error(`cannot start nats-server (apt-get install nats-server): ${e.message}`)))
    child.stderr!.on('data', (d: Buffer) => {
      log += d.toString()
      if (log.includes('Server is ready')) resolve()
    })
  })
  const stop = async (): Promise<void> => {
    if (child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r))
      child.kill('SIGTERM')
      await exited
    }
    rmSync(dir, { recursive: true, force: true })
  }
  return { url: `nats://127.0.0.1:${port}`, stop }
}

const given = process.argv[2] as `nats://${string}` | undefined
const server = given === undefined ? await ownServer() : { url: given, stop: async () => {} }
const durable = { stream: 'EXAMPLE_ORDERS', subjects: ['orders.>'] }
const alice = connectBus(server.url, { durable })
const bob = connectBus(server.url, { durable })
try {
  // Live messages, as on the local bus.
  const line = firstValueFrom(bob.messages$<{ line: string }>('log.*'))
  await bob.flush()
  alice.emit('log.info', { line: 'hello over NATS' })
  console.log('bob got:', (await line).line)

  // Request / reply.
  bob.messages$('math.double').pipe(reply(bob, (n: number) => n * 2)).subscribe()
  await bob.flush()
  console.log('alice asked 21, got:', await lastValueFrom(of(21).pipe(request<number, number>(alice, 'math.double'))))

  // A durable topic: emitted before anyone listens, read back from the stream's history.
  for (let id = 1; id <= 3; id++) alice.emit('orders.created', { id })
  await alice.flush()
  const history = await lastValueFrom(bob.messages$<{ id: number }>('orders.>', { from: 'start' }).pipe(take(3), toArray()))
  console.log('bob read the history:', history.map((o) => o.id).join(', '))
} finally {
  await alice.close()
  await bob.close()
  await server.stop()
}
