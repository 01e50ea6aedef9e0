import { afterEach, describe, expect, it } from 'vitest'
import { ReplaySubject, filter, firstValueFrom, timeout } from 'rxjs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { Registry } from 'prom-client'
import { createMesh, meshMetrics, prometheusExporter, serveMetrics, METRICS, type Mesh, type MetricsSnapshot } from 'rxnet'
import { have, promtoolCheck, startPrometheus } from './prometheus-server.js'

const cleanups: (() => Promise<unknown> | unknown)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

/** Two meshes on loopback linked through a seed, heartbeats every 50 ms. */
async function pair(name: string): Promise<[Mesh, Mesh]> {
  const a = createMesh({ name, id: 'a', interface: '127.0.0.1', discovery: false, heartbeatInterval: 50 })
  cleanups.push(() => a.close())
  const { port } = await a.listen(0, '127.0.0.1')
  const b = createMesh({ name, id: 'b', interface: '127.0.0.1', discovery: false, seeds: [`127.0.0.1:${port}`], heartbeatInterval: 50 })
  cleanups.push(() => b.close())
  await b.listen(0, '127.0.0.1')
  return [a, b]
}

/** meshMetrics of `mesh`, shared, resolved once a snapshot shows a link with an RTT. */
async function measured(mesh: Mesh): Promise<ReplaySubject<MetricsSnapshot>> {
  const snaps = new ReplaySubject<MetricsSnapshot>(1)
  const sub = meshMetrics(mesh, { interval: 25 }).subscribe(snaps)
  cleanups.push(() => sub.unsubscribe())
  await firstValueFrom(snaps.pipe(filter((s) => s.links.some((l) => l.rttSeconds !== undefined)), timeout(10_000)))
  return snaps
}

describe('prometheus text', () => {
  it('names, types and units of the table; rtt histogram; passes promtool check metrics', async () => {
    const [a] = await pair('prom-text')
    const snaps = await measured(a)
    a.broadcast('x')
    await firstValueFrom(snaps.pipe(filter((s) => s.counters.messages_sent! >= 1), timeout(10_000)))
    const exporter = await prometheusExporter(snaps)
    cleanups.push(() => exporter.close())
    const text = await exporter.metrics()
    expect(exporter.contentType).toBe('text/plain; version=0.0.4; charset=utf-8')
    expect(text).toContain('# TYPE rxnet_messages_sent_total counter')
    expect(text).toContain('# TYPE rxnet_link_rtt_seconds histogram')
    expect(text).toContain('# TYPE rxnet_members gauge')
    expect(text).toMatch(/^rxnet_members\{transport="mesh",node="a",name="prom-text"\} 1$/m)
    expect(text).toMatch(/^rxnet_link_up\{transport="mesh",node="a",peer="b",kind="peer"\} 1$/m)
    expect(text).toMatch(/^rxnet_link_rtt_seconds_count\{transport="mesh",node="a",peer="b",kind="peer"\} [1-9]\d*$/m)
    expect(text).toMatch(/^rxnet_link_sent_bytes_total\{transport="mesh",node="a",peer="b",kind="peer"\} [1-9]\d*$/m)
    for (const m of METRICS) {
      if (m.type === 'counter') expect(m.prometheus).toMatch(/^rxnet_[a-z_]+_total$/)
      expect(m.prometheus).not.toMatch(/_ms|millis/)
    }
    if (!have('promtool')) return void console.warn('skipped promtool check: promtool is not installed (Debian package prometheus)')
    const check = promtoolCheck(text)
    expect(check.output).toBe('')
    expect(check.status).toBe(0)
  })

  it('promtool check metrics fails on a counter without _total (the check is real)', () => {
    if (!have('promtool')) return void console.warn('skipped: promtool is not installed')
    expect(promtoolCheck('# HELP x_sent Sent.\n# TYPE x_sent counter\nx_sent 1\n').status).not.toBe(0)
  })

  it('mounts on an existing http server and in an existing registry; close() removes its metrics', async () => {
    const [a] = await pair('prom-mount')
    const snaps = await measured(a)
    const registry = new Registry()
    const exporter = await prometheusExporter(snaps, { registry })
    cleanups.push(() => exporter.close())
    const server = http.createServer((req, res) => (req.url === '/metrics' ? exporter.handler(req, res) : res.writeHead(200).end('app')))
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    cleanups.push(() => new Promise((r) => server.close(r)))
    const r = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`)
    expect(r.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8')
    expect(await r.text()).toContain('rxnet_link_rtt_seconds_bucket{le="0.001",transport="mesh",node="a",peer="b",kind="peer"}')
    exporter.close()
    expect(registry.getMetricsAsArray()).toHaveLength(0)
  })

  it('refuses unknown options', async () => {
    await expect(serveMetrics({ sources: [], prot: 1 } as never)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    await expect(serveMetrics({ sources: [], port: 70000 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
  })
})

describe.skipIf(!have('prometheus'))('a real prometheus server scrapes serveMetrics', () => {
  it('its HTTP API returns the mesh series: members, link RTT histogram, counters', async () => {
    const [a, b] = await pair('prom-scrape')
    const server = await serveMetrics({ sources: [meshMetrics(a, { interval: 100 }), meshMetrics(b, { interval: 100 })], port: 0 })
    cleanups.push(() => server.close())
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/)
    const prom = await startPrometheus([`127.0.0.1:${server.port}`])
    cleanups.push(() => prom.close())
    const up = await prom.until('up{job="rxnet"}', (r) => r.length === 1 && r[0]!.value[1] === '1')
    expect(up[0]!.metric.instance).toBe(`127.0.0.1:${server.port}`)
    const members = await prom.until('rxnet_members{name="prom-scrape"}', (r) => r.length === 2 && r.every((s) => s.value[1] === '1'))
    expect(members.map((s) => s.metric.node).sort()).toEqual(['a', 'b'])
    const rtt = await prom.until('rxnet_link_rtt_seconds_count', (r) => r.length === 2 && r.every((s) => Number(s.value[1]) > 0))
    expect(rtt.map((s) => `${s.metric.node}->${s.metric.peer}`).sort()).toEqual(['a->b', 'b->a'])
    await prom.until('histogram_quantile(0.5, rxnet_link_rtt_seconds_bucket)', (r) => r.length === 2 && r.every((s) => Number(s.value[1]) > 0 && Number(s.value[1]) < 1))
    a.broadcast('one')
    a.broadcast('two')
    await prom.until('rxnet_messages_sent_total{node="a",name="prom-scrape"}', (r) => r.length === 1 && Number(r[0]!.value[1]) >= 2)
  })
})
