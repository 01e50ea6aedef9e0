/**
 * The dashboard server: one page (HTML, JS, CSS shipped in the package, nothing fetched from
 * elsewhere), the live view over Server-Sent Events at `/events`, the view as JSON at `/view.json`,
 * and the Prometheus text at `/metrics`. Listens on 127.0.0.1 unless told otherwise.
 * @module
 */
import fs from 'node:fs'
import http, { type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { type Observable, ReplaySubject, share } from 'rxjs'
import { checkInt, checkKeys, withDefaults } from '../options.js'
import { type PrometheusExporter, prometheusExporter } from '../metrics/prometheus.js'
import type { MetricsSnapshot } from '../metrics/snapshot.js'
import { type MetricsSources, SnapshotStore, sourceList } from '../metrics/store.js'
import { buildView, type View } from './view.js'

/**
 * Options of {@link startDashboard}.
 * @example
 * ```ts
 * await startDashboard({ sources: [observeMesh('demo', { interface: '127.0.0.1' })], port: 8090, title: 'demo mesh' })
 * ```
 */
export interface DashboardOptions {
  /** What to show: snapshot streams (`observeMesh`, {@link meshMetrics}, {@link hubMetrics} ...). */
  sources: MetricsSources
  /** TCP port; 0 picks a free one. @default 0 */
  port?: number
  /** Address to bind. @default '127.0.0.1' */
  host?: string
  /** Heading of the page. @default 'rxnet' */
  title?: string
  /** Time between two views pushed to the page, ms. @default 1000 */
  interval?: number
  /** A node whose latest snapshot is older than this is no longer drawn, ms. @default 5000 */
  staleAfter?: number
  /** A node reported down is drawn (as down) for this long, ms. @default 1500 (the mesh failure timeout) */
  linger?: number
  /** Node ids not drawn (the observer's own). @default [] */
  hidden?: string[]
}

/**
 * Defaults of {@link DashboardOptions}.
 * @example
 * ```ts
 * console.log(DEFAULT_DASHBOARD_OPTIONS.host) // 127.0.0.1
 * ```
 */
export const DEFAULT_DASHBOARD_OPTIONS = { port: 0, host: '127.0.0.1', title: 'rxnet', interval: 1000, staleAfter: 5000, linger: 1500, hidden: [] as string[] }

/**
 * A running dashboard.
 * @example
 * ```ts
 * const d = await startDashboard({ sources: meshMetrics(mesh) })
 * console.log(`open ${d.url}`)
 * await d.close()
 * ```
 */
export interface Dashboard {
  /** `http://127.0.0.1:PORT/`. */
  readonly url: string
  readonly port: number
  /** The view the page shows now. */
  view(): View
  /** Stops the server, the event streams and the sources. Idempotent. */
  close(): Promise<void>
}

const PAGE: Record<string, [string, string]> = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/index.html': ['index.html', 'text/html; charset=utf-8'],
  '/app.js': ['app.js', 'text/javascript; charset=utf-8'],
  '/style.css': ['style.css', 'text/css; charset=utf-8'],
}

/** The page's files, read once from the package (`page/` beside this module). */
function readPage(): Map<string, Buffer> {
  const files = new Map<string, Buffer>()
  for (const [file] of Object.values(PAGE)) files.set(file, fs.readFileSync(new URL(`./page/${file}`, import.meta.url)))
  return files
}

/**
 * Serves the live dashboard of `sources`.
 * @example
 * ```ts
 * import { createMesh, meshMetrics, startDashboard } from 'rxnet'
 * const mesh = createMesh({ name: 'demo', interface: '127.0.0.1' })
 * const dashboard = await startDashboard({ sources: meshMetrics(mesh), title: 'demo' })
 * console.log(dashboard.url)
 * ```
 */
export async function startDashboard(options: DashboardOptions): Promise<Dashboard> {
  checkKeys('startDashboard', options, ['sources', ...Object.keys(DEFAULT_DASHBOARD_OPTIONS)])
  const o = withDefaults(DEFAULT_DASHBOARD_OPTIONS, options)
  checkInt('startDashboard: port', o.port, 0, 65535)
  checkInt('startDashboard: interval', o.interval)
  checkInt('startDashboard: staleAfter', o.staleAfter)
  checkInt('startDashboard: linger', o.linger, 0)
  const page = readPage()
  // One subscription per source, shared by the view and the Prometheus exporter.
  const shared: Observable<MetricsSnapshot>[] = sourceList(options.sources).map((s) => s.pipe(share({ connector: () => new ReplaySubject<MetricsSnapshot>(1) })))
  const store = new SnapshotStore()
  store.addAll(shared)
  let exporter: PrometheusExporter | undefined
  let exporterError: unknown
  try {
    exporter = await prometheusExporter(shared)
  } catch (e) {
    exporterError = e
  }
  const hidden = new Set(o.hidden)
  const view = (): View => {
    const now = Date.now()
    return buildView(
      store.snapshots().filter((s) => now - s.time <= (s.state === 'down' ? o.linger : o.staleAfter)),
      o.title,
      hidden,
      now,
    )
  }
  const streams = new Set<ServerResponse>()
  const push = (): void => {
    if (streams.size === 0) return
    const data = `data: ${JSON.stringify(view())}\n\n`
    for (const res of streams) res.write(data)
  }
  const timer = setInterval(push, o.interval)
  timer.unref()

  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0]!
    if (req.method !== 'GET') return void res.writeHead(405, { allow: 'GET' }).end()
    const asset = PAGE[url]
    if (asset !== undefined) return void res.writeHead(200, { 'content-type': asset[1], 'cache-control': 'no-cache' }).end(page.get(asset[0]))
    if (url === '/view.json') return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(view()))
    if (url === '/metrics') {
      if (exporter !== undefined) return exporter.handler(req, res)
      return void res.writeHead(501, { 'content-type': 'text/plain' }).end(`${String((exporterError as Error)?.message ?? exporterError)}\n`)
    }
    if (url === '/events') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' })
      res.write(`retry: ${o.interval}\ndata: ${JSON.stringify(view())}\n\n`)
      streams.add(res)
      const onClose = (): void => void streams.delete(res)
      req.once('close', onClose)
      return
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n')
  })
  const cleanup = (): void => {
    clearInterval(timer)
    exporter?.close()
    store.close()
  }
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(o.port, o.host, () => {
        server.off('error', reject)
        resolve()
      })
    })
  } catch (e) {
    cleanup()
    throw e
  }
  const port = (server.address() as AddressInfo).port
  let closing: Promise<void> | undefined
  return {
    url: `http://${o.host.includes(':') ? `[${o.host}]` : o.host}:${port}/`,
    port,
    view,
    close() {
      closing ??= new Promise<void>((resolve) => {
        cleanup()
        for (const res of streams) res.end()
        streams.clear()
        server.close(() => resolve())
        server.closeAllConnections()
      })
      return closing
    },
  }
}
