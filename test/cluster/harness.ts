/**
 * Spawns a fixture cluster and follows its JSON-line reports. The fixture (TypeScript, with the
 * sources it imports) is bundled once per test file with esbuild, so that every primary and worker
 * starts as plain `node` instead of loading tsx (about half of a cluster's start-up time).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import http from 'node:http'
import { build } from 'esbuild'
import { afterAll } from 'vitest'

export interface Report {
  ev: string
  id: number
  pid: number
  [k: string]: unknown
}

const root = fileURLToPath(new URL('../..', import.meta.url))
const fixture = fileURLToPath(new URL('./fixtures/app.ts', import.meta.url))

// Inside the checkout, so the external packages resolve from its node_modules; one file per test file.
const bundle = path.join(root, 'node_modules', '.cache', 'rxnet-cluster-tests', `app-${process.pid}-${randomBytes(4).toString('hex')}.mjs`)
const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { dependencies?: object; peerDependencies?: object }
await build({
  entryPoints: [fixture],
  outfile: bundle,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  tsconfig: path.join(root, 'tsconfig.json'), // 'rxnet/net' -> src/net/index.ts, as under tsx
  external: Object.keys({ ...pkg.dependencies, ...pkg.peerDependencies }).flatMap((name) => [name, `${name}/*`]),
  logLevel: 'warning',
})
afterAll(() => rmSync(bundle, { force: true }))

export class Fixture {
  readonly reports: Report[] = []
  readonly proc: ChildProcess
  readonly dir: string
  stderr = ''
  private waiters: { pred: (r: Report) => boolean; resolve: (r: Report) => void }[] = []
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>

  constructor(env: Record<string, string>) {
    this.dir = mkdtempSync(path.join(os.tmpdir(), 'rxc-'))
    this.proc = spawn(process.execPath, [bundle], {
      cwd: root,
      env: { ...process.env, SOCK_DIR: this.dir, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let buf = ''
    this.proc.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buf += chunk
      let nl: number
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl)
        buf = buf.slice(nl + 1)
        let r: Report
        try {
          r = JSON.parse(line) as Report
        } catch {
          continue
        }
        this.reports.push(r)
        this.waiters = this.waiters.filter((w) => {
          if (!w.pred(r)) return true
          w.resolve(r)
          return false
        })
      }
    })
    this.proc.stderr!.setEncoding('utf8').on('data', (c: string) => (this.stderr += c))
    this.exited = new Promise((resolve) => this.proc.once('exit', (code, signal) => resolve({ code, signal })))
  }

  /** Resolves with the first report (past or future) matching `pred`. */
  waitFor(pred: (r: Report) => boolean, timeout = 20_000, what = 'report'): Promise<Report> {
    const found = this.reports.find(pred)
    if (found) return Promise.resolve(found)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done)
        reject(new Error(`timed out waiting for ${what}; stderr:\n${this.stderr.slice(-2000)}`))
      }, timeout)
      const done = (r: Report): void => {
        clearTimeout(timer)
        resolve(r)
      }
      this.waiters.push({ pred, resolve: done })
    })
  }

  /** Waits until `n` reports match `pred`. */
  async waitCount(pred: (r: Report) => boolean, n: number, timeout = 20_000, what = 'reports'): Promise<Report[]> {
    // Counts matches as they come (past ones first, through waitFor), instead of polling the reports.
    let seen = 0
    await this.waitFor((r) => pred(r) && ++seen >= n, timeout).catch(() => {
      throw new Error(`timed out waiting for ${n} ${what} (have ${this.reports.filter(pred).length}); stderr:\n${this.stderr.slice(-2000)}`)
    })
    return this.reports.filter(pred)
  }

  /** Stops the cluster (SIGTERM, then SIGKILL) and removes the temp dir. */
  async stop(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill('SIGTERM')
      const t = setTimeout(() => this.proc.kill('SIGKILL'), 8_000)
      await this.exited
      clearTimeout(t)
    }
    rmSync(this.dir, { recursive: true, force: true })
  }
}

const noKeepAlive = new http.Agent({ keepAlive: false })

/** One GET on a fresh connection; resolves with status and parsed JSON body. */
export function get(port: number, pathname = '/'): Promise<{ status: number; body: { id: number; pid: number; server?: string } }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: pathname, agent: noKeepAlive }, (res) => {
      let data = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (data += c))
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(data) })
        } catch (e) {
          reject(e)
        }
      })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.setTimeout(10_000, () => req.destroy(new Error('request timed out')))
  })
}
