/**
 * The hub's reserved `$SYS` topics (in the spirit of NATS `$SYS`): a client that publishes on
 * {@link SYS_HUB_STATS_REQUEST} gets, on `$SYS.HUB.<hubId>.STATS`, a JSON {@link HubStatsReply}:
 * the hub's counters and its clients with their subscriptions and slow state, at once and then
 * every second for {@link SYS_LEASE} ms after the last request. The request is
 * answered by the hub itself: it is neither routed to other clients nor bridged. Pure helpers.
 * @module
 */
import type { ChannelStats } from '../channel.js'
import type { HubStats } from './hub-options.js'

/**
 * Publish anything here to ask the hub for its stats.
 * @example
 * ```ts
 * import { connectBus, SYS_HUB_STATS_REQUEST, SYS_HUB_STATS_PATTERN } from 'rxnet'
 * const bus = connectBus('/tmp/app.sock')
 * bus.messages$(SYS_HUB_STATS_PATTERN).subscribe((reply) => console.log(reply))
 * bus.emit(SYS_HUB_STATS_REQUEST, null)
 * ```
 */
export const SYS_HUB_STATS_REQUEST = '$SYS.REQ.HUB.STATS'
/**
 * Subscribe to this pattern to hear every local hub's answer.
 * @example
 * ```ts
 * import { connectBus, SYS_HUB_STATS_PATTERN, type HubStatsReply } from 'rxnet'
 * connectBus('/tmp/app.sock').messages$<HubStatsReply>(SYS_HUB_STATS_PATTERN).subscribe((r) => console.log(r.hub, r.clients.length))
 * ```
 */
export const SYS_HUB_STATS_PATTERN = '$SYS.HUB.*.STATS'
/**
 * After a request the hub answers again every second for this long, ms (a congested hub does not read the next request).
 * @example
 * ```ts
 * import { SYS_LEASE } from 'rxnet'
 * console.log(SYS_LEASE) // 10000: ask again within 10 s to keep the answers coming
 * ```
 */
export const SYS_LEASE = 10_000
/**
 * Most clients listed in one answer (the rest are counted in `omitted`).
 * @example
 * ```ts
 * import { MAX_SYS_CLIENTS } from 'rxnet'
 * console.log(MAX_SYS_CLIENTS) // 256
 * ```
 */
export const MAX_SYS_CLIENTS = 256
/**
 * Most subscriptions listed per client (the rest are counted in its `omittedSubscriptions`).
 * @example
 * ```ts
 * import { MAX_SYS_PATTERNS } from 'rxnet'
 * console.log(MAX_SYS_PATTERNS) // 32
 * ```
 */
export const MAX_SYS_PATTERNS = 32

/** The topic a hub answers a stats request on. */
export function sysHubStatsTopic(hubId: string): string {
  return `$SYS.HUB.${hubId}.STATS`
}

/**
 * One client of a hub, as its stats answer lists it.
 * @example
 * ```ts
 * import type { HubStatsReply } from 'rxnet'
 * const slow = (r: HubStatsReply) => r.clients.filter((c) => c.slow).map((c) => c.id)
 * ```
 */
export interface HubClientInfo {
  id: string
  subscriptions: string[]
  omittedSubscriptions: number
  /** Over half its budget: the hub stopped reading everyone until it catches up (dropped if it does not). */
  slow: boolean
  messagesIn: number
  messagesOut: number
  bytesIn: number
  bytesOut: number
  dropped: number
  overflows: number
  bufferedBytes: number
}

/**
 * What a hub answers on `$SYS.HUB.<id>.STATS`.
 * @example
 * ```ts
 * import { connectBus, SYS_HUB_STATS_PATTERN, type HubStatsReply } from 'rxnet'
 * connectBus('/tmp/app.sock').messages$<HubStatsReply>(SYS_HUB_STATS_PATTERN).subscribe((r) => console.log(r.stats.published))
 * ```
 */
export interface HubStatsReply {
  hub: string
  path: string
  stats: HubStats
  clients: HubClientInfo[]
  /** Clients not listed (past {@link MAX_SYS_CLIENTS}). */
  omitted: number
}

/** The hub's answer, bounded, from its sessions. */
export function hubStatsReply(hub: string, path: string, stats: HubStats, sessions: Iterable<{ id: string; patterns: Iterable<string>; slow: boolean; stats: ChannelStats }>): HubStatsReply {
  const clients: HubClientInfo[] = []
  let omitted = 0
  for (const s of sessions) {
    if (clients.length >= MAX_SYS_CLIENTS) {
      omitted++
      continue
    }
    const all = [...s.patterns]
    const c = s.stats
    clients.push({ id: s.id, subscriptions: all.slice(0, MAX_SYS_PATTERNS), omittedSubscriptions: Math.max(0, all.length - MAX_SYS_PATTERNS), slow: s.slow, messagesIn: c.messagesIn, messagesOut: c.messagesOut, bytesIn: c.bytesIn, bytesOut: c.bytesOut, dropped: c.dropped, overflows: c.overflows, bufferedBytes: c.bufferedBytes })
  }
  return { hub, path, stats: { ...stats }, clients, omitted }
}

/**
 * @internal The hub's answers to `$SYS` stats requests: `answer` now and every second until
 * {@link SYS_LEASE} ms after the last request (a congested hub may not read the next one in time).
 */
export class StatsLease {
  private until = 0
  private timer: NodeJS.Timeout | null = null

  constructor(private readonly answer: () => void) {}

  request(): void {
    this.answer()
    this.until = Date.now() + SYS_LEASE
    this.timer ??= setInterval(() => {
      if (Date.now() <= this.until) return this.answer()
      this.close()
    }, 1000).unref()
  }

  close(): void {
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
  }
}
