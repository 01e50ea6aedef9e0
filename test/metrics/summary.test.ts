import { describe, expect, it } from 'vitest'
import type { MetricsSnapshot } from 'rxnet'
import { decodeSummary, encodeSummary, MAX_SUMMARY_LINKS } from '../../src/metrics/summary.js'

describe('stats summary encoding', () => {
  const base: MetricsSnapshot = { transport: 'mesh', node: 'a', name: 'm', time: 0, counters: { messages_sent: 1 }, gauges: { members: 1 }, links: [] }
  const link = (to: string): MetricsSnapshot['links'][number] => ({ kind: 'peer', from: 'a', to, state: 'up', rttSeconds: 0.001, counters: { messages_received: 1, messages_sent: 2, received_bytes: 3, sent_bytes: 4, dropped_messages: 0, overflows: 0 }, gauges: { buffered_bytes: 0 } })

  it('round trip (time is the receiver\u2019s, sentAt the sender\u2019s), bounded links, garbage refused with ERR_DECODE', () => {
    const s = { ...base, links: [link('b')] }
    expect(decodeSummary(encodeSummary(s), 42)).toEqual({ ...s, time: 42, sentAt: 0 })
    expect(decodeSummary(encodeSummary({ ...s, time: 5, sentAt: 3 }), 42).sentAt).toBe(3) // a forwarded summary keeps its origin's time
    expect(() => decodeSummary(Buffer.from(JSON.stringify({ v: 1, transport: 'mesh', node: 'a', name: 'm', at: 'x', counters: {}, gauges: {}, links: [] })))).toThrow(expect.objectContaining({ code: 'ERR_DECODE' }))
    const many = decodeSummary(encodeSummary({ ...base, links: Array.from({ length: MAX_SUMMARY_LINKS + 5 }, (_, i) => link(`n${i}`)) }))
    expect(many.links).toHaveLength(MAX_SUMMARY_LINKS)
    expect(many.gauges.links_omitted).toBe(5)
    for (const bad of ['', 'null', '{"v":2}', '{"v":1,"transport":"mesh","node":"a","name":"m","counters":{"x":"1"},"gauges":{},"links":[]}', '{"v":1,"transport":"mesh","node":"a","name":"m","counters":{},"gauges":{},"links":[{"kind":"peer"}]}']) {
      expect(() => decodeSummary(Buffer.from(bad))).toThrow(expect.objectContaining({ code: 'ERR_DECODE' }))
    }
  })
})
