/**
 * `rxnet demo` (what `npm start` runs): starts 3 local processes that join one mesh on loopback and
 * talk like the tcpnet README demo: every second each writes "message from <id>" to every other
 * node and prints "write to N nodes"; joins and leaves are shown as they happen. Ctrl-C stops
 * every process cleanly.
 * @module
 */
import { fork, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { createMesh } from '../mesh/index.js'

const HELP = `usage: rxnet demo [--nodes 3] [--name rxnet-demo] [--interval 1000] [--seconds N]

Starts --nodes local processes that join mesh --name on loopback (mDNS on 127.0.0.1 only) and
exchange "message from <id>" every --interval ms. Ctrl-C (or --seconds) stops them cleanly.`

const COLORS = [36, 33, 35, 32, 34, 31]

/** Runs the demo; resolves to the exit code once every process has stopped. */
export async function run(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      nodes: { type: 'string', default: '3' },
      name: { type: 'string', default: 'rxnet-demo' },
      interval: { type: 'string', default: '1000' },
      seconds: { type: 'string' },
      node: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  })
  if (values.help) {
    console.log(HELP)
    return 0
  }
  const interval = Number(values.interval)
  if (values.node) return runNode(values.name!, interval)
  const n = Number(values.nodes)
  if (!Number.isInteger(n) || n < 1 || n > 16 || !(interval > 0)) {
    console.error(HELP)
    return 2
  }
  return runParent(n, values.name!, interval, values.seconds === undefined ? undefined : Number(values.seconds))
}

async function runParent(n: number, name: string, interval: number, seconds: number | undefined): Promise<number> {
  const tty = process.stdout.isTTY === true
  const paint = (i: number, s: string): string => (tty ? `\x1b[${COLORS[i % COLORS.length]}m${s}\x1b[0m` : s)
  console.log(`rxnet demo: ${n} processes join mesh "${name}" on loopback; Ctrl-C stops them\n`)
  const script = process.argv[1]!
  const children: ChildProcess[] = []
  const exited: Promise<number | null>[] = []
  for (let i = 0; i < n; i++) {
    const child = fork(script, ['demo', '--node', '--name', name, '--interval', String(interval)], {
      stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
      execArgv: process.execArgv,
    })
    children.push(child)
    exited.push(new Promise((resolve) => child.once('exit', (code) => resolve(code))))
    let tag = `[node ${i + 1}]`
    const lines = createInterface({ input: child.stdout! })
    lines.on('line', (line) => {
      const m = /^id (\S+)$/.exec(line)
      if (m) {
        tag = `[${m[1]}]`
        return
      }
      console.log(`${paint(i, tag)} ${line}`)
    })
  }
  let stopping = false
  const stop = (): void => {
    if (stopping) return
    stopping = true
    console.log('\nstopping: every node closes its mesh (goodbye on mDNS, links closed)')
    for (const c of children) if (c.connected) c.send('stop')
  }
  const onSignal = (): void => stop()
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  const timer = seconds === undefined ? undefined : setTimeout(stop, seconds * 1000)
  const codes = await Promise.all(exited)
  clearTimeout(timer)
  process.off('SIGINT', onSignal)
  process.off('SIGTERM', onSignal)
  const ok = codes.every((c) => c === 0)
  console.log(ok ? 'all nodes stopped cleanly' : `some nodes failed: exit codes ${codes.join(', ')}`)
  return ok ? 0 : 1
}

async function runNode(name: string, interval: number): Promise<number> {
  const id = randomBytes(6).toString('hex')
  const mesh = createMesh({ name, id, interface: '127.0.0.1' })
  console.log(`id ${id.slice(0, 6)}`)
  mesh.peers$.subscribe((peer) => {
    peer.source.subscribe((m) => console.log(Buffer.from(m).toString().trimEnd()))
  })
  mesh.events$.subscribe((e) => {
    if (e.type === 'join') console.log(`+ ${e.peer.id} joined   members: ${[...mesh.members.keys()].join(', ')}`)
    if (e.type === 'leave') console.log(`- ${e.peer.id} left${e.reason.type === 'failed' ? ` (${e.reason.error.code})` : ''}   members: ${[...mesh.members.keys()].join(', ') || 'none'}`)
  })
  const { port } = await mesh.listen(0, '127.0.0.1')
  console.log(`listening on 127.0.0.1:${port} as ${id}`)
  const timer = setInterval(() => {
    console.log(`write to ${mesh.members.size} nodes`)
    mesh.broadcast(`message from ${id}\n`)
  }, interval)
  await new Promise<void>((resolve) => {
    process.once('message', () => resolve())
    process.once('SIGINT', () => resolve())
    process.once('disconnect', () => resolve())
  })
  clearInterval(timer)
  await mesh.close()
  process.disconnect?.()
  return 0
}
