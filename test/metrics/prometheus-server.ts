/**
 * A real Prometheus server (Debian's `prometheus`) for tests: bound to 127.0.0.1, storage and
 * config in a temp dir removed on close, scraping the given targets every second.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'

/** Whether `cmd` is on PATH. */
export function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0
}

/** A free TCP port on 127.0.0.1 (bound then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer().once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo
      s.close(() => resolve(port))
    })
  })
}

/** Runs `promtool check metrics` on `text`: its exit status and output. */
export function promtoolCheck(text: string): { status: number | null; output: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 20_000 })
  return { status: r.status, output: `${r.stdout}${r.stderr}` }
}

export interface PrometheusServer {
  readonly url: string
  /** Runs an instant query; the `data.result` vector. */
  query(q: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]>
  /** Polls `q` until `pred` holds on its result (bounded by `ms`). */
  until(q: string, pred: (r: { metric: Record<string, string>; value: [number, string] }[]) => boolean, ms?: number): Promise<{ metric: Record<string, string>; value: [number, string] }[]>
  close(): Promise<void>
}

/** Starts prometheus scraping `targets` (`host:port`) at `metricsPath` every second. */
export async function startPrometheus(targets: string[], metricsPath = '/metrics'): Promise<PrometheusServer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rxnet-prom-'))
  const config = path.join(dir, 'prometheus.yml')
  fs.writeFileSync(
    config,
    ['global:', '  scrape_interval: 1s', '  scrape_timeout: 1s', 'scrape_configs:', '  - job_name: rxnet', `    metrics_path: ${metricsPath}`, '    static_configs:', `      - targets: [${targets.map((t) => `'${t}'`).join(', ')}]`, ''].join('\n'),
  )
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const proc: ChildProcess = spawn('prometheus', [`--config.file=${config}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'], { stdio: ['ignore', 'ignore', 'pipe'] })
  let log = ''
  proc.stderr!.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-4000)))
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()))
  const close = async (): Promise<void> => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM')
    await exited
    fs.rmSync(dir, { recursive: true, force: true })
  }
  const deadline = Date.now() + 30_000
  for (;;) {
    try {
      const r = await fetch(`${url}/-/ready`)
      if (r.ok) break
    } catch {
      // not listening yet
    }
    if (proc.exitCode !== null || Date.now() > deadline) {
      await close()
      throw new Error(`prometheus did not become ready: ${log}`)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  const query = async (q: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> => {
    const r = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(q)}`)
    const body = (await r.json()) as { status: string; data: { result: { metric: Record<string, string>; value: [number, string] }[] }; error?: string }
    if (body.status !== 'success') throw new Error(`query ${q}: ${body.error}`)
    return body.data.result
  }
  return {
    url,
    query,
    async until(q, pred, ms = 30_000) {
      const end = Date.now() + ms
      for (;;) {
        const result = await query(q)
        if (pred(result)) return result
        if (Date.now() > end) throw new Error(`prometheus query ${q} never matched; last result ${JSON.stringify(result)}`)
        await new Promise((r) => setTimeout(r, 200))
      }
    },
    close,
  }
}
