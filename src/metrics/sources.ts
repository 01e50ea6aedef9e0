/**
 * Collectors: each transport's live `stats` (and its public membership / lifecycle streams) read
 * as an Observable of {@link MetricsSnapshot}s, one on subscribe and then one every `interval` ms.
 * Cold: reading starts on subscribe and stops on unsubscribe; nothing is added to the transport.
 * @module
 */
import { Observable, type Subscriber, type Subscription } from 'rxjs'
import type { Bus, Hub, HubStats } from '../bus/index.js'
import type { ClusterNode, Link } from '../cluster/index.js'
import type { Mesh } from '../mesh/index.js'
import type { MulticastChannel } from '../multicast/index.js'
import { checkInt, checkKeys, withDefaults } from '../options.js'
import { channelCounters, LinkBook } from './links.js'
import type { LinkCounters, MetricsSnapshot, MetricsTransport } from './snapshot.js'

/**
 * Options of every collector ({@link meshMetrics}, {@link hubMetrics}, ...).
 * @example
 * ```ts
 * meshMetrics(mesh, { interval: 5000, suspectAfter: 2000 })
 * ```
 */
export interface MetricsOptions {
  /** Time between snapshots, ms. @default 1000 */
  interval?: number
  /** A link that received nothing (heartbeats included) for this long is `'suspect'`, ms. @default 1000 */
  suspectAfter?: number
  /** How long an ended link stays in snapshots as `'down'`, ms. @default 2000 */
  linger?: number
}

/**
 * Defaults of {@link MetricsOptions}.
 * @example
 * ```ts
 * console.log(DEFAULT_METRICS_OPTIONS.interval) // 1000 ms between snapshots
 * ```
 */
export const DEFAULT_METRICS_OPTIONS: Required<MetricsOptions> = { interval: 1000, suspectAfter: 1000, linger: 2000 }

function resolve(where: string, options: MetricsOptions): Required<MetricsOptions> {
  checkKeys(where, options, Object.keys(DEFAULT_METRICS_OPTIONS))
  const o = withDefaults(DEFAULT_METRICS_OPTIONS, options)
  checkInt(`${where}: interval`, o.interval)
  checkInt(`${where}: suspectAfter`, o.suspectAfter)
  checkInt(`${where}: linger`, o.linger, 0)
  return o
}

/** One snapshot now, then every `interval` ms until `done` or unsubscribe; `setup` wires the transport's streams. */
function poll(interval: number, subscriber: Subscriber<MetricsSnapshot>, take: () => MetricsSnapshot, setup: (done: () => void) => Subscription[] = () => []): () => void {
  let timer: NodeJS.Timeout | undefined
  const emit = (): void => {
    try {
      subscriber.next(take())
    } catch (e) {
      subscriber.error(e)
    }
  }
  const done = (): void => {
    if (subscriber.closed) return
    emit()
    subscriber.complete()
  }
  const subs = setup(done)
  if (!subscriber.closed) {
    emit()
    timer = setInterval(emit, interval)
    timer.unref()
  }
  return () => {
    clearInterval(timer)
    for (const s of subs) s.unsubscribe()
  }
}

function snapshot(transport: MetricsTransport, node: string, name: string, counters: Record<string, number>, gauges: Record<string, number>, rest: Partial<MetricsSnapshot> = {}): MetricsSnapshot {
  return { transport, node, name, time: Date.now(), counters, gauges, links: [], ...rest }
}

function totals(t: LinkCounters): Record<string, number> {
  return { ...t }
}

/**
 * Snapshots of a mesh node: its counters, its members, and every peer link with state, RTT and
 * counters. Completes when the mesh closes.
 * @example
 * ```ts
 * import { createMesh, meshMetrics } from 'rxnet'
 * const mesh = createMesh({ name: 'demo', interface: '127.0.0.1' })
 * meshMetrics(mesh).subscribe((s) => console.log(s.gauges.members, 'members', s.links.map((l) => l.rttSeconds)))
 * ```
 */
export function meshMetrics(mesh: Mesh<any, any>, options: MetricsOptions = {}): Observable<MetricsSnapshot> {
  const o = resolve('meshMetrics', options)
  return new Observable<MetricsSnapshot>((subscriber) => {
    const book = new LinkBook(mesh.id, o)
    const take = (): MetricsSnapshot => {
      const { links, totals: t } = book.read()
      const s = mesh.stats
      return snapshot(
        'mesh',
        mesh.id,
        mesh.name,
        {
          ...totals(t),
          dropped_messages: s.dropped,
          accepted_connections: s.accepted,
          dial_attempts: s.dialed,
          dial_failures: s.dialFailures,
          refused_connections: s.refused,
          tiebreaks: s.tiebreaks,
          link_failures: s.failures,
          link_timeouts: s.timeouts,
          peer_summaries_sent: s.summaries.sent,
          peer_summaries_received: s.summaries.received,
          peer_summaries_garbage: s.summaries.garbage,
          peer_summaries_dropped: s.summaries.dropped,
        },
        { members: mesh.members.size },
        { links },
      )
    }
    return poll(o.interval, subscriber, take, (done) => [
      mesh.members$.subscribe({
        next: (members) => {
          book.endAllBut(members.values())
          for (const peer of members.values()) book.add(peer, 'peer', peer.id, { address: peer.address, port: peer.port, outbound: peer.outbound })
        },
        complete: done,
        error: done,
      }),
    ])
  })
}

/** A hub's counters by metric stem (its local collector and its `$SYS` answer alike). */
export function hubCounters(s: HubStats): Record<string, number> {
  return {
    messages_published: s.published,
    messages_delivered: s.delivered,
    clients_dropped: s.dropped,
    messages_bridged_out: s.bridgedOut,
    messages_bridged_in: s.bridgedIn,
    bad_datagrams: s.bridgeBad,
    too_large_messages: s.bridgeTooLarge,
  }
}

/**
 * Snapshots of a bus hub: publish / deliver / bridge counters and its client count. Completes when the hub closes.
 * @example
 * ```ts
 * import { startHub, hubMetrics } from 'rxnet'
 * const hub = await startHub({ path: '/tmp/app.sock' })
 * hubMetrics(hub).subscribe((s) => console.log(s.gauges.clients, 'clients'))
 * ```
 */
export function hubMetrics(hub: Hub, options: MetricsOptions = {}): Observable<MetricsSnapshot> {
  const o = resolve('hubMetrics', options)
  return new Observable<MetricsSnapshot>((subscriber) => {
    const take = (): MetricsSnapshot => snapshot('hub', hub.id, hub.path, hubCounters(hub.stats), { clients: hub.stats.clients })
    return poll(o.interval, subscriber, take, (done) => [hub.events$.subscribe({ complete: done, error: done })])
  })
}

/**
 * Snapshots of a bus client. Completes when the client closes.
 * @example
 * ```ts
 * import { connectBus, busMetrics } from 'rxnet'
 * const bus = connectBus('/tmp/app.sock')
 * busMetrics(bus).subscribe((s) => console.log(s.counters.duplicate_messages, 'duplicates'))
 * ```
 */
export function busMetrics(bus: Bus, options: MetricsOptions = {}): Observable<MetricsSnapshot> {
  const o = resolve('busMetrics', options)
  return new Observable<MetricsSnapshot>((subscriber) => {
    const take = (): MetricsSnapshot => {
      const s = bus.stats
      return snapshot(
        'bus',
        bus.id,
        'bus',
        {
          messages_sent: s.emitted,
          messages_received: s.received,
          duplicate_messages: s.duplicates,
          undecodable_messages: s.undecodable,
          implausible_messages: s.implausible,
          dropped_messages: s.dropped,
          overflows: s.overflows,
          reconnects: s.reconnects,
        },
        { buffered_messages: s.buffered, connected: bus.connected ? 1 : 0 },
      )
    }
    return poll(o.interval, subscriber, take, (done) => [bus.status$.subscribe({ complete: done, error: done })])
  })
}

/**
 * Snapshots of a multicast channel: messages, datagrams, gaps, duplicates, replays. Completes when it closes.
 * @example
 * ```ts
 * import { multicast, multicastMetrics } from 'rxnet'
 * const mc = multicast({ interface: '127.0.0.1' })
 * multicastMetrics(mc).subscribe((s) => console.log(s.counters.gaps, 'gaps'))
 * ```
 */
export function multicastMetrics(mc: MulticastChannel, options: MetricsOptions = {}): Observable<MetricsSnapshot> {
  const o = resolve('multicastMetrics', options)
  return new Observable<MetricsSnapshot>((subscriber) => {
    const take = (): MetricsSnapshot => {
      const s = mc.stats
      return snapshot(
        'multicast',
        mc.id,
        'multicast',
        {
          ...channelCounters(s),
          datagrams_received: s.datagramsIn,
          datagrams_sent: s.datagramsOut,
          echo_datagrams: s.echoes,
          duplicate_datagrams: s.duplicates,
          replayed_datagrams: s.replayed,
          bad_datagrams: s.bad,
          gaps: s.gaps,
          reordered_datagrams: s.reordered,
          send_errors: s.sendErrors,
        },
        { buffered_bytes: s.bufferedBytes, senders: s.senders },
      )
    }
    return poll(o.interval, subscriber, take, (done) => {
      void mc.closed.then(done)
      return []
    })
  })
}

/**
 * Snapshots of a cluster process: its links to the other processes, and in the primary the worker
 * slots with their restarts. Runs until unsubscribed.
 * @example
 * ```ts
 * import { cluster, clusterMetrics } from 'rxnet'
 * const node = cluster({ workers: 2 })
 * if (node.isPrimary) clusterMetrics(node).subscribe((s) => console.log(s.workers))
 * ```
 */
export function clusterMetrics(node: ClusterNode, options: MetricsOptions = {}): Observable<MetricsSnapshot> {
  const o = resolve('clusterMetrics', options)
  return new Observable<MetricsSnapshot>((subscriber) => {
    const book = new LinkBook(String(node.id), o)
    let exits = 0
    const take = (): MetricsSnapshot => {
      const { links, totals: t } = book.read()
      const workers = node.isPrimary ? node.status().map((w) => ({ id: w.id, pid: w.pid, state: w.state, restarts: w.restarts })) : undefined
      const restarts = (workers ?? []).reduce((n, w) => n + w.restarts, 0)
      const gauges: Record<string, number> = { links: links.filter((l) => l.state !== 'down').length }
      if (workers !== undefined) gauges.workers_online = workers.filter((w) => w.state === 'online' || w.state === 'listening').length
      return snapshot('cluster', String(node.id), 'cluster', { ...totals(t), worker_restarts: restarts, worker_exits: exits }, gauges, { links, ...(workers === undefined ? {} : { workers }) })
    }
    return poll(o.interval, subscriber, take, () => [
      node.links$.subscribe((link: Link) => {
        book.add(link, 'link', String(link.id), { pid: link.pid })
        void link.closed.then(() => book.end(link))
      }),
      node.workers$.subscribe((e) => {
        if (e.type === 'exit') exits++
      }),
    ])
  })
}
