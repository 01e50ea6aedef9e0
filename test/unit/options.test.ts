import { describe, expect, it } from 'vitest'
import { checkInt, checkOverflow, withDefaults } from '../../src/options.js'

describe('option helpers', () => {
  it('withDefaults keeps a default when the option is explicitly undefined', () => {
    const d = { a: 1, b: 'x' as 'x' | 'y' }
    expect(withDefaults(d, { a: undefined, b: 'y' })).toEqual({ a: 1, b: 'y' })
    expect(d).toEqual({ a: 1, b: 'x' })
  })

  it('checkInt accepts integers in range and refuses everything else with ERR_INVALID_ARGUMENT', () => {
    expect(checkInt('n', 5)).toBe(5)
    expect(checkInt('n', 0, 0)).toBe(0)
    expect(checkInt('port', 65535, 1, 65535)).toBe(65535)
    for (const bad of [0, -1, 1.5, NaN, Infinity, '3', undefined, 2 ** 53]) {
      expect(() => checkInt('n', bad)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
    }
    expect(() => checkInt('port', 65536, 1, 65535)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
  })

  it('checkOverflow accepts the three policies only', () => {
    for (const p of ['error', 'drop-newest', 'drop-oldest']) expect(checkOverflow(p)).toBe(p)
    expect(() => checkOverflow('drop-all')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
  })
})
