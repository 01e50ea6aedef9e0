// RingQueue (b984c35, the socket channel's send queue) against a plain array model: push /
// pushSized / shift / consume / clear / at under the three overflow policies, byte accounting,
// counters, and the ring's capacity rules (grows by doubling, an emptied ring over 4096 slots whose
// last fill used under a quarter shrinks to twice that fill). BoundedQueue, which shares the byte
// budget, must agree with the model too.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { BoundedQueue, OVERFLOW_POLICIES, RingQueue, type OverflowPolicy } from '../../src/queue.js'

interface Item {
  id: number
  size: number
}

type Op =
  | { op: 'push'; size: number; extra: number; sized: boolean }
  | { op: 'fill'; count: number; size: number }
  | { op: 'shift' }
  | { op: 'consume'; n: number }
  | { op: 'drain' }
  | { op: 'clear' }

const ops: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant('push' as const), size: fc.integer({ min: 0, max: 120 }), extra: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 200 })), sized: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('fill' as const), count: fc.oneof(fc.integer({ min: 4097, max: 6000 }), fc.integer({ min: 1, max: 2100 })), size: fc.constant(0) }) },
  { weight: 3, arbitrary: fc.constant({ op: 'shift' as const }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('consume' as const), n: fc.nat({ max: 40 }) }) },
  { weight: 2, arbitrary: fc.constant({ op: 'drain' as const }) },
  { weight: 1, arbitrary: fc.constant({ op: 'clear' as const }) },
)

/** The documented behaviour, written plainly. */
class Model {
  items: Item[] = []
  bytes = 0
  dropped = 0
  overflows = 0
  /** Set when a drop-oldest push emptied the queue before appending (the test resets it). */
  emptied = false
  constructor(
    readonly hwm: number,
    readonly policy: OverflowPolicy,
  ) {}
  push(item: Item, extra: number): boolean | 'throws' {
    if (this.bytes + extra + item.size <= this.hwm) return this.append(item)
    if (this.items.length === 0 && extra === 0) return this.append(item) // one item larger than the budget still goes
    this.overflows++
    if (this.policy === 'error') return 'throws'
    if (this.policy === 'drop-newest') {
      this.dropped++
      return false
    }
    while (this.items.length > 0 && this.bytes + extra + item.size > this.hwm) {
      this.bytes -= this.items.shift()!.size
      this.dropped++
      if (this.items.length === 0) this.emptied = true
    }
    if (this.bytes + extra + item.size > this.hwm) {
      this.dropped++
      return false
    }
    return this.append(item)
  }
  private append(item: Item): true {
    this.items.push(item)
    this.bytes += item.size
    return true
  }
}

const pow2 = (n: number): boolean => n >= 16 && (n & (n - 1)) === 0

function run(policy: OverflowPolicy, hwm: number, script: Op[]): void {
  const model = new Model(hwm, policy)
  const ring = new RingQueue<Item>(hwm, policy, (i) => i.size)
  const array = new BoundedQueue<Item>(hwm, policy, (i) => i.size)
  let id = 0
  /** Most items held since the ring last emptied (the model's view of the shrink rule). */
  let peak = 0
  const afterEmptied = (capacity: number): void => {
    const expected = capacity > 4096 && peak * 4 < capacity ? Math.max(16, 2 ** Math.ceil(Math.log2(peak * 2))) : capacity
    expect(ring.capacity, `capacity after emptying (peak ${peak}, was ${capacity})`).toBe(expected)
    peak = 0
  }
  const push = (size: number, extra: number, sized: boolean, quiet = false): void => {
    const item = { id: id++, size }
    const capacity = ring.capacity
    const want = model.push(item, extra)
    for (const q of [ring, array]) {
      if (quiet && want !== 'throws') {
        // Bulk fills: compared without an expect per item (the state is compared after the step).
        if ((sized ? q.pushSized(item, size, extra) : q.push(item, extra)) !== want) throw new Error(`push ${item.id}: not ${String(want)}`)
      } else if (want === 'throws') {
        expect(() => (sized ? q.pushSized(item, size, extra) : q.push(item, extra))).toThrow(expect.objectContaining({ code: 'ERR_BUFFER_OVERFLOW' }))
      } else {
        expect(sized ? q.pushSized(item, size, extra) : q.push(item, extra)).toBe(want)
      }
    }
    if (model.emptied) {
      model.emptied = false
      afterEmptied(capacity) // the rule applied when the last old item went, before the new one came
    }
    peak = Math.max(peak, model.items.length)
  }
  for (const step of script) {
    const capacity = ring.capacity
    const lengthBefore = model.items.length
    switch (step.op) {
      case 'push':
        push(step.size, step.extra, step.sized)
        break
      case 'fill':
        for (let i = 0; i < step.count; i++) push(step.size, 0, true, true)
        break
      case 'shift': {
        const want = model.items.shift()
        if (want !== undefined) model.bytes -= want.size
        expect(ring.shift()).toBe(want)
        expect(array.shift()).toBe(want)
        break
      }
      case 'consume':
      case 'drain': {
        const n = step.op === 'drain' ? model.items.length : Math.min(step.n, model.items.length)
        const taken = model.items.splice(0, n)
        const bytes = taken.reduce((a, i) => a + i.size, 0)
        model.bytes -= bytes
        ring.consume(n, bytes)
        array.consume(array.head + n, bytes)
        break
      }
      case 'clear': {
        const rest = model.items.splice(0)
        model.bytes = 0
        expect(ring.clear()).toEqual(rest)
        expect(array.clear()).toEqual(rest)
        expect(ring.capacity).toBe(16)
        peak = 0
        break
      }
    }
    if ((step.op === 'shift' || step.op === 'consume' || step.op === 'drain') && model.items.length === 0 && (lengthBefore > 0 || step.op !== 'shift')) afterEmptied(capacity)
    for (const q of [ring, array]) {
      expect(q.length).toBe(model.items.length)
      expect(q.bytes).toBe(model.bytes)
      expect(q.dropped).toBe(model.dropped)
      expect(q.overflows).toBe(model.overflows)
    }
    expect(pow2(ring.capacity), `capacity ${ring.capacity}`).toBe(true)
    expect(ring.capacity).toBeGreaterThanOrEqual(ring.length)
    const wrong = model.items.findIndex((item, i) => ring.at(i) !== item)
    expect(wrong, 'first item out of place').toBe(-1)
  }
}

describe('property: RingQueue against an array model', () => {
  for (const policy of OVERFLOW_POLICIES) {
    it(`'${policy}': same results, order, bytes and counters as the model (and as BoundedQueue) for any script`, () => {
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 2000 }), fc.array(ops, { maxLength: 60 }), (hwm, script) => run(policy, hwm, script)),
        { numRuns: 100 },
      )
    })
  }

  it('a ring that held 10000 items and empties shrinks to twice its next, smaller fill; a fill of a quarter or more keeps it', () => {
    const ring = new RingQueue<number>(Infinity, 'error', () => 1)
    for (let i = 0; i < 10_000; i++) ring.push(i)
    expect(ring.capacity).toBe(16_384)
    ring.consume(10_000, 10_000)
    expect(ring.capacity).toBe(16_384) // its own fill used more than a quarter
    for (let i = 0; i < 4096; i++) ring.push(i)
    ring.consume(4096, 4096)
    expect(ring.capacity).toBe(16_384) // a quarter exactly: kept
    for (let i = 0; i < 100; i++) ring.push(i)
    while (ring.length > 0) ring.shift()
    expect(ring.capacity).toBe(256)
    expect(ring.bytes).toBe(0)
  })
})
