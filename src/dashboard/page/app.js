// rxnet dashboard page: reads the view from /events (Server-Sent Events) and draws it.
// No dependencies; everything below is plain DOM and SVG.
'use strict'
;(() => {
  const HISTORY = 180 // points per sparkline: 3 minutes at one view per second
  const history = new Map()
  const SVG = 'http://www.w3.org/2000/svg'
  const $ = (id) => document.getElementById(id)

  function remember(key, value) {
    const h = history.get(key) ?? []
    h.push(value)
    if (h.length > HISTORY) h.shift()
    history.set(key, h)
    return h
  }

  function el(tag, attrs = {}, text) {
    const e = tag === 'svg' || attrs.svg ? document.createElementNS(SVG, tag) : document.createElement(tag)
    for (const [k, v] of Object.entries(attrs)) if (k !== 'svg' && v !== undefined) e.setAttribute(k, String(v))
    if (text !== undefined) e.textContent = text
    return e
  }

  function spark(values) {
    const w = 120
    const h = 22
    const s = el('svg', { class: 'spark', width: w, height: h, viewBox: `0 0 ${w} ${h}` })
    const max = Math.max(1, ...values)
    const step = w / (HISTORY - 1)
    const off = (HISTORY - values.length) * step
    const pts = values.map((v, i) => `${(off + i * step).toFixed(1)},${(h - 1 - (v / max) * (h - 2)).toFixed(1)}`).join(' ')
    s.appendChild(el('polyline', { svg: true, points: pts }))
    return s
  }

  const fmt = (n) => (Number.isInteger(n) && n < 1e3 ? String(n) : n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}k` : n >= 10 || n === 0 ? n.toFixed(0) : n.toFixed(1))
  const ms = (s) => `${(s * 1000).toFixed(2)} ms`

  function state(s) {
    return el('span', { class: `state ${s}`, 'data-state': s }, s)
  }

  function row(cells, attrs) {
    const tr = el('tr', attrs)
    for (const c of cells) {
      const td = el('td', typeof c === 'number' ? { class: 'num' } : {})
      if (c instanceof Node) td.appendChild(c)
      else td.textContent = typeof c === 'number' ? fmt(c) : String(c)
      tr.appendChild(td)
    }
    return tr
  }

  function fill(id, rows) {
    const body = $(id).tBodies[0]
    body.replaceChildren(...rows)
  }

  function drawGraph(view) {
    const svg = $('topology')
    svg.replaceChildren()
    const nodes = view.nodes
    const cx = 320
    const cy = 210
    const r = nodes.length <= 1 ? 0 : 150
    const pos = new Map()
    nodes.forEach((n, i) => {
      const a = (2 * Math.PI * i) / Math.max(1, nodes.length) - Math.PI / 2
      pos.set(n.id, [cx + r * Math.cos(a), cy + r * Math.sin(a)])
    })
    for (const l of view.links) {
      const p = pos.get(l.a)
      const q = pos.get(l.b)
      if (!p || !q) continue
      const g = el('g', { svg: true, class: 'link', 'data-link': `${l.a}|${l.b}`, 'data-state': l.state })
      g.appendChild(el('line', { svg: true, class: `edge ${l.state}`, x1: p[0], y1: p[1], x2: q[0], y2: q[1] }))
      const rtts = Object.values(l.rtt)
      const label = `${rtts.length ? ms(rtts.reduce((x, y) => x + y, 0) / rtts.length) : '-'} · ${fmt(l.messagesPerSecond)} msg/s`
      g.appendChild(el('text', { svg: true, class: 'label', x: (p[0] + q[0]) / 2, y: (p[1] + q[1]) / 2 - 6, 'text-anchor': 'middle' }, label))
      svg.appendChild(g)
    }
    for (const n of nodes) {
      const [x, y] = pos.get(n.id)
      const g = el('g', { svg: true, class: `node ${n.state}`, 'data-node': n.id, 'data-state': n.state })
      g.appendChild(el('circle', { svg: true, cx: x, cy: y, r: 22 }))
      g.appendChild(el('text', { svg: true, x, y: y + 38, 'text-anchor': 'middle' }, n.id))
      g.appendChild(el('text', { svg: true, class: 'label', x, y: y + 52, 'text-anchor': 'middle' }, n.transport))
      svg.appendChild(g)
    }
  }

  function render(view) {
    $('title').textContent = view.title
    document.title = `${view.title} · rxnet`
    const up = view.links.filter((l) => l.state === 'up').length
    $('summary').textContent = `${view.nodes.length} nodes · ${view.links.length} links (${up} up) · ${new Date(view.time).toLocaleTimeString()}`
    drawGraph(view)
    fill(
      'links',
      view.links.map((l) => {
        const rtt = Object.entries(l.rtt).sort(([x], [y]) => (x < y ? -1 : 1)).map(([from, s]) => `${from}: ${ms(s)}`).join(', ') || '-'
        const h = remember(`link/${l.a}/${l.b}`, l.messagesPerSecond)
        return row([`${l.a} ↔ ${l.b}`, state(l.state), rtt, l.messagesPerSecond, l.bytesPerSecond, spark(h), l.dropped, l.overflows], { 'data-link': `${l.a}|${l.b}`, 'data-state': l.state, 'data-rtt': Object.keys(l.rtt).length })
      }),
    )
    fill(
      'nodes',
      view.nodes.map((n) => {
        const sent = n.rates.messages_sent ?? n.rates.messages_published ?? 0
        const received = n.rates.messages_received ?? n.rates.messages_delivered ?? 0
        const h = remember(`node/${n.id}`, sent + received)
        const trouble = Object.entries(n.trouble).filter(([, v]) => v > 0)
        const t = el('span', trouble.length ? { class: 'warn' } : {}, trouble.length ? trouble.map(([k, v]) => `${k.replace(/_/g, ' ')} ${v}`).join(' · ') : 'none')
        const size = n.gauges.members ?? n.gauges.clients ?? n.gauges.links ?? ''
        return row([n.id, `${n.transport} ${n.name}`, state(n.state), size, sent, received, spark(h), t], { 'data-node': n.id, 'data-transport': n.transport, 'data-state': n.state, 'data-sent': n.counters.messages_sent ?? n.counters.messages_published ?? 0 })
      }),
    )
    $('clients-section').hidden = view.clients.length === 0
    fill(
      'clients',
      view.clients.map((c) => {
        const subs = Array.isArray(c.info?.subscriptions) ? c.info.subscriptions.join(' ') : ''
        return row([c.node, c.to, state(c.state), subs, c.info?.slow ? 'slow' : '-', c.gauges.buffered_bytes ?? 0], { 'data-client': c.to, 'data-slow': c.info?.slow ? 'true' : 'false' })
      }),
    )
    $('workers-section').hidden = view.workers.length === 0
    fill('workers', view.workers.map((w) => row([w.id, w.pid ?? '-', w.state, w.restarts], { 'data-worker': w.id })))
  }

  const source = new EventSource('events')
  source.onopen = () => {
    $('status').textContent = 'live'
    $('status').className = 'status up'
  }
  source.onerror = () => {
    $('status').textContent = 'reconnecting'
    $('status').className = 'status down'
  }
  source.onmessage = (e) => render(JSON.parse(e.data))
})()
