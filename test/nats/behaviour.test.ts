// One bus behaviour suite, run against every backend: the local hub (Unix socket) and NATS (a
// real nats-server on loopback). A backend is one more entry in BACKENDS.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { firstValueFrom, lastValueFrom, of, take, toArray } from 'rxjs'
import { connectBus, startHub, type Bus, type BusMessage, type Hub } from 'rxnet'
import { reply, request } from 'rxnet/operators'
import { tmpSocket } from '../bus/helpers.js'
import { NATS_SERVER, SKIP_REASON, startNats, type NatsCluster } from './harness.js'

interface Backend {
  readonly name: string
  readonly skip: string | null
  setup(): Promise<void>
  teardown(): Promise<void>
  bus(options?: { echo?: boolean }): Bus
}

const open: Bus[] = []

function localBackend(): Backend {
  let hub: Hub | null = null
  return {
    name: 'local hub',
    skip: null,
    async setup() {
      hub = await startHub({ path: tmpSocket() })
    },
    async teardown() {
      await hub?.close()
    },
    bus: (options = {}) => connectBus(hub!.path, { minReconnectDelay: 10, ...options }),
  }
}

function natsBackend(): Backend {
  let nats: NatsCluster | null = null
  return {
    name: 'NATS',
    skip: NATS_SERVER === null ? SKIP_REASON : null,
    async setup() {
      nats = await startNats(1)
    },
    async teardown() {
      await nats?.close()
    },
    bus: (options = {}) => connectBus(nats!.url as `nats://${string}`, options),
  }
}

const BACKENDS = [localBackend(), natsBackend()]

for (const backend of BACKENDS) {
  describe.skipIf(backend.skip !== null)(`bus behaviour on ${backend.name}${backend.skip !== null ? ` (skipped: ${backend.skip})` : ''}`, () => {
    beforeAll(() => backend.setup())
    afterAll(() => backend.teardown())
    afterEach(async () => {
      for (const b of open.splice(0).reverse()) await b.close()
    })
    const bus = (options?: { echo?: boolean }): Bus => {
      const b = backend.bus(options)
      open.push(b)
      return b
    }

    it('wildcards: "*" is one token, ">" one or more, a plain pattern only itself', async () => {
      const sub = bus()
      const pub = bus()
      const got: Record<string, string[]> = { exact: [], star: [], tail: [] }
      sub.envelopes$('log').subscribe((m) => got.exact!.push(m.topic))
      sub.envelopes$('log.*').subscribe((m) => got.star!.push(m.topic))
      sub.envelopes$('log.>').subscribe((m) => got.tail!.push(m.topic))
      const last = firstValueFrom(sub.messages$('end'))
      await sub.flush()
      for (const t of ['log', 'log.a', 'log.a.b', 'other', 'logx.a']) pub.emit(t, t)
      pub.emit('end', 1)
      await last
      expect(got).toEqual({ exact: ['log'], star: ['log.a'], tail: ['log.a', 'log.a.b'] })
    })

    it('echo: a client does not receive its own messages unless echo is on', async () => {
      const quiet = bus()
      const loud = bus({ echo: true })
      const other = bus()
      const quietGot: unknown[] = []
      quiet.messages$('t').subscribe((v) => quietGot.push(v))
      const loudGot = lastValueFrom(loud.messages$('t').pipe(take(2), toArray()))
      const quietEnd = firstValueFrom(quiet.messages$('end'))
      await Promise.all([quiet.flush(), loud.flush()])
      quiet.emit('t', 'from quiet')
      loud.emit('t', 'from loud')
      await quiet.flush()
      await loud.flush()
      other.emit('end', 1)
      await quietEnd
      expect(quietGot).toEqual(['from loud'])
      expect((await loudGot).sort()).toEqual(['from loud', 'from quiet'])
    })

    it('exactly once, in order per sender: 2 senders x 60,000 messages', { timeout: 120_000 }, async () => {
      const N = 60_000
      const rx = bus()
      const senders = [bus(), bus()]
      const next = new Map<string, number>()
      let bad = 0
      let total = 0
      const done = new Promise<void>((resolve) => {
        rx.envelopes$<{ n: number }>('load.*').subscribe((m: BusMessage<{ n: number }>) => {
          const want = (next.get(m.origin) ?? 0) + 1
          if (m.data.n !== want) bad++
          next.set(m.origin, m.data.n)
          if (++total === 2 * N) resolve()
        })
      })
      await rx.flush()
      await Promise.all(
        senders.map(async (s, k) => {
          for (let n = 1; n <= N; n++) {
            if (!s.writable) await s.whenWritable()
            s.emit(`load.${k}`, { n, pad: 'x'.repeat(60) })
          }
          await s.flush()
        }),
      )
      await done
      expect(bad).toBe(0)
      expect([...next.values()]).toEqual([N, N])
      expect(rx.stats.received).toBe(2 * N)
    })

    it('cold interests: messages emitted before a subscription are not delivered; after unsubscribe none are', async () => {
      const rx = bus()
      const tx = bus()
      await rx.flush()
      tx.emit('cold', 'before')
      await tx.flush()
      const got: unknown[] = []
      const s = rx.messages$('cold').subscribe((v) => got.push(v))
      await rx.flush()
      tx.emit('cold', 'during')
      const end = firstValueFrom(rx.messages$('cold.end'))
      await rx.flush()
      tx.emit('cold.end', 1)
      await end
      s.unsubscribe()
      await rx.flush()
      tx.emit('cold', 'after')
      const end2 = firstValueFrom(rx.messages$('cold.end'))
      await rx.flush()
      tx.emit('cold.end', 2)
      await end2
      expect(got).toEqual(['during'])
    })

    it('request / reply: answers, handler errors as ERR_REMOTE', async () => {
      const server = bus()
      const client = bus()
      server
        .messages$('math.double')
        .pipe(
          reply(server, (n: number) => {
            if (n < 0) throw Object.assign(new Error('negative'), { code: 'E_NEG' })
            return n * 2
          }),
        )
        .subscribe()
      await server.flush()
      await client.flush()
      expect(await lastValueFrom(of(1, 2, 3).pipe(request<number, number>(client, 'math.double'), toArray()))).toEqual([2, 4, 6])
      await expect(lastValueFrom(of(-1).pipe(request<number, number>(client, 'math.double')))).rejects.toMatchObject({ code: 'ERR_REMOTE', remoteCode: 'E_NEG' })
    })

    it('timeouts: a request nobody answers fails with ERR_TIMEOUT; flush times out with ERR_TIMEOUT only when it cannot finish', async () => {
      const client = bus()
      await client.flush()
      await expect(lastValueFrom(of(1).pipe(request(client, 'nobody.home', { timeout: 200 })))).rejects.toMatchObject({ code: 'ERR_TIMEOUT' })
      await expect(client.flush({ timeout: 5000 })).resolves.toBeUndefined()
    })
  })
}
