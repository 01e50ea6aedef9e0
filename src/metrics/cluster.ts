/**
 * The cluster seen from its primary: each worker reports its own snapshots (its links to every
 * other process) to the primary over cluster IPC, tagged as rxnet control messages so the
 * application's `ipc$` never sees them; {@link clusterView} in the primary emits its own snapshots
 * and every worker's, so one place sees every process and every link between them.
 * @module
 */
import nodeCluster, { type Worker } from 'node:cluster'
import { Observable, type Subscription } from 'rxjs'
import type { ClusterNode } from '../cluster/index.js'
import { TAG } from '../cluster/ipc.js'
import { type MetricsOptions, clusterMetrics } from './sources.js'
import type { MetricsSnapshot } from './snapshot.js'

const KIND = 'metrics'

function isReport(m: unknown): m is { [TAG]: typeof KIND; snapshot: MetricsSnapshot } {
  return typeof m === 'object' && m !== null && (m as Record<string, unknown>)[TAG] === KIND && typeof (m as { snapshot?: unknown }).snapshot === 'object'
}

/**
 * In a worker: sends its {@link clusterMetrics} snapshots to the primary every `interval` ms until
 * unsubscribed. In the primary: does nothing (the primary reads them with {@link clusterView}).
 * @example
 * ```ts
 * import { cluster, reportClusterMetrics } from 'rxnet'
 * const node = cluster({ workers: 4 })
 * if (!node.isPrimary) reportClusterMetrics(node)
 * ```
 */
export function reportClusterMetrics(node: ClusterNode, options: MetricsOptions = {}): Subscription {
  return clusterMetrics(node, options).subscribe((snapshot) => {
    if (!node.isPrimary && process.connected) process.send?.({ [TAG]: KIND, snapshot })
  })
}

/**
 * In the primary: its own {@link clusterMetrics} snapshots (links, worker slots and restarts) and
 * every snapshot a worker sends with {@link reportClusterMetrics}, as they arrive. In a worker: its
 * own snapshots only.
 * @example
 * ```ts
 * import { cluster, clusterView, startDashboard } from 'rxnet'
 * const node = cluster({ workers: 4 })
 * if (node.isPrimary) await startDashboard({ sources: clusterView(node), title: 'my cluster' })
 * ```
 */
export function clusterView(node: ClusterNode, options: MetricsOptions = {}): Observable<MetricsSnapshot> {
  return new Observable<MetricsSnapshot>((subscriber) => {
    const own = clusterMetrics(node, options).subscribe(subscriber)
    if (!node.isPrimary) return own
    const onMessage = (_worker: Worker, m: unknown): void => {
      if (isReport(m)) subscriber.next({ ...m.snapshot, time: Date.now() })
    }
    nodeCluster.on('message', onMessage)
    return () => {
      nodeCluster.off('message', onMessage)
      own.unsubscribe()
    }
  })
}
