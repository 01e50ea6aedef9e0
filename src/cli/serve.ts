/**
 * `rxnet serve app.js --workers 4 --port 8080`: runs a script as a supervised cluster. The app's
 * default export is an `http` request listener or a `net.Server` (`http.Server` included); the
 * primary and every worker serve it on one port. The primary shows the workers' status live
 * (a table on a terminal, one line per event otherwise). SIGTERM/SIGINT: graceful stop;
 * SIGHUP: rolling restart.
 * @module
 */
import http from 'node:http'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { cluster } from '../cluster/node.js'
import { DEFAULT_CLUSTER_OPTIONS, type ClusterNode, type WorkerEvent } from '../cluster/types.js'
import { choiceFlag, intFlag, parseCommand, positiveIntFlag } from './args.js'

const USAGE = `usage: rxnet serve <app.js> [options]

The app's default export is an HTTP request listener (req, res) => {} or a net.Server
(http.Server included). Every process of the cluster serves it on one port.

options:
  --workers, -w <n>       worker processes (default: available parallelism)
  --port, -p <port>       port to serve on (default: 8080)
  --host <address>        address to listen on (default: 127.0.0.1)
  --no-primary-serves     the primary supervises only, workers accept
  --distribution <how>    round-robin (default: the primary deals connections in turn)
                          or shared (every process accepts on the socket itself)
  --shutdown-timeout <ms> how long in-flight requests may finish on stop (default: 10000)
  --help, -h              this text

signals: SIGTERM/SIGINT stop gracefully, SIGHUP restarts the workers one at a time.`

/** Runs `rxnet serve`. */
export async function run(args: string[]): Promise<number> {
  const parsed = parseCommand(
    {
      name: 'serve',
      usage: USAGE,
      options: {
        workers: { type: 'string', short: 'w' },
        port: { type: 'string', short: 'p' },
        host: { type: 'string', default: '127.0.0.1' },
        'no-primary-serves': { type: 'boolean', default: false },
        distribution: { type: 'string' },
        'shutdown-timeout': { type: 'string' },
      },
      positionals: ['<app.js>'],
    },
    args,
  )
  if (parsed === undefined) return 0
  const { values, positionals } = parsed
  const app = positionals[0]!
  const port = intFlag('port', values.port, 8080, 0, 65535) // "" or 8e3 are refused, not port 0 (a random port) by accident
  const workers = positiveIntFlag('workers', values.workers, os.availableParallelism())
  const shutdownTimeout = positiveIntFlag('shutdown-timeout', values['shutdown-timeout'], DEFAULT_CLUSTER_OPTIONS.shutdownTimeout)
  const distribution = choiceFlag('distribution', values.distribution, ['round-robin', 'shared'] as const, 'round-robin')

  // The app is loaded before any worker is forked: an app that fails to load starts no cluster.
  let server: net.Server | null
  try {
    server = toServer(((await import(pathToFileURL(path.resolve(app)).href)) as { default?: unknown }).default)
  } catch (e) {
    console.error(`rxnet serve: cannot load ${app}: ${describeError(e)}`)
    return 1
  }
  if (server === null) {
    console.error(`rxnet serve: ${app} must default-export a request listener (req, res) => {} or a net.Server`)
    return 2
  }
  const node = cluster({ workers, shutdownTimeout })
  const setTitle = node.isPrimary ? showStatus(node, `${app} (starting)`) : () => {}
  const primaryServes = !values['no-primary-serves']
  // Primary: once every worker slot has given up (crash loop) and the primary does not serve, nothing
  // serves: stop with exit code 1 rather than sit there (this also ends a serve() still waiting for a worker).
  let stopped!: (code: number) => void
  const done = new Promise<number>((resolve) => (stopped = resolve))
  if (node.isPrimary && !primaryServes) {
    node.workers$.subscribe((e) => {
      if (e.type !== 'gave-up' || !node.status().every((w) => w.state === 'gave-up')) return
      console.error('rxnet serve: every worker gave up and the primary does not serve: stopping')
      void node.close().then(() => stopped(1))
    })
  }
  let info
  try {
    info = await node.serve(server, { port, host: values.host, primaryServes, distribution })
  } catch (e) {
    // e.g. EADDRINUSE: stop the workers already forked instead of hanging. A worker leaves with code 1
    // (explicitly: its cluster IPC channel would keep it alive), the primary restarts it or gives up.
    console.error(`rxnet serve: cannot serve on ${values.host}:${port}: ${describeError(e)}`)
    await node.close()
    if (!node.isPrimary) process.exit(1)
    return 1
  }
  setTitle(`${app} on http://${values.host}:${info.port}/ — ${workers} workers${info.serving ? ' + primary' : ''}`)
  // Keep running until a signal stops the cluster (the cluster exits the process), or nothing serves any more.
  return done
}

function describeError(e: unknown): string {
  const err = e as { code?: unknown; message?: unknown }
  return `${typeof err?.code === 'string' ? `${err.code}: ` : ''}${typeof err?.message === 'string' ? err.message : String(e)}`
}

function toServer(exported: unknown): net.Server | null {
  if (exported instanceof net.Server) return exported
  if (typeof exported === 'function') return http.createServer(exported as http.RequestListener)
  return null
}

/** Live status: a redrawn table on a terminal, one line per event otherwise. */
function showStatus(node: ClusterNode, initialTitle: string): (title: string) => void {
  const tty = process.stdout.isTTY === true
  let title = initialTitle
  let drawn = 0
  const draw = (): void => {
    const rows = node.status()
    const lines = [`rxnet serve: ${title}`, `${rows.filter((r) => r.state === 'listening').length}/${rows.length} workers listening`, '  id  pid      state       restarts']
    for (const r of rows) lines.push(`  ${String(r.id).padEnd(3)} ${String(r.pid ?? '-').padEnd(8)} ${r.state.padEnd(11)} ${r.restarts}`)
    if (drawn > 0) process.stdout.write(`\x1b[${drawn}A\x1b[J`)
    process.stdout.write(lines.join('\n') + '\n')
    drawn = lines.length
  }
  const describe = (e: WorkerEvent): string => {
    switch (e.type) {
      case 'online':
        return `worker ${e.id} online (pid ${e.pid})`
      case 'listening':
        return `worker ${e.id} listening (pid ${e.pid})`
      case 'exit':
        return `worker ${e.id} exited (pid ${e.pid}, code ${e.code}, signal ${e.signal}${e.expected ? ', requested' : ''})`
      case 'restarting':
        return `worker ${e.id} restarting in ${e.delay} ms (attempt ${e.attempt})`
      case 'gave-up':
        return `worker ${e.id} gave up: ${e.error.code}: ${e.error.message}`
    }
  }
  node.workers$.subscribe((e) => {
    if (tty) draw()
    else console.log(`rxnet serve: ${describe(e)}`)
    if (e.type === 'gave-up' && tty) console.error(describe(e))
  })
  if (tty) {
    const timer = setInterval(draw, 1_000)
    timer.unref()
  }
  return (t) => {
    title = t
    if (tty) draw()
    else console.log(`rxnet serve: ${t}`)
  }
}
