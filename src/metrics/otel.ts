/**
 * OpenTelemetry: the snapshots of any transports as observable instruments of an
 * `@opentelemetry/api` Meter (types only: no SDK here; the application's MeterProvider and
 * exporter decide where they go). Messaging semantic-convention names where one exists
 * (`messaging.client.sent.messages`, `messaging.client.consumed.messages`), `rxnet.*` otherwise.
 * @module
 */
import type { Attributes, BatchObservableCallback, Meter, Observable as OtelObservable } from '@opentelemetry/api'
import { checkKeys } from '../options.js'
import { type MetricName, METRICS } from './names.js'
import type { LinkSnapshot, MetricsSnapshot } from './snapshot.js'
import { type MetricsSources, SnapshotStore } from './store.js'

/**
 * Options of {@link otelBridge}.
 * @example
 * ```ts
 * import { metrics } from '@opentelemetry/api'
 * otelBridge(meshMetrics(mesh), { meter: metrics.getMeter('rxnet') })
 * ```
 */
export interface OtelBridgeOptions {
  /** The Meter to create the instruments on (`metrics.getMeter('rxnet')` of `@opentelemetry/api`). */
  meter: Meter
}

/**
 * A running bridge: the instruments report the latest snapshots at every collection.
 * @example
 * ```ts
 * const bridge = otelBridge(meshMetrics(mesh), { meter })
 * bridge.close()
 * ```
 */
export interface OtelBridge {
  /** Stops reading the sources and unregisters the callback. Idempotent. */
  close(): void
}

/** Semantic-convention attributes for a messaging metric, rxnet's own otherwise. */
function nodeAttributes(m: MetricName, s: MetricsSnapshot): Attributes {
  const a: Attributes = { 'messaging.system': 'rxnet', 'rxnet.transport': s.transport, 'rxnet.node': s.node, 'rxnet.name': s.name }
  if (m.otel === 'messaging.client.sent.messages') a['messaging.operation.name'] = 'send'
  if (m.otel === 'messaging.client.consumed.messages') a['messaging.operation.name'] = 'receive'
  return a
}

function linkAttributes(s: MetricsSnapshot, l: LinkSnapshot): Attributes {
  return { 'messaging.system': 'rxnet', 'rxnet.transport': s.transport, 'rxnet.node': l.from, 'rxnet.peer': l.to, 'rxnet.link.kind': l.kind }
}

function linkValue(l: LinkSnapshot, stem: string): number | undefined {
  if (stem === 'rtt_seconds') return l.rttSeconds
  if (stem === 'up') return l.state === 'down' ? 0 : 1
  if (stem === 'suspect') return l.state === 'suspect' ? 1 : 0
  return (l.counters as unknown as Record<string, number>)[stem] ?? l.gauges[stem]
}

/**
 * Reports the metrics of `sources` through observable instruments of `meter`: counters as
 * ObservableCounters, gauges and the link RTT (seconds) as ObservableGauges, one batch callback.
 * @example
 * ```ts
 * import { metrics } from '@opentelemetry/api'
 * import { createMesh, meshMetrics, otelBridge } from 'rxnet'
 * const mesh = createMesh({ name: 'demo', interface: '127.0.0.1' })
 * const bridge = otelBridge(meshMetrics(mesh), { meter: metrics.getMeter('rxnet') })
 * // ... the application's MeterProvider exports them
 * bridge.close()
 * ```
 */
export function otelBridge(sources: MetricsSources, options: OtelBridgeOptions): OtelBridge {
  checkKeys('otelBridge', options, ['meter'])
  const { meter } = options
  const instruments = METRICS.map((m) => {
    const opts = { description: m.help, unit: m.unit }
    return { m, instrument: m.type === 'counter' ? meter.createObservableCounter(m.otel, opts) : meter.createObservableGauge(m.otel, opts) }
  })
  const store = new SnapshotStore()
  const callback: BatchObservableCallback = (result) => {
    for (const s of store.snapshots()) {
      for (const { m, instrument } of instruments) {
        if (m.level === 'node') {
          const v = m.type === 'counter' ? s.counters[m.stem] : s.gauges[m.stem]
          if (v !== undefined) result.observe(instrument, v, nodeAttributes(m, s))
        } else {
          for (const l of s.links) {
            const v = linkValue(l, m.stem)
            if (v !== undefined) result.observe(instrument, v, linkAttributes(s, l))
          }
        }
      }
    }
  }
  const observables: OtelObservable[] = instruments.map((i) => i.instrument)
  meter.addBatchObservableCallback(callback, observables)
  store.addAll(sources)
  let closed = false
  return {
    close() {
      if (closed) return
      closed = true
      meter.removeBatchObservableCallback(callback, observables)
      store.close()
    },
  }
}
