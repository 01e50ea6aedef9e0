// vitest side of the NATS harness (kept apart: the benchmarks import harness.ts outside vitest).
import { afterAll, afterEach, beforeAll } from 'vitest'
import type { NatsConnection } from '@nats-io/transport-node'
import { startNats, type NatsCluster } from './harness.js'

/**
 * A describe block's servers and resources: starts `n` servers before its tests, closes what
 * `track` was given after each test (last first) and the servers after all of them.
 */
export function natsSuite(n = 1, options: { jetstream?: boolean } = {}) {
  let cluster: NatsCluster | null = null
  const open: { close(): Promise<unknown> }[] = []
  beforeAll(async () => {
    cluster = await startNats(n, options)
  })
  afterAll(() => cluster?.close())
  afterEach(async () => {
    for (const o of open.splice(0).reverse()) await o.close()
  })
  const suite = {
    get nats(): NatsCluster {
      return cluster!
    },
    /** All servers' client URLs, as `connectBus` takes them. */
    get url(): `nats://${string}` {
      return cluster!.url as `nats://${string}`
    },
    /** Closed after the current test. */
    track<T extends { close(): Promise<unknown> }>(x: T): T {
      open.push(x)
      return x
    },
    /** A plain nats.js connection (closed after the test). */
    async plain(): Promise<NatsConnection> {
      const { connect } = await import('@nats-io/transport-node')
      return suite.track(await connect({ servers: cluster!.url }))
    },
  }
  return suite
}
