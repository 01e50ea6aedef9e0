/**
 * The hub's reserved `$SYS` topics (in the spirit of NATS `$SYS`): a client that publishes on
 * {@link SYS_HUB_STATS_REQUEST} gets, on `$SYS.HUB.<hubId>.STATS`, a JSON {@link HubStatsReply}:
 * the hub's counters and its clients with their subscriptions and slow state, at once and then
 * every second for {@link SYS_LEASE} ms after the last request. The request is
 * answered by the hub itself: it is neither routed to other clients nor bridged. Pure helpers.
 * @module
 */
import type { ChannelStats } from '../channel.js'
import type { HubStats } from './options.js'

/** Publish anything here to ask the hub for its stats. */
export const SYS_HUB_STATS_REQUEST = '$SYS.REQ.HUB.STATS'
/** Subscribe to this pattern to hear every local hub's answer. */
export const SYS_HUB_STATS_PATTERN = '$SYS.HUB.*.STATS'
/** After a request the hub answers again every second for this long, ms (a congested hub does not read the next request). */
export const SYS_LEASE = 10_000
/** Most clients listed in one answer (the rest are counted in `omitted`). */
export const MAX_SYS_CLIENTS = 256
/** Most subscriptions listed per client (the rest are counted in its `omittedSubscriptions`). */
export const MAX_SYS_PATTERNS = 32

/** The topic a hub answers a stats request on. */
export function sysHubStatsTopic(hubId: string): string {
  return `$SYS.HUB.${hubId}.STATS`
}

/** One client of a hub, as its stats answer lists it. */
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

/** What a hub answers on `$SYS.HUB.<id>.STATS`. */
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
