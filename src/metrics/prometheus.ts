/**
 * Prometheus: the snapshots of any transports as text exposition (format 0.0.4) through prom-client
 * (an optional peer dependency, loaded on first use). Counters end in `_total`, sizes are in bytes,
 * times in seconds, the link RTT is a histogram; names are those of {@link METRICS}.
 * @module
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Counter, Gauge, Histogram, Registry } from 'prom-client'
import { MissingDependencyError } from '../errors.js'
import { checkInt, checkKeys } from '../options.js'
import { DEFAULT_RTT_BUCKETS, METRICS } from './names.js'
import { type LinkSnapshot, type MetricsSnapshot, linkKey, snapshotKey } from './snapshot.js'
import { type MetricsSources, SnapshotStore } from './store.js'

type PromClient = typeof import('prom-client')

/** Loads prom-client, or fails with `ERR_MISSING_DEPENDENCY`. */
async function loadPromClient(): Promise<PromClient> {
  try {
    const mod = (await import('prom-client')) as PromClient & { default?: PromClient }
    return mod.default ?? mod
  } catch (e) {
    throw new MissingDependencyError('prom-client', e)
  }
}

/**
 * Options of {@link prometheusExporter}.
 * @example
 * ```ts
 * const exporter = await prometheusExporter(meshMetrics(mesh), { rttBuckets: [0.001, 0.01, 0.1] })
 * ```
 */
export interface PrometheusOptions {
  /** The prom-client registry to register on (e.g. the one of your app). @default a new Registry */
  registry?: Registry
  /** Buckets of `rxnet_link_rtt_seconds`, seconds. @default {@link DEFAULT_RTT_BUCKETS} */
  rttBuckets?: readonly number[]
}

/**
 * Metrics of rxnet sources registered in a prom-client registry.
 * @example
 * ```ts
 * const exporter = await prometheusExporter([meshMetrics(mesh), hubMetrics(hub)])
 * http.createServer((req, res) => (req.url === '/metrics' ? exporter.handler(req, res) : app(req, res)))
 * ```
 */
export interface PrometheusExporter {
  /** The registry the metrics are in. */
  readonly registry: Registry
  /** `text/plain; version=0.0.4; charset=utf-8`. */
  readonly contentType: string
  /** The exposition text now. */
  metrics(): Promise<string>
  /** Answers a request with the exposition text (mount it on `/metrics` of any node:http server). */
  handler(req: IncomingMessage, res: ServerResponse): void
  /** Stops reading the sources and removes the metrics from the registry. Idempotent. */
  close(): void
}

const NODE_LABELS = ['transport', 'node', 'name'] as const
const LINK_LABELS = ['transport', 'node', 'peer', 'kind'] as const

function nodeLabels(s: MetricsSnapshot): Record<(typeof NODE_LABELS)[number], string> {
  return { transport: s.transport, node: s.node, name: s.name }
}

function linkLabels(s: MetricsSnapshot, l: LinkSnapshot): Record<(typeof LINK_LABELS)[number], string> {
  return { transport: s.transport, node: l.from, peer: l.to, kind: l.kind }
}

/** The value of `stem` for one link: its counters, gauges, or its state as 0/1. */
function linkValue(l: LinkSnapshot, stem: string): number | undefined {
  if (stem === 'up') return l.state === 'down' ? 0 : 1
  if (stem === 'suspect') return l.state === 'suspect' ? 1 : 0
  return (l.counters as unknown as Record<string, number>)[stem] ?? l.gauges[stem]
}

/**
 * Registers the metrics of `sources` (snapshot streams such as {@link meshMetrics}) in a
 * prom-client registry. Rejects with `ERR_MISSING_DEPENDENCY` when prom-client is not installed.
 * @example
 * ```ts
 * import { createMesh, meshMetrics, prometheusExporter } from 'rxnet'
 * const mesh = createMesh({ name: 'demo', interface: '127.0.0.1' })
 * const exporter = await prometheusExporter(meshMetrics(mesh))
 * console.log(await exporter.metrics())
 * exporter.close()
 * ```
 */
export async function prometheusExporter(sources: MetricsSources, options: PrometheusOptions = {}): Promise<PrometheusExporter> {
  checkKeys('prometheusExporter', options, ['registry', 'rttBuckets'])
  const prom = await loadPromClient()
  const registry = options.registry ?? new prom.Registry()
  const store = new SnapshotStore()
  const registered: string[] = []
  const metricOf = (name: string): void => void registered.push(name)

  for (const m of METRICS) {
    if (m.type === 'histogram') continue
    const node = m.level === 'node'
    const collect = function (this: Counter | Gauge): void {
      this.reset()
      for (const s of store.snapshots()) {
        if (node) {
          const v = m.type === 'counter' ? s.counters[m.stem] : s.gauges[m.stem]
          if (v !== undefined) set(this, nodeLabels(s), v)
        } else {
          for (const l of s.links) {
            const v = linkValue(l, m.stem)
            if (v !== undefined) set(this, linkLabels(s, l), v)
          }
        }
      }
    }
    const config = { name: m.prometheus, help: m.help, labelNames: node ? NODE_LABELS : LINK_LABELS, registers: [registry], collect }
    if (m.type === 'counter') new prom.Counter(config)
    else new prom.Gauge(config)
    metricOf(m.prometheus)
  }

  const rttName = METRICS.find((m) => m.type === 'histogram')!
  const rtt: Histogram = new prom.Histogram({ name: rttName.prometheus, help: rttName.help, labelNames: LINK_LABELS, buckets: [...(options.rttBuckets ?? DEFAULT_RTT_BUCKETS)], registers: [registry] })
  metricOf(rttName.prometheus)
  // RTT samples: observed once per snapshot; series of links that went away are removed.
  const rttSeries = new Map<string, Map<string, Record<string, string>>>()
  const updates = store.updates$.subscribe((s) => {
    const key = snapshotKey(s)
    const before = rttSeries.get(key) ?? new Map<string, Record<string, string>>()
    const now = new Map<string, Record<string, string>>()
    for (const l of s.links) {
      if (l.state === 'down') continue
      const labels = linkLabels(s, l)
      now.set(linkKey(l), labels)
      if (l.rttSeconds !== undefined) rtt.observe(labels, l.rttSeconds)
    }
    for (const [k, labels] of before) if (!now.has(k)) rtt.remove(labels)
    rttSeries.set(key, now)
  })
  store.addAll(sources)

  let closed = false
  const exporter: PrometheusExporter = {
    registry,
    contentType: prom.Registry.PROMETHEUS_CONTENT_TYPE,
    metrics: () => registry.metrics(),
    handler(_req, res) {
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': exporter.contentType }).end(text),
        (e: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(String(e)),
      )
    },
    close() {
      if (closed) return
      closed = true
      updates.unsubscribe()
      store.close()
      for (const name of registered) registry.removeSingleMetric(name)
    },
  }
  return exporter
}

function set(metric: Counter | Gauge, labels: Record<string, string>, value: number): void {
  if ((metric as Gauge).set !== undefined) (metric as Gauge).set(labels, value)
  else (metric as Counter).inc(labels, value)
}

/**
 * Options of {@link serveMetrics}.
 * @example
 * ```ts
 * await serveMetrics({ sources: meshMetrics(mesh), port: 9464 })
 * ```
 */
export interface ServeMetricsOptions extends PrometheusOptions {
  /** What to export: one snapshot stream or several. */
  sources: MetricsSources
  /** TCP port; 0 picks a free one. @default 0 */
  port?: number
  /** Address to bind. @default '127.0.0.1' */
  host?: string
  /** Path of the exposition. @default '/metrics' */
  path?: string
}

/**
 * Defaults of {@link ServeMetricsOptions}.
 * @example
 * ```ts
 * console.log(DEFAULT_SERVE_METRICS_OPTIONS.host) // 127.0.0.1: loopback unless you say otherwise
 * ```
 */
export const DEFAULT_SERVE_METRICS_OPTIONS = { port: 0, host: '127.0.0.1', path: '/metrics' } as const

/**
 * A running metrics endpoint.
 * @example
 * ```ts
 * const server = await serveMetrics({ sources: meshMetrics(mesh) })
 * console.log(`scrape ${server.url}`)
 * await server.close()
 * ```
 */
export interface MetricsServer {
  /** `http://host:port/metrics`. */
  readonly url: string
  readonly port: number
  readonly exporter: PrometheusExporter
  /** Stops the server and the exporter. Idempotent. */
  close(): Promise<void>
}

/**
 * Serves the Prometheus exposition of `sources` over HTTP (127.0.0.1 by default).
 * @example
 * ```ts
 * import { createMesh, meshMetrics, serveMetrics } from 'rxnet'
 * const mesh = createMesh({ name: 'demo', interface: '127.0.0.1' })
 * const server = await serveMetrics({ sources: meshMetrics(mesh), port: 9464 })
 * console.log(server.url) // http://127.0.0.1:9464/metrics
 * ```
 */
export async function serveMetrics(options: ServeMetricsOptions): Promise<MetricsServer> {
  checkKeys('serveMetrics', options, ['sources', 'port', 'host', 'path', 'registry', 'rttBuckets'])
  const { sources, port = DEFAULT_SERVE_METRICS_OPTIONS.port, host = DEFAULT_SERVE_METRICS_OPTIONS.host, path = DEFAULT_SERVE_METRICS_OPTIONS.path, ...rest } = options
  checkInt('serveMetrics: port', port, 0, 65535)
  const exporter = await prometheusExporter(sources, rest)
  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && (req.url ?? '').split('?')[0] === path) exporter.handler(req, res)
    else res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n')
  })
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, host, () => {
        server.off('error', reject)
        resolve()
      })
    })
  } catch (e) {
    exporter.close()
    throw e
  }
  const bound = (server.address() as AddressInfo).port
  let closing: Promise<void> | undefined
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${bound}${path}`,
    port: bound,
    exporter,
    close() {
      closing ??= new Promise<void>((resolve) => {
        exporter.close()
        server.close(() => resolve())
        server.closeAllConnections()
      })
      return closing
    },
  }
}
