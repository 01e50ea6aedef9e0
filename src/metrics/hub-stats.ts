/**
 * A hub seen through its `$SYS` stats topic: {@link hubStats$} asks every `interval` ms and emits
 * the answers as snapshots, the hub's clients as links with their subscriptions and slow state.
 * @module
 */
import { Observable } from 'rxjs'
import type { Bus } from '../bus/index.js'
import { type HubStatsReply, SYS_HUB_STATS_PATTERN, SYS_HUB_STATS_REQUEST } from '../bus/sys.js'
import { checkInt, checkKeys } from '../options.js'
import type { MetricsSnapshot } from './snapshot.js'
import { channelCounters } from './links.js'
import { hubCounters } from './sources.js'

/** A hub's `$SYS` answer as a snapshot (clients as `'client'` links; a slow one is `'suspect'`). */
export function hubReplySnapshot(r: HubStatsReply, time = Date.now()): MetricsSnapshot {
  return {
    transport: 'hub',
    node: r.hub,
    name: r.path,
    time,
    counters: hubCounters(r.stats),
    gauges: { clients: r.stats.clients, ...(r.omitted > 0 ? { links_omitted: r.omitted } : {}) },
    links: r.clients.map((c) => ({
      kind: 'client',
      from: r.hub,
      to: c.id,
      state: c.slow ? 'suspect' : 'up',
      counters: channelCounters(c),
      gauges: { buffered_bytes: c.bufferedBytes },
      info: { subscriptions: c.subscriptions, slow: c.slow },
    })),
  }
}

/**
 * Snapshots of the hub(s) `bus` is connected to, asked for on the reserved `$SYS` topic every
 * `interval` ms (default 1000). The bus must use the `json` codec (the default). Runs until
 * unsubscribed or the bus closes.
 * @example
 * ```ts
 * import { connectBus, hubStats$ } from 'rxnet'
 * const bus = connectBus('/tmp/app.sock')
 * hubStats$(bus).subscribe((s) => s.links.forEach((c) => console.log(c.to, c.info?.subscriptions, c.info?.slow)))
 * ```
 */
export function hubStats$(bus: Bus, options: { interval?: number } = {}): Observable<MetricsSnapshot> {
  checkKeys('hubStats$', options, ['interval'])
  const interval = checkInt('hubStats$: interval', options.interval ?? 1000)
  return new Observable<MetricsSnapshot>((subscriber) => {
    const answers = bus.messages$<HubStatsReply>(SYS_HUB_STATS_PATTERN).subscribe({
      next: (r) => {
        if (typeof r === 'object' && r !== null && typeof r.hub === 'string' && Array.isArray(r.clients)) subscriber.next(hubReplySnapshot(r))
      },
      complete: () => subscriber.complete(),
      error: (e) => subscriber.error(e),
    })
    const ask = (): void => {
      if (bus.connected) bus.emit(SYS_HUB_STATS_REQUEST, null)
    }
    void bus.flush().then(ask, () => {})
    const timer = setInterval(ask, interval)
    timer.unref()
    return () => {
      clearInterval(timer)
      answers.unsubscribe()
    }
  })
}
