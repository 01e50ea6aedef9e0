/**
 * Observers of a mesh node: connections that said `observe` instead of `hello` in the handshake.
 * They are not members (not in `members$`, not counted, never dialled back); each gets a heartbeat
 * link like a peer and, every {@link SUMMARY_INTERVAL} ms, this node's stats summary
 * (`src/metrics/summary.ts`) as a message, followed by the latest summary this node holds of each
 * of its peers (summaries.ts; each keeps its origin's `node` and `at`: the observer keeps the
 * newest per node). A slow observer misses summaries (counted), it never holds up the node.
 * @module
 */
import type net from 'node:net'
import type { Subscription } from 'rxjs'
import { raw } from '../codec/index.js'
import { meshMetrics } from '../metrics/sources.js'
import { encodeSummary } from '../metrics/summary.js'
import type { Mesh } from './options.js'
import { createLink, type LinkOptions, type MeshPeer } from './peer.js'
import type { PeerSummaries } from './summaries.js'

/** Time between two summaries sent to each observer, ms. */
export const SUMMARY_INTERVAL = 1000
/** Most observers one node serves at once (more are refused). */
export const MAX_OBSERVERS = 16

/** The observer links of one mesh node. */
export class Observers {
  private readonly links = new Set<MeshPeer<Uint8Array, Uint8Array>>()
  private summaries: Subscription | undefined
  /** Summaries not sent because an observer's send buffer was full. */
  skipped = 0

  constructor(
    private readonly mesh: Mesh<any, any>,
    private readonly timing: LinkOptions,
    private readonly peers: PeerSummaries,
  ) {}

  /** Whether one more observer is welcome. */
  get full(): boolean {
    return this.links.size >= MAX_OBSERVERS
  }

  /** Adopts a socket whose handshake said `observe` (the welcome is already written). */
  add(socket: net.Socket, id: string): void {
    const link = createLink<Uint8Array, Uint8Array>(id, socket.remoteAddress ?? '', 0, false, socket, raw, { ...this.timing, highWaterMark: Math.min(this.timing.highWaterMark, 1024 * 1024) })
    this.links.add(link)
    link.source.subscribe({ error: () => {} }) // an observer sends nothing but heartbeats
    void link.left.then(() => {
      this.links.delete(link)
      if (this.links.size === 0) this.stop()
    })
    link.start()
    this.summaries ??= meshMetrics(this.mesh, { interval: SUMMARY_INTERVAL, linger: this.timing.failureTimeout }).subscribe((s) => {
      const all = [encodeSummary({ ...s, counters: { ...s.counters, summaries_skipped: this.skipped } })]
      for (const held of this.peers.latest()) all.push(encodeSummary(held.snapshot))
      for (const l of this.links) {
        for (const bytes of all) {
          if (l.writable) l.send(bytes)
          else this.skipped++
        }
      }
    })
  }

  private stop(): void {
    this.summaries?.unsubscribe()
    this.summaries = undefined
  }

  /** Closes every observer link. */
  async close(): Promise<void> {
    this.stop()
    await Promise.all([...this.links].map((l) => l.close()))
  }
}
