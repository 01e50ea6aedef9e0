import net from 'node:net'
import { readFileSync, readdirSync } from 'node:fs'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { Fixture } from './harness.js'

let fx: Fixture | null = null
afterEach(async () => {
  await fx?.stop()
  fx = null
})

describe('cluster links', () => {
  it('every pair carries 100k values each way, in order, none lost', async () => {
    const N = 100_000
    const f = new Fixture({ FX: 'links', WORKERS: '2', N: String(N) })
    fx = f
    const done = await f.waitCount((r) => r.ev === 'recv-done', 6, 60_000, 'recv-done')
    const pairs = new Set(done.map((r) => `${r.far}->${r.id}`))
    expect(pairs).toEqual(new Set(['0->1', '0->2', '1->0', '1->2', '2->0', '2->1']))
    for (const r of done) {
      expect(r.count).toBe(N)
      expect(r.inOrder).toBe(true)
    }
  })

  it('msgpack links carry binary fields (Uint8Array) between every pair', async () => {
    const N = 5_000
    const f = new Fixture({ FX: 'links', WORKERS: '2', N: String(N), CODEC: 'msgpack' })
    fx = f
    const done = await f.waitCount((r) => r.ev === 'recv-done', 6, 30_000, 'recv-done')
    for (const r of done) expect([r.count, r.inOrder]).toEqual([N, true])
  })

  it('a worker that stops reading does not grow the sender past its high-water mark', async () => {
    const hwm = 256 * 1024
    const f = new Fixture({ FX: 'slow', WORKERS: '2', HWM: String(hwm) })
    fx = f
    const r = await f.waitFor((x) => x.ev === 'slow', 30_000, 'slow report')
    expect(r.maxBuffered as number).toBeLessThanOrEqual(hwm)
    expect(r.dropped as number).toBeGreaterThan(0) // the overflow policy (drop-newest here) did the work
    expect(r.sent as number).toBeGreaterThan(10_000)
    expect(r.heapGrowth as number).toBeLessThan(32 * 1024 * 1024)
  })

  it("with the default 'error' policy a stalled reader fails the sender's link with ERR_BUFFER_OVERFLOW", async () => {
    const hwm = 256 * 1024
    const f = new Fixture({ FX: 'slow', WORKERS: '2', HWM: String(hwm), OVERFLOW: 'error' })
    fx = f
    const r = await f.waitFor((x) => x.ev === 'slow', 30_000, 'slow report')
    expect(r.failed).toBe('ERR_BUFFER_OVERFLOW')
    expect(r.maxBuffered as number).toBeLessThanOrEqual(hwm)
    expect(f.proc.exitCode).toBeNull()
  })

  it('garbage on a link: typed error, that link closed, processes and other links up', async () => {
    const f = new Fixture({ FX: 'garbage', WORKERS: '2' })
    fx = f
    const err = await f.waitFor((r) => r.ev === 'link-error' && r.id === 2 && r.far === 1, 20_000, 'decode error on 2<-1')
    expect(err.code).toBe('ERR_DECODE')
    await f.waitFor((r) => r.ev === 'link-closed' && r.id === 1 && r.far === 2, 10_000, 'link closed on the sender side')
    // worker 2 is still up and its other link works
    const alive = await f.waitFor((r) => r.ev === 'got' && r.id === 0 && r.far === 2, 10_000, 'message 2->0 after the garbage')
    expect(alive.value).toEqual({ alive: 2 })

    // Garbage before the handshake, straight into the primary's link socket: refused, typed, primary up.
    const sock = readdirSync(f.dir).find((n) => n.startsWith('0-'))!
    await new Promise<void>((resolve) => {
      const s = net.connect(path.join(f.dir, sock), () => s.write(Buffer.from('\x00\xffnot a handshake at all\n')))
      s.on('close', () => resolve())
      s.on('error', () => {})
    })
    const refused = await f.waitFor((r) => r.ev === 'error' && r.id === 0, 10_000, 'handshake error')
    expect(refused.code).toBe('ERR_HANDSHAKE')
    expect(f.proc.exitCode).toBeNull()

    // A process with the cluster token (readable by the same user) that speaks, then sends a bad
    // length prefix: that link fails with ERR_INVALID_LENGTH, the primary stays up.
    const w2 = f.reports.find((r) => r.ev === 'link' && r.id === 2)!.pid
    const token = /RXNET_CLUSTER_TOKEN=([0-9a-f]+)/.exec(readFileSync(`/proc/${w2}/environ`, 'latin1'))![1]
    const fake = net.connect(path.join(f.dir, sock))
    fake.on('error', () => {})
    fake.write(JSON.stringify({ rxnet: 'link', v: 1, token, id: 2, pid: 999_999 }) + '\n')
    await new Promise((r) => fake.once('data', r)) // the primary's handshake answer
    fake.write(Buffer.alloc(10, 0xff)) // a varint that never ends
    const bad = await f.waitFor((r) => r.ev === 'link-error' && r.id === 0 && r.far === 2 && r.code === 'ERR_INVALID_LENGTH', 10_000, 'invalid length')
    expect(bad.code).toBe('ERR_INVALID_LENGTH')
    await new Promise((r) => (fake.destroyed ? r(null) : fake.once('close', r)))
    expect(f.proc.exitCode).toBeNull()
  })
})
