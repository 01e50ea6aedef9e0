import { readdirSync } from 'node:fs'
import { afterEach, describe, expect, it } from 'vitest'
import { Fixture, get, type Report } from './harness.js'

let fx: Fixture | null = null
afterEach(async () => {
  await fx?.stop()
  fx = null
})

const isWorker = (type: string, wid?: number) => (r: Report) => r.ev === 'worker' && r.type === type && (wid === undefined || r.wid === wid)

async function startHttp(env: Record<string, string>): Promise<{ fx: Fixture; port: number }> {
  const f = new Fixture({ FX: 'http', ...env })
  fx = f
  const workers = Number(env.WORKERS ?? 2)
  const serving = await f.waitCount((r) => r.ev === 'serving', workers + 1, 30_000, 'serving reports')
  // ... and the primary knows (it deals connections only to workers it saw serving)
  if (env.CRASH !== '1') await f.waitCount((r) => r.ev === 'worker' && r.type === 'listening', workers, 30_000, 'listening events')
  const port = serving.find((r) => r.id === 0)!.port as number
  return { fx: f, port }
}

/** Every process has a link to every other one (pids as given). */
async function waitFullMesh(f: Fixture, pids: Map<number, number>): Promise<void> {
  for (const [id, pid] of pids) {
    for (const [far, farPid] of pids) {
      if (far === id) continue
      await f.waitFor((r) => r.ev === 'link' && r.pid === pid && r.far === far && r.farPid === farPid, 20_000, `link ${id}->${far}`)
    }
  }
}

function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length
}

describe('cluster: serving and supervision', () => {
  it('serves HTTP on one port from the primary and every worker (distinct pids), dealt round-robin', async () => {
    const { fx: f, port } = await startHttp({ WORKERS: '3' })
    const pids = new Set<number>()
    const ids = new Set<number>()
    const counts = [0, 0, 0, 0]
    for (let i = 0; i < 40; i++) counts[(await get(port)).body.id]!++
    expect(counts).toEqual([10, 10, 10, 10]) // one connection each, dealt in turn
    for (let i = 0; i < 400 && ids.size < 4; i++) {
      const { status, body } = await get(port)
      expect(status).toBe(200)
      pids.add(body.pid)
      ids.add(body.id)
    }
    expect(ids).toEqual(new Set([0, 1, 2, 3]))
    expect(pids.size).toBe(4)
    expect(pids.has(f.proc.pid!)).toBe(true)
  })

  it('two servers on port 0: two ports, each dealt to its own server in every process', async () => {
    const f = new Fixture({ FX: 'two', WORKERS: '2' })
    fx = f
    await f.waitCount((r) => r.ev === 'serving', 3, 30_000, 'serving reports')
    await f.waitCount((r) => r.ev === 'worker' && r.type === 'listening', 4, 30_000, 'listening events')
    const { a, b } = f.reports.find((r) => r.ev === 'serving' && r.id === 0)!.ports as { a: number; b: number }
    expect(a).not.toBe(b)
    for (const [name, port] of [['a', a], ['b', b]] as const) {
      const ids = new Set<number>()
      for (let i = 0; i < 6; i++) {
        const { body } = await get(port)
        expect(body.server).toBe(name)
        ids.add(body.id)
      }
      expect(ids).toEqual(new Set([0, 1, 2]))
    }
  })

  it("distribution 'shared': every process accepts on the shared socket itself", async () => {
    const { fx: f, port } = await startHttp({ WORKERS: '2', DISTRIBUTION: 'shared' })
    const ids = new Set<number>()
    for (let i = 0; i < 400 && ids.size < 3; i++) ids.add((await get(port)).body.id)
    expect(ids).toEqual(new Set([0, 1, 2]))
    expect(f.proc.exitCode).toBeNull()
  })

  it('primaryServes: false, shared — only the workers accept (through node:cluster), even when the primary calls serve() last', async () => {
    // PRIMARY_LATE: the workers listen before the primary's serve() call, which must still resolve.
    const { fx: f, port } = await startHttp({ WORKERS: '2', PRIMARY_SERVES: '0', DISTRIBUTION: 'shared', PRIMARY_LATE: '1' })
    const ids = new Set<number>()
    for (let i = 0; i < 60; i++) ids.add((await get(port)).body.id)
    expect(ids).toEqual(new Set([1, 2]))
    expect(f.reports.find((r) => r.ev === 'serving' && r.id === 0)!.serving).toBe(false)
  })

  it('primaryServes: false — only the workers accept', async () => {
    const { fx: f, port } = await startHttp({ WORKERS: '2', PRIMARY_SERVES: '0' })
    const ids = new Set<number>()
    for (let i = 0; i < 60; i++) ids.add((await get(port)).body.id)
    expect(ids).toEqual(new Set([1, 2]))
    expect(f.reports.find((r) => r.ev === 'serving' && r.id === 0)!.serving).toBe(false)
  })

  it('cluster IPC as an Observable: worker -> primary, primary -> worker, worker -> worker (relayed)', async () => {
    const f = new Fixture({ FX: 'ipc', WORKERS: '2' })
    fx = f
    await f.waitFor((r) => r.ev === 'ipc' && r.id === 1 && r.from === 0 && r.data === 'go', 20_000, 'primary -> 1')
    const ww = await f.waitFor((r) => r.ev === 'ipc' && r.id === 2 && r.from === 1, 10_000, '1 -> 2')
    expect(ww.data).toEqual({ hi: 'w1->w2' })
    const wp = await f.waitFor((r) => r.ev === 'ipc' && r.id === 0 && r.from === 1 && typeof r.data === 'object', 10_000, '1 -> 0')
    expect(wp.data).toEqual({ hi: 'w1->p' })
    // undefined cannot go over IPC: a typed error, in the primary and in workers alike
    const refused = await f.waitCount((r) => r.ev === 'ipc-undefined', 3, 10_000, 'ipcSend(undefined) refused')
    expect(refused.map((r) => r.code)).toEqual(['ERR_INVALID_ARGUMENT', 'ERR_INVALID_ARGUMENT', 'ERR_INVALID_ARGUMENT'])
  })

  it('restarts a SIGKILLed worker with the same id, re-links it everywhere, leaks no fd', async () => {
    const { fx: f } = await startHttp({ WORKERS: '2', RESTART: 'fast' }) // restart delays 10, 20, 40 ms
    const primary = f.proc.pid!
    const dead = new Set<number>()
    const pidOf = async (wid: number): Promise<number> =>
      (await f.waitFor((r) => r.ev === 'serving' && r.id === wid && !dead.has(r.pid), 20_000, `worker ${wid} serving`)).pid
    const pids = new Map([[0, primary], [1, await pidOf(1)], [2, await pidOf(2)]])
    await waitFullMesh(f, pids)
    const before = fdCount(primary)
    for (let round = 0; round < 3; round++) {
      const old = pids.get(1)!
      dead.add(old)
      process.kill(old, 'SIGKILL')
      await f.waitFor((r) => isWorker('exit', 1)(r) && r.pid === old && r.signal === 'SIGKILL', 10_000, 'exit event')
      const fresh = await pidOf(1)
      pids.set(1, fresh)
      await waitFullMesh(f, pids)
      // the links to the dead worker completed in both surviving processes
      for (const id of [0, 2]) await f.waitFor((r) => r.ev === 'link-closed' && r.pid === pids.get(id) && r.farPid === old, 10_000, 'old link closed')
    }
    expect(f.reports.filter(isWorker('restarting', 1)).map((r) => r.delay)).toEqual([10, 20, 40]) // backoff grows per exit
    expect(fdCount(primary)).toBeLessThanOrEqual(before)
  })

  it('backs off on a crash loop, then gives the slot up and reports it', async () => {
    const f = new Fixture({ FX: 'http', WORKERS: '2', CRASH: '1', RESTART: 'crash' })
    fx = f
    const gaveUp = await f.waitFor(isWorker('gave-up', 1), 30_000, 'gave-up')
    expect(gaveUp.code).toBe('ERR_CRASH_LOOP')
    const delays = f.reports.filter(isWorker('restarting', 1)).map((r) => r.delay as number)
    expect(delays).toEqual([50, 100, 200])
    expect(f.reports.filter((r) => isWorker('exit', 1)(r) && r.code === 3).length).toBe(4)
    // the rest of the cluster is up
    expect(f.proc.exitCode).toBeNull()
    expect(f.reports.some((r) => r.ev === 'serving' && r.id === 2)).toBe(true)
  })

  it('rolling restart (SIGHUP) under continuous HTTP load: every worker replaced, 0 failed requests', async () => {
    const { fx: f, port } = await startHttp({ WORKERS: '2' })
    const oldPids = f.reports.filter((r) => r.ev === 'serving' && r.id > 0).map((r) => r.pid)
    let ok = 0
    const failures: string[] = []
    const seen = new Set<number>()
    let running = true
    const loop = async (): Promise<void> => {
      while (running) {
        try {
          const { status, body } = await get(port)
          if (status === 200) {
            ok++
            seen.add(body.pid)
          } else failures.push(`status ${status}`)
        } catch (e) {
          failures.push((e as Error).message)
        }
      }
    }
    const loops = Array.from({ length: 6 }, loop)
    const t0 = Date.now()
    while (ok < 50 && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 20))
    f.proc.kill('SIGHUP')
    for (const old of oldPids) await f.waitFor((r) => isWorker('exit')(r) && r.pid === old && r.expected === true, 30_000, `old worker ${old} drained`)
    const newPids = (await f.waitCount((r) => r.ev === 'serving' && r.id > 0, 4, 10_000)).map((r) => r.pid).filter((p) => !oldPids.includes(p))
    const okAtSwap = ok
    while (ok < okAtSwap + 50 && Date.now() - t0 < 30_000) await new Promise((r) => setTimeout(r, 20))
    running = false
    await Promise.all(loops)
    expect(failures).toEqual([])
    expect(ok).toBeGreaterThan(100)
    expect(newPids.length).toBe(2)
    expect(f.reports.filter(isWorker('restarting')).length).toBe(0) // a reload is not a crash
  })

  it('reload fails safe: a successor that dies before serving leaves its predecessor serving', async () => {
    const { fx: f, port } = await startHttp({ WORKERS: '2', RELOAD_FAILS: '1' })
    const w1 = f.reports.find((r) => r.ev === 'serving' && r.id === 1)!.pid
    f.proc.kill('SIGUSR2')
    const failed = await f.waitFor((r) => r.ev === 'reload-failed', 20_000, 'reload-failed')
    expect(failed.code).toBe('ERR_CLOSED')
    const ids = new Set<number>()
    const pids = new Set<number>()
    for (let i = 0; i < 200 && ids.size < 3; i++) {
      const { body } = await get(port)
      ids.add(body.id)
      pids.add(body.pid)
    }
    expect(ids).toEqual(new Set([0, 1, 2]))
    expect(pids.has(w1)).toBe(true) // the predecessor still serves
    expect(f.reports.filter(isWorker('restarting')).length).toBe(0)
  })

  it('SIGTERM with a frozen worker: the others still exit 0 (their links to it are aborted), the frozen one is killed', async () => {
    const { fx: f } = await startHttp({ WORKERS: '2', SHUTDOWN_TIMEOUT: '500' })
    const w = (id: number): number => f.reports.find((r) => r.ev === 'serving' && r.id === id)!.pid
    await waitFullMesh(f, new Map([[0, f.proc.pid!], [1, w(1)], [2, w(2)]]))
    process.kill(w(2), 'SIGSTOP')
    try {
      f.proc.kill('SIGTERM')
      const w1 = await f.waitFor((r) => isWorker('exit', 1)(r), 15_000, 'worker 1 exit')
      expect([w1.code, w1.signal]).toEqual([0, null]) // not SIGKILLed at shutdownTimeout + 2 s
      const w2 = await f.waitFor((r) => isWorker('exit', 2)(r), 15_000, 'worker 2 exit')
      expect(w2.signal).toBe('SIGKILL')
      expect((await f.exited).code).toBe(0)
    } finally {
      try {
        process.kill(w(2), 'SIGCONT')
      } catch {}
    }
  })

  it('SIGTERM: stops accepting, lets in-flight requests complete, exits 0', async () => {
    const { fx: f, port } = await startHttp({ WORKERS: '2' })
    const inflight = Array.from({ length: 6 }, () => get(port, '/?delay=700'))
    await f.waitCount((r) => r.ev === 'req-start', 6, 10_000, 'requests in flight')
    f.proc.kill('SIGTERM')
    const results = await Promise.all(inflight)
    for (const r of results) expect(r.status).toBe(200)
    const { code } = await f.exited
    expect(code).toBe(0)
    await expect(get(port)).rejects.toThrow()
  })
})
