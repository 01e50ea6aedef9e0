/**
 * Metrics as data: the one snapshot shape every transport's counters take (mesh, peer, bus, hub,
 * multicast, cluster, link), and {@link withRates}, the one place where rates are derived.
 *
 * Counter and gauge keys are the metric stems of the names table ({@link METRICS}): the same word
 * means the same thing on every transport, and a Prometheus or OpenTelemetry name is the stem with
 * a prefix and a unit suffix, nothing else.
 * @module
 */
import { type OperatorFunction, defer, map } from 'rxjs'

/** What a snapshot describes. */
export type MetricsTransport = 'mesh' | 'bus' | 'hub' | 'multicast' | 'cluster'

/**
 * State of one link as an observer sees it: `'up'` (traffic, heartbeats included, arrived lately),
 * `'suspect'` (nothing arrived for longer than the collector's `suspectAfter`), `'down'` (it ended;
 * kept for a short linger so a viewer sees it go).
 */
export type LinkState = 'up' | 'suspect' | 'down'

/** The counters every link has, by metric stem. */
export interface LinkCounters {
  /** Messages delivered (on a mesh link: frames, heartbeats included). */
  messages_received: number
  /** Messages handed to the wire. */
  messages_sent: number
  /** Bytes delivered. */
  received_bytes: number
  /** Bytes handed to the wire. */
  sent_bytes: number
  /** Outbound messages discarded (overflow policy, sent after close, queued at close). */
  dropped_messages: number
  /** Times the send buffer was full when a message arrived. */
  overflows: number
}

/**
 * One connection seen from one end: a mesh peer, a cluster link, a hub client.
 * @example
 * ```ts
 * import { meshMetrics } from 'rxnet'
 * meshMetrics(mesh).subscribe((s) => {
 *   for (const l of s.links) console.log(`${l.from} -> ${l.to} ${l.state} rtt ${l.rttSeconds ?? '-'} s`)
 * })
 * ```
 */
export interface LinkSnapshot {
  /** `'peer'` (mesh), `'link'` (cluster), `'client'` (hub). */
  kind: 'peer' | 'link' | 'client'
  /** Id of the near end (the node that reports it). */
  from: string
  /** Id of the far end. */
  to: string
  state: LinkState
  /** Last heartbeat round trip, seconds (absent until measured, and where there are no heartbeats). */
  rttSeconds?: number
  counters: LinkCounters
  /** `buffered_bytes`: bytes waiting in the send buffer now. */
  gauges: Record<string, number>
  /** Descriptive fields: `address`, `port`, `subscriptions`, `slow` ... */
  info?: Record<string, string | number | boolean | string[]>
  /** Per-second rates of `counters`, set by {@link withRates}. */
  rates?: Record<string, number>
  /** On a decoded summary: when the origin took it, by the origin's clock (the key to keep the newest per node). */
  sentAt?: number
  /** Set by `observeMesh` on a summary that a node it reaches forwarded for one of that node's peers: that node's id. */
  via?: string
}

/**
 * One process slot of a cluster, as the primary sees it.
 * @example
 * ```ts
 * clusterMetrics(node).subscribe((s) => s.workers?.forEach((w) => console.log(w.id, w.state, w.restarts)))
 * ```
 */
export interface WorkerSnapshot {
  id: number
  pid: number | null
  state: string
  restarts: number
}

/**
 * Counters and gauges of one transport instance at one moment.
 * @example
 * ```ts
 * import { hubMetrics, withRates } from 'rxnet'
 * hubMetrics(hub).pipe(withRates()).subscribe((s) => console.log(s.node, s.counters.messages_published, s.rates?.messages_published, '/s'))
 * ```
 */
export interface MetricsSnapshot {
  transport: MetricsTransport
  /** Id of the node / hub / client / channel this describes. */
  node: string
  /** Mesh name, hub path, group:port, or `cluster`. */
  name: string
  /** When it was taken, ms since the epoch. */
  time: number
  /** Monotonic totals, by metric stem (links that ended are still counted). */
  counters: Record<string, number>
  /** Values that go up and down, by metric stem. */
  gauges: Record<string, number>
  /** Every connection of this node (down ones for a short linger). */
  links: LinkSnapshot[]
  /** Cluster primary: its worker slots. */
  workers?: WorkerSnapshot[]
  /** How an observer reaches this node (set by `observeMesh`; unset: it is the local process). */
  state?: LinkState
  /** Per-second rates of `counters`, set by {@link withRates}. */
  rates?: Record<string, number>
  /** On a decoded summary: when the origin took it, by the origin's clock (the key to keep the newest per node). */
  sentAt?: number
  /** Set by `observeMesh` on a summary that a node it reaches forwarded for one of that node's peers: that node's id. */
  via?: string
}

/** The key that identifies the same source across snapshots. */
export function snapshotKey(s: Pick<MetricsSnapshot, 'transport' | 'node'>): string {
  return `${s.transport}/${s.node}`
}

/** The key that identifies the same link across snapshots. */
export function linkKey(l: Pick<LinkSnapshot, 'kind' | 'from' | 'to'>): string {
  return `${l.kind}/${l.from}/${l.to}`
}

/**
 * Per-second rates between two readings of the same counters: `(next - prev) / seconds`. A counter
 * that went down (a restarted process) or is new has no rate yet and is left out, never negative.
 * @example
 * ```ts
 * deriveRates({ sent: 10 }, { sent: 30 }, 2) // { sent: 10 }
 * ```
 */
export function deriveRates(prev: Record<string, number>, next: Record<string, number>, seconds: number): Record<string, number> {
  const out: Record<string, number> = {}
  if (!(seconds > 0)) return out
  for (const k of Object.keys(next)) {
    const a = prev[k]
    const b = next[k]!
    if (a !== undefined && b >= a) out[k] = (b - a) / seconds
  }
  return out
}

/**
 * Adds `rates` to every snapshot and to each of its links, from the previous snapshot of the same
 * source (same transport and node) seen by this operator. The first snapshot of a source has empty
 * rates. Works on one source or on a merged stream of many.
 * @example
 * ```ts
 * import { merge } from 'rxjs'
 * import { meshMetrics, hubMetrics, withRates } from 'rxnet'
 * merge(meshMetrics(mesh), hubMetrics(hub)).pipe(withRates()).subscribe((s) => console.log(s.transport, s.rates))
 * ```
 */
export function withRates(): OperatorFunction<MetricsSnapshot, MetricsSnapshot> {
  return (source) =>
    defer(() => {
      // One memory per subscription, not per pipe() call.
      const last = new Map<string, MetricsSnapshot>()
      return source.pipe(map((s) => rated(s, last)))
    })
}

function rated(s: MetricsSnapshot, last: Map<string, MetricsSnapshot>): MetricsSnapshot {
  const key = snapshotKey(s)
  const prev = last.get(key)
  last.set(key, s)
  if (prev === undefined) return { ...s, rates: {}, links: s.links.map((l) => ({ ...l, rates: {} })) }
  const seconds = (s.time - prev.time) / 1000
  const prevLinks = new Map(prev.links.map((l) => [linkKey(l), l]))
  return {
    ...s,
    rates: deriveRates(prev.counters, s.counters, seconds),
    links: s.links.map((l) => {
      const p = prevLinks.get(linkKey(l))
      return { ...l, rates: p === undefined ? {} : deriveRates(counterRecord(p.counters), counterRecord(l.counters), seconds) }
    }),
  }
}

function counterRecord(c: LinkCounters): Record<string, number> {
  return c as unknown as Record<string, number>
}
