import nodeCluster from 'node:cluster'
import { describe, expect, it } from 'vitest'
import { cluster, type ClusterOptions } from '../../src/cluster/index.js'

describe('cluster() options', () => {
  it.each<[string, ClusterOptions]>([
    ['restart.window NaN (never a crash loop: restarts forever)', { restart: { window: Number.NaN } }],
    ['restart.initialDelay negative', { restart: { initialDelay: -5 } }],
    ['restart.maxRestarts fractional', { restart: { maxRestarts: 1.5 } }],
    ['restart.maxDelay a string', { restart: { maxDelay: '10' as unknown as number } }],
    ['restart not a boolean or object', { restart: 'yes' as unknown as boolean }],
    ['overflow unknown', { overflow: 'drop-all' as never }],
    ['workers 0', { workers: 0 }],
    ['an unknown option name (workres)', { workres: 2 } as never],
    ['an unknown restart option name (maxRestart)', { restart: { maxRestart: 3 } } as never],
  ])('%s: ERR_INVALID_ARGUMENT, nothing forked', async (_, options) => {
    let made: { close(): Promise<void> } | undefined
    try {
      expect(() => (made = cluster({ ...options, handleSignals: false }))).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
    } finally {
      await made?.close() // only if it wrongly started one
    }
    expect(Object.keys(nodeCluster.workers ?? {})).toEqual([])
  })

  it('names the closest valid option, and says when a number was given as a string', () => {
    expect(() => cluster({ workres: 2, handleSignals: false } as never)).toThrow(expect.objectContaining({ message: expect.stringContaining('"workres" (did you mean "workers"?)') }))
    expect(() => cluster({ workers: '2', handleSignals: false } as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('got the string "2"') }))
    expect(Object.keys(nodeCluster.workers ?? {})).toEqual([])
  })
})
