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
import { createMesh } from '../mesh/index.js'
import { intFlag, parseCommand, positiveIntFlag } from './args.js'

const HELP = `usage: rxnet demo [--nodes 3] [--name rxnet-demo] [--interval 1000] [--seconds N]

Starts --nodes local processes that join mesh --name on loopback (mDNS on 127.0.0.1 only) and
exchange "message from <id>" every --interval ms. Ctrl-C (or --seconds) stops them cleanly.`

const COLORS = [36, 33, 35, 32, 34, 31]

/** Runs the demo; resolves to the exit code once every process has stopped. */
export async function run(args: string[]): Promise<number> {
  const parsed = parseCommand(
    {
      name: 'demo',
      usage: HELP,
      options: {
        nodes: { type: 'string' },
        name: { type: 'string', default: 'rxnet-demo' },
        interval: { type: 'string' },
        seconds: { type: 'string' },
        node: { type: 'boolean', default: false },
      },
    },
    args,
  )
  if (parsed === undefined) return 0
  const { values } = parsed
  const interval = positiveIntFlag('interval', values.interval, 1000)
  if (values.node) return runNode(values.name, interval)
  const n = intFlag('nodes', values.nodes, 3, 1, MAX_NODES)
  const seconds = values.seconds === undefined ? undefined : positiveIntFlag('seconds', values.seconds, 0)
  return runParent(n, values.name, interval, seconds)
}

/** The most processes `--nodes` starts. */
const MAX_NODES = 16

/** Signals that stop the demo: Ctrl-C, `kill`, a closed terminal. */
const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const

/** How long a node may take to close its mesh after "stop" before the parent kills it. */
const STOP_GRACE_MS = 3000

interface Node {
  tag: string
  child: ChildProcess
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

async function runParent(n: number, name: string, interval: number, seconds: number | undefined): Promise<number> {
  const tty = process.stdout.isTTY === true
  const paint = (i: number, s: string): string => (tty ? `\x1b[${COLORS[i % COLORS.length]}m${s}\x1b[0m` : s)
  console.log(`rxnet demo: ${n} processes join mesh "${name}" on loopback; Ctrl-C stops them\n`)
  const script = process.argv[1]!
  const nodes: Node[] = []
  const kill = (): void => {
    for (const { child } of nodes) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
  let stopping = false
  let killTimer: NodeJS.Timeout | undefined
  const stop = (why: string): void => {
    if (stopping) return
    stopping = true
    console.log(`\nstopping (${why}): every node closes its mesh (goodbye on mDNS, links closed)`)
    for (const { child } of nodes) if (child.connected) child.send('stop')
    killTimer = setTimeout(kill, STOP_GRACE_MS)
  }
  // Ctrl-C in a terminal (and `timeout`, `kill -- -pgid`) signals every process of the group: the
  // nodes handle the signal themselves; the parent makes sure they stop within the grace time.
  // Wrappers (npm, tsx) relay the same signal again, so a repeated signal is not "stop harder".
  const onSignal = (signal: NodeJS.Signals): void => stop(signal)
  for (const s of STOP_SIGNALS) process.on(s, onSignal)
  for (let i = 0; i < n; i++) {
    const child = fork(script, ['demo', '--node', '--name', name, '--interval', String(interval)], {
      stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
      execArgv: process.execArgv,
    })
    const node: Node = {
      tag: `node ${i + 1}`,
      child,
      exit: new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal }))),
    }
    nodes.push(node)
    // A node that dies on its own stops the demo (the others would wait for it forever).
    void node.exit.then(() => stop(`${node.tag} exited`))
    const lines = createInterface({ input: child.stdout! })
    lines.on('line', (line) => {
      const m = /^id (\S+)$/.exec(line)
      if (m) node.tag = m[1]!
      else console.log(`${paint(i, `[${node.tag}]`)} ${line}`)
    })
  }
  const timer = seconds === undefined ? undefined : setTimeout(() => stop(`${seconds} s elapsed`), seconds * 1000)
  const exits = await Promise.all(nodes.map((x) => x.exit))
  clearTimeout(timer)
  clearTimeout(killTimer)
  for (const s of STOP_SIGNALS) process.off(s, onSignal)
  const failed = exits.flatMap((e, i) =>
    e.code === 0 ? [] : [`${nodes[i]!.tag} ${e.signal === null ? `exit code ${e.code}` : `killed by ${e.signal}`}`],
  )
  console.log(failed.length === 0 ? `all ${n} nodes stopped cleanly` : `some nodes failed: ${failed.join('; ')}`)
  return failed.length === 0 ? 0 : 1
}

async function runNode(name: string, interval: number): Promise<number> {
  const id = randomBytes(6).toString('hex')
  const mesh = createMesh({ name, id, interface: '127.0.0.1' })
  // Handled from the start, so a signal during start-up also closes the mesh (and exits 0).
  let stop!: () => void
  const stopped = new Promise<void>((resolve) => (stop = resolve))
  const onStop = (): void => stop()
  for (const s of STOP_SIGNALS) process.on(s, onStop)
  process.on('message', onStop)
  process.on('disconnect', onStop)
  // The parent gone (killed) breaks our stdout pipe: stop instead of crashing on EPIPE.
  process.stdout.on('error', onStop)
  // Whole ids: cut to a prefix, two observers (rxnet peers: peers-cli-<pid>) both showed as "peers-".
  console.log(`id ${id}`)
  const members = (): string => [...mesh.members.keys()].join(', ') || 'none'
  mesh.peers$.subscribe((peer) => {
    // A failed link errors source; the leave line below says why.
    peer.source.subscribe({ next: (m) => console.log(Buffer.from(m).toString().trimEnd()), error: () => {} })
  })
  mesh.events$.subscribe((e) => {
    if (e.type === 'join') console.log(`+ ${e.peer.id} joined   members: ${members()}`)
    if (e.type === 'leave') console.log(`- ${e.peer.id} left${e.reason.type === 'failed' ? ` (${e.reason.error.code})` : ''}   members: ${members()}`)
  })
  let timer: NodeJS.Timeout | undefined
  try {
    const listening = await Promise.race([mesh.listen(0, '127.0.0.1'), stopped.then(() => undefined)])
    if (listening !== undefined) {
      console.log(`listening on 127.0.0.1:${listening.port}`)
      timer = setInterval(() => {
        console.log(`write to ${mesh.members.size} nodes`)
        mesh.broadcast(`message from ${id}\n`)
      }, interval)
    }
    await stopped
  } finally {
    clearInterval(timer)
    await mesh.close()
    for (const s of STOP_SIGNALS) process.off(s, onStop)
    process.off('message', onStop)
    process.off('disconnect', onStop)
    // Lines written while closing may still be in the pipe when the parent is gone: a late EPIPE must
    // not crash the exiting process, so a no-op listener takes over from onStop.
    process.stdout.off('error', onStop)
    process.stdout.on('error', ignoreError)
    if (process.connected) process.disconnect()
  }
  return 0
}

function ignoreError(): void {}
