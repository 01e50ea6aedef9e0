import { describe, expect, it } from 'vitest'
import { checkInt, checkKeys, checkOverflow, withDefaults } from '../../src/options.js'

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

  it('checkKeys refuses an unknown key with ERR_INVALID_ARGUMENT, naming it and the closest valid key', () => {
    expect(() => checkKeys('createMesh', { name: 'x', interface: '127.0.0.1' }, ['name', 'interface'])).not.toThrow()
    expect(() => checkKeys('createMesh', undefined, ['name'])).not.toThrow()
    let err: unknown
    try {
      checkKeys('createMesh', { name: 'x', interfce: '127.0.0.1' }, ['name', 'interface', 'secret'])
    } catch (e) {
      err = e
    }
    expect(err).toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    expect((err as Error).message).toContain('"interfce"')
    expect((err as Error).message).toContain('did you mean "interface"')
    expect(() => checkKeys('startHub', { zzzzzzzz: 1 }, ['path'])).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
    expect(() => checkKeys('startHub', 'nope' as unknown as object, ['path'])).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
  })
})
