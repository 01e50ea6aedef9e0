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
  ])('%s: ERR_INVALID_ARGUMENT, nothing forked', async (_, options) => {
    let made: { close(): Promise<void> } | undefined
    try {
      expect(() => (made = cluster({ ...options, handleSignals: false }))).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
    } finally {
      await made?.close() // only if it wrongly started one
    }
    expect(Object.keys(nodeCluster.workers ?? {})).toEqual([])
  })
})
