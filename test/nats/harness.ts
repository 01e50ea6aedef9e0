// Real nats-server processes for the tests: each server gets a config file in a temp dir (client
// and cluster ports bound to 127.0.0.1, JetStream storage in the same dir); stop() / kill() end
// the processes this harness started (by pid) and remove the dir.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'

/** The nats-server binary, or null when it is not installed (tests skip with that reason). */
export const NATS_SERVER: string | null = (() => {
  for (const p of [process.env['NATS_SERVER'], '/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server']) {
    if (p !== undefined && spawnSync(p, ['--version']).status === 0) return p
  }
  return spawnSync('nats-server', ['--version']).status === 0 ? 'nats-server' : null
})()
export const SKIP_REASON = 'nats-server is not installed (apt-get install nats-server)'

/** A free TCP port on 127.0.0.1 (closed again; the server binds it right after). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo
      s.close(() => resolve(port))
    })
  })
}

export interface NatsServer {
  readonly name: string
  readonly port: number
  readonly url: string
  readonly clusterPort: number
  child: ChildProcess | null
  /** Starts (again) with the same config and storage. */
  start(): Promise<void>
  /** SIGKILL, waits for the exit. */
  kill(): Promise<void>
  /** SIGTERM, waits for the exit. */
  stop(): Promise<void>
}

export interface NatsCluster {
  readonly servers: NatsServer[]
  /** All client URLs, comma-separated. */
  readonly url: string
  readonly dir: string
  close(): Promise<void>
}

function exitOf(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => child.once('exit', () => resolve()))
}

/**
 * Starts `n` servers (a cluster with routes between all of them when n > 1), JetStream on when
 * `jetstream`; resolves once every server says it is ready (and, with a cluster, has its routes).
 */
export async function startNats(n = 1, options: { jetstream?: boolean } = {}): Promise<NatsCluster> {
  if (NATS_SERVER === null) throw new Error(SKIP_REASON)
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rxnet-nats-'))
  const ports = await Promise.all(Array.from({ length: n }, () => freePort()))
  const clusterPorts = await Promise.all(Array.from({ length: n }, () => (n > 1 ? freePort() : Promise.resolve(0))))
  const servers: NatsServer[] = []
  for (let i = 0; i < n; i++) {
    const name = `n${i + 1}`
    const conf = path.join(dir, `${name}.conf`)
    const lines = [`server_name: ${name}`, 'host: 127.0.0.1', `port: ${ports[i]}`, 'max_payload: 1048576']
    if (options.jetstream) lines.push(`jetstream { store_dir: "${path.join(dir, name)}", max_memory_store: 64MB, max_file_store: 256MB }`)
    if (n > 1) {
      const routes = clusterPorts.filter((_, j) => j !== i).map((p) => `nats-route://127.0.0.1:${p}`)
      lines.push(`cluster { name: rxnet, host: 127.0.0.1, port: ${clusterPorts[i]}, routes: [${routes.join(', ')}] }`)
    }
    writeFileSync(conf, lines.join('\n') + '\n')
    const server: NatsServer = {
      name,
      port: ports[i]!,
      url: `nats://127.0.0.1:${ports[i]}`,
      clusterPort: clusterPorts[i]!,
      child: null,
      async start() {
        const child = spawn(NATS_SERVER!, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] })
        server.child = child
        let log = ''
        await new Promise<void>((resolve, reject) => {
          const onData = (d: Buffer): void => {
            log += d.toString()
            if (log.includes('Server is ready')) {
              child.stderr!.off('data', onData)
              child.off('exit', onExit)
              child.stderr!.resume()
              resolve()
            }
          }
          const onExit = (code: number | null): void => reject(new Error(`nats-server ${name} exited (${code}) before it was ready:\n${log}`))
          child.stderr!.on('data', onData)
          child.once('exit', onExit)
        })
      },
      async kill() {
        const c = server.child
        server.child = null
        if (c === null) return
        c.kill('SIGKILL')
        await exitOf(c)
      },
      async stop() {
        const c = server.child
        server.child = null
        if (c === null) return
        c.kill('SIGTERM')
        await exitOf(c)
      },
    }
    servers.push(server)
  }
  await Promise.all(servers.map((s) => s.start()))
  if (n > 1) await routesUp(servers)
  return {
    servers,
    url: servers.map((s) => s.url).join(','),
    dir,
    async close() {
      await Promise.all(servers.map((s) => s.stop()))
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

/** Waits until every server routes to every other: a subscriber on the last sees a publish on the first. */
async function routesUp(servers: NatsServer[]): Promise<void> {
  const { connect } = await import('@nats-io/transport-node')
  const pub = await connect({ servers: servers[0]!.url })
  const subs = await Promise.all(servers.slice(1).map((s) => connect({ servers: s.url })))
  try {
    const deadline = Date.now() + 15_000
    for (const nc of subs) {
      const sub = nc.subscribe('_rxnet.routes', { max: 1 })
      const got = (async () => {
        for await (const _ of sub) return
      })()
      await nc.flush()
      let done = false
      void got.then(() => (done = true))
      while (!done) {
        if (Date.now() > deadline) throw new Error('nats cluster routes did not come up')
        pub.publish('_rxnet.routes')
        await pub.flush()
        await new Promise((r) => setTimeout(r, 20))
      }
    }
  } finally {
    await pub.close()
    for (const nc of subs) await nc.close()
  }
}

