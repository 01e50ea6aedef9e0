/**
 * The latest snapshot of every source: what the exporters (Prometheus, OpenTelemetry) and the
 * dashboard read at collection time. A source that completes or errors is forgotten.
 * @module
 */
import { type Observable, Subject, type Subscription, isObservable } from 'rxjs'
import { type MetricsSnapshot, snapshotKey, withRates } from './snapshot.js'

/**
 * One source or several.
 * @example
 * ```ts
 * import { meshMetrics, hubMetrics, type MetricsSources } from 'rxnet'
 * const sources: MetricsSources = [meshMetrics(mesh), hubMetrics(hub)]
 * ```
 */
export type MetricsSources = Observable<MetricsSnapshot> | Iterable<Observable<MetricsSnapshot>>

/** The sources as a list. */
export function sourceList(sources: MetricsSources): Observable<MetricsSnapshot>[] {
  return isObservable(sources) ? [sources as Observable<MetricsSnapshot>] : [...(sources as Iterable<Observable<MetricsSnapshot>>)]
}

/** Keeps the latest (rated) snapshot of each source; `updates$` emits each one as it arrives. */
export class SnapshotStore {
  private readonly latest = new Map<string, MetricsSnapshot>()
  private readonly subs: Subscription[] = []
  private readonly updates = new Subject<MetricsSnapshot>()
  /** Every snapshot as it arrives (hot). */
  readonly updates$ = this.updates.asObservable()

  /** Reads more sources (subscribe to `updates$` first to see their first snapshots). */
  addAll(sources: MetricsSources): void {
    for (const source of sourceList(sources)) this.add(source)
  }

  /** Reads one more source. */
  add(source: Observable<MetricsSnapshot>): void {
    const keys = new Set<string>()
    const forget = (): void => {
      for (const k of keys) this.latest.delete(k)
    }
    this.subs.push(
      source.pipe(withRates()).subscribe({
        next: (s) => {
          const key = snapshotKey(s)
          keys.add(key)
          this.latest.set(key, s)
          this.updates.next(s)
        },
        complete: forget,
        error: forget,
      }),
    )
  }

  /** The latest snapshot of every live source. */
  snapshots(): MetricsSnapshot[] {
    return [...this.latest.values()]
  }

  /** Stops reading every source. */
  close(): void {
    for (const s of this.subs.splice(0)) s.unsubscribe()
    this.latest.clear()
    this.updates.complete()
  }
}
