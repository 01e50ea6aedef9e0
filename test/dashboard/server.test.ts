import { afterEach, describe, expect, it } from 'vitest'
import { NEVER, ReplaySubject, concat, filter, firstValueFrom, of, timeout } from 'rxjs'
import http from 'node:http'
import { createMesh, meshMetrics, startDashboard, type Mesh, type MetricsSnapshot } from 'rxnet'
import { buildView } from '../../src/dashboard/view.js'

const cleanups: (() => Promise<unknown> | unknown)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

const counters = (sent: number): MetricsSnapshot['links'][number]['counters'] => ({ messages_received: 0, messages_sent: sent, received_bytes: 0, sent_bytes: sent * 10, dropped_messages: 1, overflows: 0 })
const snap = (node: string, links: [string, MetricsSnapshot['links'][number]['state'], number?][], extra: Partial<MetricsSnapshot> = {}): MetricsSnapshot => ({
  transport: 'mesh',
  node,
  name: 'm',
  time: 1000,
  counters: { messages_sent: 3, gaps: 2 },
  gauges: { members: links.length },
  links: links.map(([to, state, rtt]) => ({ kind: 'peer', from: node, to, state, rttSeconds: rtt, counters: counters(5), gauges: {}, rates: { messages_sent: 2, sent_bytes: 20 } })),
  rates: { messages_sent: 2 },
  ...extra,
})

describe('buildView', () => {
  it('one edge per pair with both ends\u2019 RTT and both directions\u2019 rates; worst state wins; a down node takes its links down; hidden ids left out', () => {
    const v = buildView([snap('a', [['b', 'up', 0.001], ['c', 'suspect', 0.002], ['obs', 'up']]), snap('b', [['a', 'up', 0.003]]), snap('c', [['a', 'up']], { state: 'down' }), snap('obs', [])], 'title', new Set(['obs']), 5)
    expect(v.nodes.map((n) => [n.id, n.state])).toEqual([['a', 'up'], ['b', 'up'], ['c', 'down']])
    expect(v.nodes[0]!.trouble).toEqual({ gaps: 2 })
    expect(v.links).toEqual([
      { a: 'a', b: 'b', kind: 'peer', state: 'up', rtt: { a: 0.001, b: 0.003 }, messagesPerSecond: 4, bytesPerSecond: 40, dropped: 2, overflows: 0 },
      { a: 'a', b: 'c', kind: 'peer', state: 'down', rtt: { a: 0.002 }, messagesPerSecond: 4, bytesPerSecond: 40, dropped: 2, overflows: 0 },
    ])
    expect(v).toMatchObject({ time: 5, title: 'title', clients: [], workers: [] })
  })

  it('a node only others report is drawn from their links; hub clients and cluster workers are listed', () => {
    const hub: MetricsSnapshot = { transport: 'hub', node: 'h', name: '/tmp/x.sock', time: 0, counters: {}, gauges: { clients: 1 }, links: [{ kind: 'client', from: 'h', to: 'c1', state: 'suspect', counters: counters(0), gauges: {}, info: { subscriptions: ['a.*'], slow: true } }] }
    const primary: MetricsSnapshot = { transport: 'cluster', node: '0', name: 'cluster', time: 0, counters: {}, gauges: {}, links: [], workers: [{ id: 1, pid: 5, state: 'online', restarts: 3 }] }
    const v = buildView([snap('a', [['z', 'up']]), hub, primary], 't')
    expect(v.nodes.map((n) => n.id)).toEqual(['0', 'a', 'h', 'z'])
    expect(v.clients).toEqual([expect.objectContaining({ node: 'h', to: 'c1', info: { subscriptions: ['a.*'], slow: true } })])
    expect(v.workers).toEqual([{ id: 1, pid: 5, state: 'online', restarts: 3, node: '0' }])
  })
})

function get(url: string): Promise<{ status: number; type: string; body: string }> {
  return fetch(url).then(async (r) => ({ status: r.status, type: r.headers.get('content-type') ?? '', body: await r.text() }))
}

/** The first Server-Sent Event of `url`, parsed. */
function firstEvent(url: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, (res) => {
      let buf = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => {
        buf += d
        const m = /^data: (.*)$/m.exec(buf)
        if (m && buf.includes('\n\n')) {
          req.destroy()
          resolve(JSON.parse(m[1]!))
        }
      })
    })
    req.on('error', reject)
  })
}

describe('startDashboard', () => {
  it('serves the page and its assets from the package (nothing external), the view as SSE and JSON, and /metrics', async () => {
    const a: Mesh = createMesh({ name: 'dash-local', id: 'a', interface: '127.0.0.1', discovery: false, heartbeatInterval: 50 })
    cleanups.push(() => a.close())
    const { port } = await a.listen(0, '127.0.0.1')
    const b: Mesh = createMesh({ name: 'dash-local', id: 'b', interface: '127.0.0.1', discovery: false, seeds: [`127.0.0.1:${port}`], heartbeatInterval: 50 })
    cleanups.push(() => b.close())
    await b.listen(0, '127.0.0.1')
    const sa = new ReplaySubject<MetricsSnapshot>(1)
    const sub = meshMetrics(a, { interval: 25 }).subscribe(sa)
    cleanups.push(() => sub.unsubscribe())
    await firstValueFrom(sa.pipe(filter((s) => s.links.some((l) => l.rttSeconds !== undefined)), timeout(10_000)))
    const d = await startDashboard({ sources: [sa, meshMetrics(b, { interval: 25 })], title: 'local', interval: 50 })
    cleanups.push(() => d.close())
    expect(d.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/)
    const page = await get(d.url)
    expect(page.type).toContain('text/html')
    expect(page.body).toContain('<script src="app.js"></script>')
    for (const [file, type] of [['app.js', 'text/javascript'], ['style.css', 'text/css']]) {
      const r = await get(`${d.url}${file}`)
      expect(r.status).toBe(200)
      expect(r.type).toContain(type)
      expect(r.body).not.toMatch(/https?:\/\/(?!www\.w3\.org\/2000\/svg)/) // no CDN, no external asset
    }
    expect(page.body).not.toMatch(/(src|href)="https?:/)
    const event = (await firstEvent(`${d.url}events`)) as { title: string; nodes: { id: string }[] }
    expect(event.title).toBe('local')
    const json = JSON.parse((await get(`${d.url}view.json`)).body) as { nodes: { id: string }[]; links: { a: string; b: string; rtt: Record<string, number> }[] }
    expect(json.nodes.map((n) => n.id)).toEqual(['a', 'b'])
    expect(json.links).toEqual([expect.objectContaining({ a: 'a', b: 'b', rtt: expect.objectContaining({ a: expect.any(Number) }) })])
    const metrics = await get(`${d.url}metrics`)
    expect(metrics.type).toBe('text/plain; version=0.0.4; charset=utf-8')
    expect(metrics.body).toContain('rxnet_members{transport="mesh",node="a",name="dash-local"} 1')
    expect((await get(`${d.url}nope`)).status).toBe(404)
  })

  it('a node whose snapshots stopped is no longer drawn (staleAfter), a node down for longer than linger neither; options are checked', async () => {
    const old = { ...snap('gone', []), time: Date.now() - 60_000 }
    const now = Date.now()
    const d = await startDashboard({
      sources: [old, { ...snap('here', []), time: now }, { ...snap('quiet', []), time: now - 3000 }, { ...snap('died', []), time: now - 3000, state: 'down' as const }].map((x) => concat(of(x), NEVER)),
    })
    cleanups.push(() => d.close())
    // 'gone' is past staleAfter (5 s); 'died' was reported down more than linger (1.5 s) ago.
    expect(d.view().nodes.map((n) => n.id)).toEqual(['here', 'quiet'])
    await expect(startDashboard({ sources: [], prot: 1 } as never)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
  })
})
