/**
 * Cluster benchmarks (loopback only, every loop bounded in count and time):
 * - links vs cluster IPC (`process.send`, json) for ~100 B objects, worker -> primary and
 *   worker -> worker (IPC relayed by the primary), measured in the same run;
 * - HTTP requests/s: rxnet cluster (2 workers + primary serving) vs bare node:cluster (2 workers),
 *   same handler, same lean keep-alive load generator (raw sockets), samples interleaved.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import net from 'node:net'
import { median, root, script, type BenchContext } from './harness.js'

/** The body http-bench.ts answers with. */
const BODY = 'hello world\n'

function start(file: string, env: Record<string, string>): { child: ChildProcess; lines: AsyncIterable<Record<string, unknown>> } {
  const fixture = script(import.meta.url, `../cluster/fixtures/${file}`)
  const child = spawn(process.execPath, [...fixture.execArgv, fixture.file], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] })
  async function* lines(): AsyncIterable<Record<string, unknown>> {
    let buf = ''
    for await (const chunk of child.stdout!) {
      buf += String(chunk)
      let nl: number
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl)
        buf = buf.slice(nl + 1)
        try {
          yield JSON.parse(line) as Record<string, unknown>
        } catch {
          /* not a report */
        }
      }
    }
  }
  return { child, lines: lines() }
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((r) => child.once('exit', r))
  child.kill('SIGTERM')
  const t = setTimeout(() => child.kill('SIGKILL'), 10_000)
  await exited
  clearTimeout(t)
}

/**
 * Keep-alive load from `connections` raw sockets, one request in flight on each, for `ms` (at most
 * `max` responses); returns responses/s. A lean generator (pre-built request bytes, responses counted
 * by their fixed body) so that the servers, not the generator, are what is measured.
 */
function load(port: number, ms: number, connections = 16, max = 5_000_000): Promise<number> {
  const request = Buffer.from(`GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`)
  const marker = BODY
  return new Promise((resolve, reject) => {
    let done = 0
    let open = connections
    let failed: Error | null = null
    const t0 = performance.now()
    const deadline = t0 + ms
    const finish = (): void => {
      if (--open > 0) return
      if (failed) reject(failed)
      else resolve(done / ((performance.now() - t0) / 1000))
    }
    for (let c = 0; c < connections; c++) {
      const socket = net.connect(port, '127.0.0.1')
      let tail = ''
      socket.setEncoding('latin1')
      socket.on('connect', () => socket.write(request))
      socket.on('data', (chunk: string) => {
        const text = tail + chunk
        let at = 0
        let got = 0
        while ((at = text.indexOf(marker, at)) >= 0) {
          got++
          at += marker.length
        }
        tail = text.slice(-marker.length + 1)
        done += got
        if (got === 0) return
        if (performance.now() < deadline && done < max) socket.write(request)
        else socket.end()
      })
      socket.on('error', (e) => (failed = e))
      socket.on('close', finish)
    }
  })
}

export default async function (ctx: BenchContext): Promise<void> {
  const runs = 5
  // --- links vs process.send
  const N = 200_000
  const msg = start('bench-app', { N: String(N), RUNS: String(runs) })
  const rates = new Map<string, number[]>()
  for await (const r of msg.lines) {
    const kind = r.kind as string
    if ((r.rate as number) < 0) throw new Error(`${kind}: messages lost or out of order`)
    rates.set(kind, [...(rates.get(kind) ?? []), r.rate as number])
    ctx.log(`${kind}: ${Math.round(r.rate as number).toLocaleString('en')} msg/s`)
  }
  await stop(msg.child)
  for (const path of ['worker->primary', 'worker->worker']) {
    const ipc = rates.get(`ipc ${path}`) ?? []
    const link = rates.get(`link ${path}`) ?? []
    ctx.report({ name: `process.send json 100B ${path}`, unit: 'msg/s', median: median(ipc), samples: ipc, params: { n: N } })
    ctx.report({ name: `link json 100B ${path}`, unit: 'msg/s', median: median(link), samples: link, baseline: `process.send json 100B ${path}`, minRatio: 3, params: { n: N } })
  }

  // --- HTTP: rxnet cluster vs bare node:cluster, samples interleaved
  const ms = 2_000
  const servers: Record<string, { child: ChildProcess; port: number }> = {}
  for (const mode of ['bare', 'rxnet']) {
    const s = start('http-bench', { MODE: mode })
    for await (const r of s.lines) {
      servers[mode] = { child: s.child, port: r.port as number }
      break
    }
  }
  try {
    const samples: Record<string, number[]> = { bare: [], rxnet: [] }
    await load(servers.bare!.port, 500)
    await load(servers.rxnet!.port, 500)
    for (let i = 0; i < runs; i++) {
      for (const mode of i % 2 === 0 ? ['bare', 'rxnet'] : ['rxnet', 'bare']) {
        const rps = await load(servers[mode]!.port, ms)
        samples[mode]!.push(rps)
        ctx.log(`${mode}: ${Math.round(rps).toLocaleString('en')} req/s`)
      }
    }
    ctx.report({ name: 'http node:cluster 2 workers', unit: 'req/s', median: median(samples.bare!), samples: samples.bare!, params: { connections: 16, ms } })
    ctx.report({
      name: 'http rxnet cluster 2 workers + primary',
      unit: 'req/s',
      median: median(samples.rxnet!),
      samples: samples.rxnet!,
      baseline: 'http node:cluster 2 workers',
      minRatio: 0.97,
      params: { connections: 16, ms },
    })
  } finally {
    for (const s of Object.values(servers)) await stop(s.child)
  }
}
