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
    // (With worker 2's own pid: the primary adopts only the pid its roster gives an id.)
    fake.write(JSON.stringify({ rxnet: 'link', v: 2, token, id: 2, pid: w2 }) + '\n')
    await new Promise((r) => fake.once('data', r)) // the primary's handshake answer
    fake.write(Buffer.alloc(10, 0xff)) // a varint that never ends
    const bad = await f.waitFor((r) => r.ev === 'link-error' && r.id === 0 && r.far === 2 && r.code === 'ERR_INVALID_LENGTH', 10_000, 'invalid length')
    expect(bad.code).toBe('ERR_INVALID_LENGTH')
    await new Promise((r) => (fake.destroyed ? r(null) : fake.once('close', r)))
    expect(f.proc.exitCode).toBeNull()
  })

  it('a connection with the cluster token claiming a worker id with another pid is refused (ERR_NOT_ROSTERED), counted; the live link stays', async () => {
    const f = new Fixture({ FX: 'redial', WORKERS: '2' })
    fx = f
    await f.waitCount((r) => r.ev === 'got' && r.id === 0, 2, 20_000, 'hello from both workers')
    const w2 = f.reports.find((r) => r.ev === 'redial-ready' && r.id === 2)?.pid ?? (await f.waitFor((r) => r.ev === 'redial-ready' && r.id === 2)).pid
    const token = /RXNET_CLUSTER_TOKEN=([0-9a-f]+)/.exec(readFileSync(`/proc/${w2}/environ`, 'latin1'))![1]
    const sock = readdirSync(f.dir).find((n) => n.startsWith('0-'))!
    const fake = net.connect(path.join(f.dir, sock))
    fake.on('error', () => {})
    fake.write(JSON.stringify({ rxnet: 'link', v: 2, token, id: 2, pid: w2 + 100_000 }) + '\n')
    const closed = new Promise((r) => fake.once('close', r))
    const refused = await f.waitFor((r) => r.ev === 'error' && r.id === 0, 10_000, 'refusal')
    expect(refused.code).toBe('ERR_NOT_ROSTERED')
    expect(refused.linksRefused).toBe(1)
    // events$ is the one union: the same refusal as { type: 'error' }, next to the worker lifecycle
    await f.waitFor((r) => r.ev === 'event' && r.id === 0 && r.type === 'error' && r.code === 'ERR_NOT_ROSTERED', 10_000, 'refusal on events$')
    expect(f.reports.some((r) => r.ev === 'event' && r.id === 0 && r.type === 'online')).toBe(true)
    await closed
    expect(fake.bytesRead).toBe(0) // no handshake answer: nothing was adopted
    expect(f.reports.filter((r) => r.ev === 'link-closed' && r.id === 0 && r.far === 2)).toEqual([])
    expect(f.reports.filter((r) => r.ev === 'link' && r.id === 0 && r.far === 2)).toHaveLength(1)
  })

  it('a link failed (ERR_BUFFER_OVERFLOW behind a SIGSTOP freeze) between two live workers is redialled and comes back on links$', async () => {
    const f = new Fixture({ FX: 'redial', WORKERS: '2', HWM: String(64 * 1024) })
    fx = f
    const hello1 = await f.waitFor((r) => r.ev === 'got' && r.id === 1 && r.far === 2, 20_000, 'hello 2 -> 1')
    await f.waitFor((r) => r.ev === 'got' && r.id === 2 && r.far === 1, 20_000, 'hello 1 -> 2')
    const w1 = hello1.pid
    const w2 = f.reports.find((r) => r.ev === 'got' && r.id === 2)!.pid
    process.kill(w2, 'SIGSTOP')
    try {
      process.kill(w1, 'SIGUSR2') // worker 1 floods its link to the frozen worker 2
      const failed = await f.waitFor((r) => r.ev === 'link-error' && r.id === 1 && r.far === 2, 20_000, 'overflow on 1 -> 2')
      expect(failed.code).toBe('ERR_BUFFER_OVERFLOW')
    } finally {
      process.kill(w2, 'SIGCONT')
    }
    // Worker 2 (the higher id dials) redials; both get a second link and it carries.
    const again1 = await f.waitFor((r) => r.ev === 'got' && r.id === 1 && r.far === 2 && (r.value as { n: number }).n === 2, 20_000, 'hello on the new link 2 -> 1')
    const again2 = await f.waitFor((r) => r.ev === 'got' && r.id === 2 && r.far === 1 && (r.value as { n: number }).n === 2, 20_000, 'hello on the new link 1 -> 2')
    expect([again1.pid, again2.pid]).toEqual([w1, w2])
    expect(f.reports.filter((r) => r.ev === 'link' && r.id === 1 && r.far === 2)).toHaveLength(2)
    expect(f.reports.filter((r) => r.ev === 'worker' && r.type === 'exit')).toEqual([])
  })

  it('the link socket directory holds only the live processes\' sockets after workers crashed and were restarted', async () => {
    const f = new Fixture({ FX: 'http', WORKERS: '2', CRASH: '1', RESTART: 'crash' })
    fx = f
    // Worker 1 crashes after serving, every time: 3 restarts, then the slot is given up.
    await f.waitFor((r) => r.ev === 'worker' && r.type === 'gave-up', 30_000, 'gave-up')
    expect(f.reports.filter((r) => r.ev === 'worker' && r.type === 'restarting')).toHaveLength(3)
    const live = new Set([f.proc.pid, ...f.reports.filter((r) => r.ev === 'serving' && r.id === 2).map((r) => r.pid)])
    const socks = readdirSync(f.dir).filter((n) => n.endsWith('.sock'))
    expect(socks.map((n) => Number(/^\d+-(\d+)\.sock$/.exec(n)![1])).sort()).toEqual([...live].sort())
  })
})
