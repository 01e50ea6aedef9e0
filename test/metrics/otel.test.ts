import { afterEach, describe, expect, it } from 'vitest'
import { BehaviorSubject } from 'rxjs'
import type { Attributes, BatchObservableCallback, Meter, MetricOptions, Observable as OtelObservable } from '@opentelemetry/api'
import { otelBridge, type MetricsSnapshot } from 'rxnet'

/** A tiny in-memory implementation of the Meter interface (observable instruments and batch callbacks only). */
class MemoryMeter {
  readonly instruments = new Map<string, { kind: 'counter' | 'gauge'; options: MetricOptions | undefined }>()
  readonly callbacks = new Set<BatchObservableCallback>()
  createObservableCounter(name: string, options?: MetricOptions): OtelObservable {
    this.instruments.set(name, { kind: 'counter', options })
    return { name } as unknown as OtelObservable
  }
  createObservableGauge(name: string, options?: MetricOptions): OtelObservable {
    this.instruments.set(name, { kind: 'gauge', options })
    return { name } as unknown as OtelObservable
  }
  addBatchObservableCallback(cb: BatchObservableCallback): void {
    this.callbacks.add(cb)
  }
  removeBatchObservableCallback(cb: BatchObservableCallback): void {
    this.callbacks.delete(cb)
  }
  /** One collection: every observation as `name -> [value, attributes][]`. */
  collect(): Map<string, [number, Attributes][]> {
    const out = new Map<string, [number, Attributes][]>()
    for (const cb of this.callbacks)
      void cb({
        observe: (o: OtelObservable, v: number, a?: Attributes) => {
          const name = (o as unknown as { name: string }).name
          out.set(name, [...(out.get(name) ?? []), [v, a ?? {}]])
        },
      })
    return out
  }
}

const snapshot: MetricsSnapshot = {
  transport: 'mesh',
  node: 'a',
  name: 'demo',
  time: Date.now(),
  counters: { messages_sent: 7, messages_received: 5, sent_bytes: 70 },
  gauges: { members: 2 },
  links: [{ kind: 'peer', from: 'a', to: 'b', state: 'suspect', rttSeconds: 0.002, counters: { messages_received: 5, messages_sent: 7, received_bytes: 50, sent_bytes: 70, dropped_messages: 0, overflows: 1 }, gauges: { buffered_bytes: 0 } }],
}

let meter: MemoryMeter
afterEach(() => void meter?.callbacks.clear())

describe('otelBridge', () => {
  it('messaging semantic-convention names with their attributes; rxnet.* for the rest; units', () => {
    meter = new MemoryMeter()
    const bridge = otelBridge(new BehaviorSubject(snapshot), { meter: meter as unknown as Meter })
    expect(meter.instruments.get('messaging.client.sent.messages')).toEqual({ kind: 'counter', options: expect.objectContaining({ unit: '{message}' }) })
    expect(meter.instruments.get('rxnet.sent.bytes')?.options?.unit).toBe('By')
    expect(meter.instruments.get('rxnet.link.rtt')).toEqual({ kind: 'gauge', options: expect.objectContaining({ unit: 's' }) })
    const seen = meter.collect()
    expect(seen.get('messaging.client.sent.messages')).toEqual([[7, { 'messaging.system': 'rxnet', 'messaging.operation.name': 'send', 'rxnet.transport': 'mesh', 'rxnet.node': 'a', 'rxnet.name': 'demo' }]])
    expect(seen.get('messaging.client.consumed.messages')?.[0]?.[1]['messaging.operation.name']).toBe('receive')
    expect(seen.get('rxnet.members')).toEqual([[2, expect.objectContaining({ 'rxnet.node': 'a' })]])
    expect(seen.get('rxnet.link.rtt')).toEqual([[0.002, { 'messaging.system': 'rxnet', 'rxnet.transport': 'mesh', 'rxnet.node': 'a', 'rxnet.peer': 'b', 'rxnet.link.kind': 'peer' }]])
    expect(seen.get('rxnet.link.suspect')).toEqual([[1, expect.any(Object)]])
    expect(seen.get('rxnet.link.overflows')).toEqual([[1, expect.any(Object)]])
    expect(seen.has('rxnet.duplicate.messages')).toBe(false) // not in this snapshot: not observed
    bridge.close()
    expect(meter.callbacks.size).toBe(0)
  })

  it('reports the latest snapshot at each collection; a completed source is forgotten', () => {
    meter = new MemoryMeter()
    const source = new BehaviorSubject(snapshot)
    const bridge = otelBridge([source], { meter: meter as unknown as Meter })
    source.next({ ...snapshot, time: snapshot.time + 1000, counters: { ...snapshot.counters, messages_sent: 9 } })
    expect(meter.collect().get('messaging.client.sent.messages')?.[0]?.[0]).toBe(9)
    source.complete()
    expect(meter.collect().size).toBe(0)
    bridge.close()
  })

  it('refuses unknown options', () => {
    meter = new MemoryMeter()
    expect(() => otelBridge([], { meter: meter as unknown as Meter, metre: 1 } as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
  })
})
