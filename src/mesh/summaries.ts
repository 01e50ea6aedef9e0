/**
 * Stats summaries between peers: every {@link PEER_SUMMARY_INTERVAL} ms (jittered) a node sends
 * its own summary (`src/metrics/summary.ts`, at most {@link MAX_PEER_SUMMARY_BYTES}) as a
 * `summary` control message to each peer whose handshake announced `CAPABILITIES.summaries`, and
 * keeps the latest summary of each peer (at most {@link MAX_PEER_SUMMARIES}, dropped when the peer
 * leaves). Nothing is relayed to peers: the held summaries only go to this node's observers
 * (observer.ts), so an observer attached to one node of a full mesh sees every node and link.
 * A summary that does not decode, or that names another node than the peer that sent it, is
 * counted (`garbage`) and ignored: it never fails the link.
 * @module
 */
import type { Subscription } from 'rxjs'
import { meshMetrics } from '../metrics/sources.js'
import type { MetricsSnapshot } from '../metrics/snapshot.js'
import { decodeSummary, encodeSummary } from '../metrics/summary.js'
import { CAPABILITIES } from './handshake.js'
import type { Mesh } from './options.js'
import type { MeshPeer } from './peer.js'

/**
 * Mean time between two summaries sent to each peer, ms (each send is jittered by up to a quarter).
 * @example
 * ```ts
 * import { PEER_SUMMARY_INTERVAL } from 'rxnet'
 * console.log(PEER_SUMMARY_INTERVAL) // 2000
 * ```
 */
export const PEER_SUMMARY_INTERVAL = 2000
/**
 * Largest summary sent to or accepted from a peer, bytes (a bigger one is not sent: counted in `dropped`).
 * @example
 * ```ts
 * import { MAX_PEER_SUMMARY_BYTES } from 'rxnet'
 * console.log(MAX_PEER_SUMMARY_BYTES) // 16384
 * ```
 */
export const MAX_PEER_SUMMARY_BYTES = 16 * 1024
/**
 * Most peers' summaries one node keeps (a summary from one more peer is dropped, counted).
 * @example
 * ```ts
 * import { MAX_PEER_SUMMARIES } from 'rxnet'
 * console.log(MAX_PEER_SUMMARIES) // 64
 * ```
 */
export const MAX_PEER_SUMMARIES = 64

/**
 * Counters of the peer summaries of one node (`mesh.stats.summaries`).
 * @example
 * ```ts
 * import { createMesh, type SummaryStats } from 'rxnet'
 * const s: SummaryStats = createMesh({ name: 'demo', interface: '127.0.0.1' }).stats.summaries
 * console.log(s.sent, s.received, s.garbage, s.dropped)
 * ```
 */
export interface SummaryStats {
  /** Summaries sent to peers. */
  sent: number
  /** Well-formed summaries received from peers. */
  received: number
  /** Summary control messages from peers that did not decode or named another node: ignored. */
  garbage: number
  /** Summaries not sent (send buffer full, too big) or not kept (more than {@link MAX_PEER_SUMMARIES} peers). */
  dropped: number
}

/** @internal One peer's latest summary as this node holds it. */
export interface HeldSummary {
  snapshot: MetricsSnapshot
  /** The origin's clock when it took the summary (`Date.now()` there). */
  sentAt: number
}

/** @internal The peer summaries of one mesh node. */
export class PeerSummaries {
  readonly stats: SummaryStats = { sent: 0, received: 0, garbage: 0, dropped: 0 }
  private readonly held = new Map<string, HeldSummary>()
  private readonly targets = new Set<MeshPeer<any, any>>()
  private source: Subscription | undefined
  private readonly timers = new Set<NodeJS.Timeout>()

  constructor(
    private readonly mesh: Mesh<any, any>,
    private readonly linger: number,
  ) {}

  /** The latest summary of each peer. */
  latest(): IterableIterator<HeldSummary> {
    return this.held.values()
  }

  /** A new member: listen to its summaries, and send ours if its handshake `flags` accept them. */
  attach(peer: MeshPeer<any, any>, flags: number): void {
    peer.onSummary = (body) => this.receive(peer, body)
    if ((flags & CAPABILITIES.summaries) !== 0) {
      this.targets.add(peer)
      this.source ??= meshMetrics(this.mesh, { interval: PEER_SUMMARY_INTERVAL, linger: this.linger }).subscribe((s) => this.schedule(s))
    }
    void peer.left.then(() => {
      this.targets.delete(peer)
      if (!this.mesh.members.has(peer.id)) this.held.delete(peer.id) // not when a new link for the same node replaced it
      if (this.targets.size === 0) this.stop()
    })
  }

  private receive(peer: MeshPeer<any, any>, body: Uint8Array): void {
    let snapshot: MetricsSnapshot
    try {
      if (body.length > MAX_PEER_SUMMARY_BYTES) throw new RangeError('summary too big')
      snapshot = decodeSummary(body)
    } catch {
      this.stats.garbage++
      return
    }
    if (snapshot.node !== peer.id || snapshot.sentAt === undefined) {
      this.stats.garbage++
      return
    }
    if (!this.held.has(peer.id) && this.held.size >= MAX_PEER_SUMMARIES) {
      this.stats.dropped++
      return
    }
    this.stats.received++
    this.held.set(peer.id, { snapshot, sentAt: snapshot.sentAt })
  }

  /** Sends `s` to every capable peer after a jitter of up to a quarter interval. */
  private schedule(s: MetricsSnapshot): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer)
      const bytes = encodeSummary(s)
      for (const peer of this.targets) {
        if (bytes.length <= MAX_PEER_SUMMARY_BYTES && peer.sendSummary(bytes)) this.stats.sent++
        else this.stats.dropped++
      }
    }, Math.random() * (PEER_SUMMARY_INTERVAL / 4))
    timer.unref()
    this.timers.add(timer)
  }

  private stop(): void {
    this.source?.unsubscribe()
    this.source = undefined
    for (const t of this.timers) clearTimeout(t)
    this.timers.clear()
  }

  /** Stops sending; forgets every held summary. */
  close(): void {
    this.stop()
    this.targets.clear()
    this.held.clear()
  }
}
