import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { BoundedQueue, RingQueue } from '../../src/queue.js'

const len = (s: string): number => s.length

describe.each([
  ['BoundedQueue', BoundedQueue],
  ['RingQueue', RingQueue],
] as const)('%s overflow policies', (_name, Queue) => {
  it("'error' refuses the message that does not fit with ERR_BUFFER_OVERFLOW, counting it", () => {
    const q = new Queue<string>(10, 'error', len)
    expect(q.push('aaaa')).toBe(true)
    expect(q.push('bbbb')).toBe(true)
    expect(() => q.push('ccc')).toThrow(expect.objectContaining({ code: 'ERR_BUFFER_OVERFLOW' }))
    expect(q.overflows).toBe(1)
    expect(q.dropped).toBe(0)
    expect(q.length).toBe(2)
    expect(q.bytes).toBe(8)
  })

  it("'drop-newest' discards the new message", () => {
    const q = new Queue<string>(10, 'drop-newest', len)
    q.push('aaaa')
    q.push('bbbb')
    expect(q.push('ccc')).toBe(false)
    expect(q.dropped).toBe(1)
    expect(q.clear()).toEqual(['aaaa', 'bbbb'])
    expect(q.bytes).toBe(0)
  })

  it("'drop-oldest' discards from the head until the new one fits", () => {
    const q = new Queue<string>(10, 'drop-oldest', len)
    q.push('aaaa')
    q.push('bbbb')
    expect(q.push('cccccc')).toBe(true)
    expect(q.dropped).toBe(1)
    expect(q.clear()).toEqual(['bbbb', 'cccccc'])
  })

  it("'drop-oldest' drops the new one too when even an empty queue cannot take it beside `extra`", () => {
    const q = new Queue<string>(10, 'drop-oldest', len)
    q.push('aa')
    expect(q.push('bbbb', 8)).toBe(false) // 8 bytes held elsewhere (a socket) leave room for 2
    expect(q.dropped).toBe(2)
    expect(q.length).toBe(0)
  })

  it('an item larger than the whole budget is accepted into an empty queue (nothing else held)', () => {
    const q = new Queue<string>(4, 'error', len)
    expect(q.push('0123456789')).toBe(true)
    expect(() => q.push('x')).toThrow(expect.objectContaining({ code: 'ERR_BUFFER_OVERFLOW' }))
  })
})

describe('BoundedQueue', () => {
  it('consume / shift / compaction keep order and byte counts (model-based)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.record({ op: fc.constant('push' as const), s: fc.string({ maxLength: 5 }) }), fc.record({ op: fc.constant('shift' as const) }), fc.record({ op: fc.constant('consume' as const), n: fc.nat(20) })), { maxLength: 300 }),
        (ops) => {
          const q = new BoundedQueue<string>(Number.POSITIVE_INFINITY, 'error', len)
          const model: string[] = []
          for (const o of ops) {
            if (o.op === 'push') {
              q.pushSized(o.s, o.s.length)
              model.push(o.s)
            } else if (o.op === 'shift') {
              expect(q.shift()).toBe(model.shift())
            } else {
              const n = Math.min(o.n, model.length)
              const taken = model.splice(0, n)
              q.consume(q.head + n, taken.reduce((a, s) => a + s.length, 0))
            }
            expect(q.length).toBe(model.length)
            expect(q.bytes).toBe(model.reduce((a, s) => a + s.length, 0))
          }
          expect(q.clear()).toEqual(model)
        },
      ),
      { numRuns: 1000 },
    )
  })

  it('compacts a long-lived queue: dead slots never outnumber live ones past 4096', () => {
    const q = new BoundedQueue<number>(Number.POSITIVE_INFINITY, 'error', () => 1)
    for (let i = 0; i < 10; i++) q.push(i) // a steady backlog of 10
    for (let i = 10; i < 100_000; i++) {
      q.push(i)
      expect(q.shift()).toBe(i - 10)
    }
    expect(q.length).toBe(10)
    expect(q.items.length).toBeLessThan(4096 + 20)
    // a growing queue keeps at most as many dead slots as live ones
    for (let i = 0; i < 50_000; i++) {
      q.push(i)
      q.push(i)
      q.shift()
    }
    expect(q.items.length).toBeLessThanOrEqual(2 * q.length + 4096)
  })
})

describe('RingQueue', () => {
  it('push / at / shift / consume keep order and byte counts across growth, wrap-around and shrinking (model-based)', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({ op: fc.constant('push' as const), s: fc.string({ maxLength: 5 }), k: fc.integer({ min: 1, max: 40 }) }),
            fc.record({ op: fc.constant('shift' as const) }),
            fc.record({ op: fc.constant('consume' as const), n: fc.nat(60) }),
          ),
          { maxLength: 200 },
        ),
        (ops) => {
          const q = new RingQueue<string>(Number.POSITIVE_INFINITY, 'error', len)
          const model: string[] = []
          for (const o of ops) {
            if (o.op === 'push') {
              for (let i = 0; i < o.k; i++) {
                q.pushSized(o.s + i, (o.s + i).length)
                model.push(o.s + i)
              }
            } else if (o.op === 'shift') {
              expect(q.shift()).toBe(model.shift())
            } else {
              const n = Math.min(o.n, model.length)
              const taken = model.splice(0, n)
              q.consume(n, taken.reduce((a, s) => a + s.length, 0))
            }
            expect(q.length).toBe(model.length)
            expect(q.bytes).toBe(model.reduce((a, s) => a + s.length, 0))
            for (let i = 0; i < model.length; i += 7) expect(q.at(i)).toBe(model[i])
          }
          expect(q.clear()).toEqual(model)
          expect(q.length).toBe(0)
        },
      ),
      { numRuns: 500 },
    )
  })

  it('keeps its slots for steady refills and gives a burst\'s slots back once a fill uses under a quarter of them', () => {
    const q = new RingQueue<number>(Number.POSITIVE_INFINITY, 'error', () => 1)
    const fill = (n: number): void => {
      for (let i = 0; i < n; i++) q.push(i)
      for (let i = 0; i < n; i++) expect(q.at(i)).toBe(i)
      q.consume(n, n)
    }
    fill(50_000)
    expect(q.capacity).toBe(65_536)
    fill(20_000) // a quarter or more: the slots are reused, not regrown
    expect(q.capacity).toBe(65_536)
    fill(1000) // well under a quarter: the burst's slots go
    expect(q.capacity).toBe(2048)
    fill(3000) // small rings are kept and grown as needed
    expect(q.capacity).toBe(4096)
    fill(10)
    expect(q.capacity).toBe(4096)
  })

  it('releases consumed items (no payload kept alive by a slot)', () => {
    const q = new RingQueue<object>(Number.POSITIVE_INFINITY, 'error', () => 1)
    const a = {}
    q.push(a)
    q.push({})
    q.consume(1, 1)
    expect(q.at(0)).not.toBe(a)
    expect((q as unknown as { ring: unknown[] }).ring.includes(a)).toBe(false)
  })
})
