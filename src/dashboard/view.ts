/**
 * The dashboard's view model: the latest snapshots of every node folded into what the page draws
 * (nodes, the links between them with state / RTT / rates, hubs, buses, workers). Pure: no I/O.
 * @module
 */
import type { LinkSnapshot, LinkState, MetricsSnapshot, WorkerSnapshot } from '../metrics/snapshot.js'

/**
 * One node of the topology graph.
 * @example
 * ```ts
 * import type { View } from 'rxnet'
 * const down = (v: View) => v.nodes.filter((n) => n.state === 'down').map((n) => n.id)
 * ```
 */
export interface ViewNode {
  id: string
  transport: MetricsSnapshot['transport']
  name: string
  state: LinkState
  counters: Record<string, number>
  gauges: Record<string, number>
  rates: Record<string, number>
  /** Drops, gaps, duplicates and overflows summed, for the warning column. */
  trouble: Record<string, number>
}

/**
 * One edge of the topology graph: a pair of nodes, as reported by either end (or both).
 * @example
 * ```ts
 * import type { View } from 'rxnet'
 * const slowest = (v: View) => v.links.map((l) => Math.max(...Object.values(l.rtt)))
 * ```
 */
export interface ViewLink {
  /** `a < b`. */
  a: string
  b: string
  kind: LinkSnapshot['kind']
  state: LinkState
  /** RTT in seconds as measured by each end that reports it. */
  rtt: Record<string, number>
  /** Messages / bytes per second, both directions added (each direction counted once, by its sender). */
  messagesPerSecond: number
  bytesPerSecond: number
  dropped: number
  overflows: number
}

/**
 * Everything the page shows at one moment.
 * @example
 * ```ts
 * const view = await (await fetch('http://127.0.0.1:8090/view.json')).json()
 * console.log(view.nodes.length, 'nodes', view.links.length, 'links')
 * ```
 */
export interface View {
  time: number
  title: string
  nodes: ViewNode[]
  links: ViewLink[]
  /** Hub clients and other non-mesh links, as reported. */
  clients: (LinkSnapshot & { node: string })[]
  workers: (WorkerSnapshot & { node: string })[]
}

const TROUBLE = ['dropped_messages', 'gaps', 'duplicate_messages', 'duplicate_datagrams', 'overflows', 'link_failures', 'link_timeouts', 'clients_dropped', 'bad_datagrams', 'refused_connections']

const ORDER: Record<LinkState, number> = { up: 0, suspect: 1, down: 2 }

function worst(a: LinkState, b: LinkState): LinkState {
  return ORDER[a] >= ORDER[b] ? a : b
}

/**
 * Builds the view from the latest snapshot of each source. A node is drawn from its own snapshot
 * (its `state` as the observer sees it, `'up'` when unset) or, if only others report it, from
 * their links to it. `hidden` ids (the observer itself) are left out.
 * @example
 * ```ts
 * import { buildView } from 'rxnet'
 * const view = buildView(latestSnapshots, 'my mesh')
 * console.log(view.links.filter((l) => l.state !== 'up'))
 * ```
 */
export function buildView(snapshots: readonly MetricsSnapshot[], title: string, hidden: ReadonlySet<string> = new Set(), now = Date.now()): View {
  const nodes = new Map<string, ViewNode>()
  const links = new Map<string, ViewLink>()
  const clients: View['clients'] = []
  const workers: View['workers'] = []
  for (const s of snapshots) {
    if (hidden.has(s.node)) continue
    const trouble: Record<string, number> = {}
    for (const k of TROUBLE) if (s.counters[k] !== undefined) trouble[k] = s.counters[k]!
    nodes.set(s.node, { id: s.node, transport: s.transport, name: s.name, state: s.state ?? 'up', counters: s.counters, gauges: s.gauges, rates: s.rates ?? {}, trouble })
    for (const w of s.workers ?? []) workers.push({ ...w, node: s.node })
  }
  for (const s of snapshots) {
    if (hidden.has(s.node)) continue
    for (const l of s.links) {
      if (l.kind === 'client') {
        clients.push({ ...l, node: s.node })
        continue
      }
      if (hidden.has(l.to)) continue
      const [a, b] = l.from < l.to ? [l.from, l.to] : [l.to, l.from]
      const key = `${l.kind}/${a}/${b}`
      const e = links.get(key) ?? { a, b, kind: l.kind, state: 'up', rtt: {}, messagesPerSecond: 0, bytesPerSecond: 0, dropped: 0, overflows: 0 }
      e.state = worst(e.state, l.state)
      if (l.rttSeconds !== undefined) e.rtt[l.from] = l.rttSeconds
      e.messagesPerSecond += l.rates?.messages_sent ?? 0
      e.bytesPerSecond += l.rates?.sent_bytes ?? 0
      e.dropped += l.counters.dropped_messages
      e.overflows += l.counters.overflows
      links.set(key, e)
      if (!nodes.has(l.to)) nodes.set(l.to, { id: l.to, transport: s.transport, name: s.name, state: l.state, counters: {}, gauges: {}, rates: {}, trouble: {} })
    }
  }
  // A link touching a down node is down.
  for (const e of links.values()) {
    if (nodes.get(e.a)?.state === 'down' || nodes.get(e.b)?.state === 'down') e.state = 'down'
  }
  return {
    time: now,
    title,
    nodes: [...nodes.values()].sort((x, y) => x.id.localeCompare(y.id)),
    links: [...links.values()].sort((x, y) => `${x.a}/${x.b}`.localeCompare(`${y.a}/${y.b}`)),
    clients,
    workers,
  }
}
