import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { compileTopic, matchTopic, validateTopic } from 'rxnet'

describe('topic patterns (NATS rules)', () => {
  const cases: [string, string, boolean][] = [
    ['log', 'log', true],
    ['log', 'log.x', false],
    ['log.*', 'log.error', true],
    ['log.*', 'log', false],
    ['log.*', 'log.error.disk', false],
    ['log.>', 'log.error', true],
    ['log.>', 'log.error.disk', true],
    ['log.>', 'log', false],
    ['*.error', 'log.error', true],
    ['*.error', 'app.log.error', false],
    ['*.*.c', 'a.b.c', true],
    ['>', 'anything.at.all', true],
    ['a.*.>', 'a.b', false],
    ['a.*.>', 'a.b.c', true],
    ['log.er', 'log.error', false],
  ]
  it.each(cases)('%s vs %s -> %s', (pattern, topic, expected) => {
    expect(matchTopic(pattern, topic)).toBe(expected)
  })

  it('rejects bad patterns and topics with ERR_INVALID_ARGUMENT', () => {
    for (const bad of ['', 'a..b', '.a', 'a.', 'a.>.b', 'a*', 'lo>g', 'a b', 'a\tb', 'x'.repeat(2000)]) {
      expect(() => compileTopic(bad), bad).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
    }
    for (const bad of ['log.*', 'log.>', '*', '', 'a..b']) {
      expect(() => validateTopic(bad), bad).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
    }
    expect(() => compileTopic(42 as unknown as string)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
  })

  it('agrees with a reference matcher on random topics and patterns', () => {
    const token = fc.constantFrom('a', 'b', 'c')
    const topic = fc.array(token, { minLength: 1, maxLength: 5 })
    const pattern = fc
      .tuple(fc.array(fc.constantFrom('a', 'b', 'c', '*'), { minLength: 1, maxLength: 5 }), fc.boolean())
      .map(([ts, tail]) => (tail ? [...ts, '>'] : ts))
    const reference = (p: string[], t: string[]): boolean => {
      for (let i = 0; i < p.length; i++) {
        if (p[i] === '>') return t.length > i
        if (i >= t.length || (p[i] !== '*' && p[i] !== t[i])) return false
      }
      return p.length === t.length
    }
    fc.assert(
      fc.property(pattern, topic, (p, t) => {
        expect(compileTopic(p.join('.')).matches(t.join('.'))).toBe(reference(p, t))
      }),
      { numRuns: 2000 },
    )
  })
})
