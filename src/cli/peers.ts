/**
 * `rxnet peers <name>`: a live table of a mesh's members (id, address, port, RTT, state). It watches
 * the mesh as an observer: it browses and dials every node but is never a member of theirs. Nodes
 * it does not reach itself show as `reported` (via the node whose peer summary named them).
 * @module
 */
import { createMesh } from '../mesh/index.js'
import { decodeSummary } from '../metrics/summary.js'
import type { Peer } from '../mesh/peer.js'
import { parseCommand, positiveIntFlag, printJson, readSecret, SECRET_ENV, SECRET_ON_COMMAND_LINE } from './args.js'

const HELP = `usage: rxnet peers <name> [--interface 127.0.0.1] [--secret-file F] [--seed host:port ...] [--once MS] [--json]

Shows the members of mesh <name>: id, address, port, heartbeat RTT and state
(discovered / connected / left, or reported: not reached, known from a peer's
stats summary). Redraws every second until Ctrl-C; with --once MS it
prints one table after MS milliseconds and exits. --interface defaults to 127.0.0.1 (this machine).

  --secret-file F  file holding the mesh's shared secret (TLS-PSK); or set ${SECRET_ENV}
  --json           one JSON object per table: {"mesh","connected","members":[{"id","address","port","rtt","state","note"}]}`

interface Row {
  id: string
  address: string
  port: number
  state: 'discovered' | 'connected' | 'left' | 'reported'
  peer?: Peer
  note?: string
  /** A reported row: when the last summary naming it arrived (Date.now()). */
  seen?: number
}

/** A reported node not named again for this long leaves the table, ms. */
const REPORTED_STALE = 5000

/** Runs `rxnet peers`; resolves to the exit code. */
export async function run(args: string[]): Promise<number> {
  const parsed = parseCommand(
    {
      name: 'peers',
      usage: HELP,
      options: {
        interface: { type: 'string', default: '127.0.0.1' },
        'secret-file': { type: 'string' },
        seed: { type: 'string', multiple: true, default: [] },
        once: { type: 'string' },
        json: { type: 'boolean', default: false },
      },
      positionals: ['<name>'],
      refused: { secret: SECRET_ON_COMMAND_LINE },
    },
    args,
  )
  if (parsed === undefined) return 0
  const { values, positionals } = parsed
  const once = values.once === undefined ? undefined : positiveIntFlag('once', values.once, 0)
  const secret = readSecret(values['secret-file'])
  const name = positionals[0]!
  const iface = values.interface === 'all' ? undefined : values.interface
  const mesh = createMesh({ name, interface: iface, secret, seeds: values.seed, observer: true, codec: 'raw', id: `peers-cli-${process.pid}` })
  const rows = new Map<string, Row>()
  // Members send an observer their stats summaries, with the latest of each of their peers: the nodes
  // this observer does not reach itself are listed as reported (read everything: a peer nobody reads from stops reading).
  const reported = (via: string, bytes: Uint8Array): void => {
    let node: string
    try {
      node = decodeSummary(bytes).node
    } catch {
      return
    }
    const r = rows.get(node)
    if (node === via || (r !== undefined && r.state === 'connected')) return
    rows.set(node, { id: node, address: r?.address ?? '', port: r?.port ?? 0, state: 'reported', note: `via ${via}`, seen: Date.now() })
  }
  mesh.peers$.subscribe((peer) => peer.source.subscribe({ next: (bytes) => reported(peer.id, bytes), error: () => {} }))
  mesh.events$.subscribe((e) => {
    if (e.type === 'discovered') {
      const r = rows.get(e.id)
      if (r === undefined) rows.set(e.id, { id: e.id, address: e.addresses[0] ?? '', port: e.port, state: 'discovered' })
      else if (r.state === 'left') r.state = 'discovered'
    } else if (e.type === 'join') {
      rows.set(e.peer.id, { id: e.peer.id, address: e.peer.address, port: e.peer.port, state: 'connected', peer: e.peer })
    } else if (e.type === 'leave') {
      const r = rows.get(e.peer.id)
      if (r !== undefined && r.peer === e.peer) {
        r.state = 'left'
        r.note = e.reason.type === 'failed' ? e.reason.error.code : undefined
      }
    }
  })
  await mesh.listen(0, iface)
  const tty = process.stdout.isTTY === true && once === undefined && !values.json
  const draw = (): void => {
    for (const [id, r] of rows) if (r.state === 'reported' && Date.now() - r.seen! > REPORTED_STALE) rows.delete(id)
    if (values.json) return printJson(snapshot(name, [...rows.values()]))
    const table = render(name, [...rows.values()])
    if (tty) process.stdout.write(`\x1b[H\x1b[2J${table}\n`)
    else console.log(table)
  }
  let stop!: () => void
  const stopped = new Promise<void>((resolve) => (stop = resolve))
  const onSignal = (): void => stop()
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  let timer: NodeJS.Timeout
  if (once !== undefined) {
    timer = setTimeout(() => stop(), once)
  } else {
    draw()
    timer = setInterval(draw, 1000)
  }
  await stopped
  clearTimeout(timer)
  clearInterval(timer)
  process.off('SIGINT', onSignal)
  process.off('SIGTERM', onSignal)
  if (once !== undefined) draw()
  await mesh.close()
  return 0
}

/** One row as `--json` prints it: `rtt` in ms, `null` when not connected or not measured yet. */
function jsonRow(r: Row): { id: string; address: string; port: number; rtt: number | null; state: Row['state']; note: string | null } {
  const rtt = r.state === 'connected' && r.peer && !Number.isNaN(r.peer.rtt) ? r.peer.rtt : null
  return { id: r.id, address: r.address, port: r.port, rtt, state: r.state, note: r.note ?? null }
}

/** The member table as data (what `--json` prints). */
export function snapshot(name: string, rows: Row[]): { mesh: string; connected: number; members: ReturnType<typeof jsonRow>[] } {
  const members = [...rows].sort((a, b) => a.id.localeCompare(b.id)).map(jsonRow)
  return { mesh: name, connected: members.filter((m) => m.state === 'connected').length, members }
}

/** Formats the member table. */
export function render(name: string, rows: Row[]): string {
  const head = ['ID', 'ADDRESS', 'PORT', 'RTT', 'STATE']
  const body = rows
    .sort((a, b) => a.id.localeCompare(b.id))
    .map((r) => [r.id, r.address, String(r.port), r.state === 'connected' && r.peer && !Number.isNaN(r.peer.rtt) ? `${r.peer.rtt.toFixed(2)} ms` : '-', r.note ? `${r.state} (${r.note})` : r.state])
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)))
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()
  const connected = rows.filter((r) => r.state === 'connected').length
  return [`mesh "${name}": ${connected} connected, ${rows.length} seen`, line(head), ...body.map(line)].join('\n')
}
