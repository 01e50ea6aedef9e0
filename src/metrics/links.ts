/**
 * The link book of a collector: the connections a node has now, the ones that ended (kept as
 * `'down'` for a linger), and the totals of every ended one, so a node's counters never go down
 * when a link goes away. Shared by every transport's collector (mesh peers, cluster links).
 * @module
 */
import type { ChannelStats } from '../channel.js'
import type { LinkCounters, LinkSnapshot, LinkState } from './snapshot.js'

/** What the book needs from a live connection. */
export interface TrackedLink {
  readonly stats: ChannelStats & {
    /**
     * Control frames received (a mesh peer's heartbeats and summaries): not messages, but they
     * show that the far side is alive, so they keep the link from turning `'suspect'`.
     */
    readonly controlIn?: number
  }
  /** Heartbeat round trip in ms (NaN or absent: not measured). */
  readonly rtt?: number
}

interface Entry {
  link: TrackedLink
  kind: LinkSnapshot['kind']
  to: string
  info: LinkSnapshot['info']
  /** {@link heard} at the last change, and when that was (ms since the epoch). */
  lastHeard: number
  lastChange: number
  endedAt: number | null
  final: LinkCounters | null
}

/** A grows-whenever-anything-arrives reading of a link: payload bytes plus control frames (heartbeats). */
function heard(link: TrackedLink): number {
  return link.stats.bytesIn + (link.stats.controlIn ?? 0)
}

/** A connection's counters, by metric stem (a link's in snapshots, a channel's as a node's). */
export function channelCounters(s: ChannelStats): LinkCounters {
  return {
    messages_received: s.messagesIn,
    messages_sent: s.messagesOut,
    received_bytes: s.bytesIn,
    sent_bytes: s.bytesOut,
    dropped_messages: s.dropped,
    overflows: s.overflows,
  }
}

const ZERO: LinkCounters = { messages_received: 0, messages_sent: 0, received_bytes: 0, sent_bytes: 0, dropped_messages: 0, overflows: 0 }

/** Timing of a {@link LinkBook}. */
export interface LinkBookTiming {
  /** A link that received nothing (heartbeats included) for this long is `'suspect'`, ms. */
  suspectAfter: number
  /** How long an ended link stays in snapshots as `'down'`, ms. */
  linger: number
}

/** Tracks the links of one node for its collector. */
export class LinkBook {
  private readonly entries = new Map<TrackedLink, Entry>()
  private readonly retired: LinkCounters = { ...ZERO }

  constructor(
    private readonly from: string,
    private readonly timing: LinkBookTiming,
  ) {}

  /** A link came up. */
  add(link: TrackedLink, kind: LinkSnapshot['kind'], to: string, info?: LinkSnapshot['info']): void {
    if (this.entries.has(link)) return
    this.entries.set(link, { link, kind, to, info, lastHeard: heard(link), lastChange: Date.now(), endedAt: null, final: null })
  }

  /** A link ended: its counters are frozen and added to the retired totals. */
  end(link: TrackedLink): void {
    const e = this.entries.get(link)
    if (e === undefined || e.endedAt !== null) return
    e.endedAt = Date.now()
    e.final = channelCounters(link.stats)
    for (const k of Object.keys(ZERO) as (keyof LinkCounters)[]) this.retired[k] += e.final[k]
  }

  /** Ends every link not in `live` (for sources that give the whole set, like `members$`). */
  endAllBut(live: Iterable<TrackedLink>): void {
    const keep = new Set(live)
    for (const link of this.entries.keys()) if (!keep.has(link)) this.end(link)
  }

  /** The links now (down ones within their linger), and the node's totals over every link ever. */
  read(now = Date.now()): { links: LinkSnapshot[]; totals: LinkCounters } {
    const links: LinkSnapshot[] = []
    const totals = { ...this.retired }
    for (const [link, e] of this.entries) {
      if (e.endedAt !== null && now - e.endedAt > this.timing.linger) {
        this.entries.delete(link)
        continue
      }
      const counters = e.final ?? channelCounters(link.stats)
      if (e.final === null) {
        for (const k of Object.keys(ZERO) as (keyof LinkCounters)[]) totals[k] += counters[k]
        const h = heard(link)
        if (h !== e.lastHeard) {
          e.lastHeard = h
          e.lastChange = now
        }
      }
      const state: LinkState = e.endedAt !== null ? 'down' : now - e.lastChange > this.timing.suspectAfter ? 'suspect' : 'up'
      const snap: LinkSnapshot = { kind: e.kind, from: this.from, to: e.to, state, counters, gauges: { buffered_bytes: e.final === null ? link.stats.bufferedBytes : 0 } }
      const rtt = link.rtt
      if (rtt !== undefined && Number.isFinite(rtt) && e.endedAt === null) snap.rttSeconds = rtt / 1000
      if (e.info !== undefined) snap.info = e.info
      links.push(snap)
    }
    return { links, totals }
  }
}
