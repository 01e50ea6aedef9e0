import { afterEach, describe, expect, it } from 'vitest'
import { type ChildProcess, spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { firstValueFrom } from 'rxjs'
import { clusterSocketPath, findCluster, watchCluster } from 'rxnet'
import { root } from '../unit/run-script.js'

const fixture = fileURLToPath(new URL('./fixtures/cluster-socket-app.ts', import.meta.url))
const cli = path.join(root, 'src/cli/main.ts')

const cleanups: (() => Promise<unknown> | unknown)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

/** A fresh TMPDIR (and no XDG_RUNTIME_DIR) for the processes of one test, removed afterwards. */
function privateTmp(): { tmp: string; env: NodeJS.ProcessEnv } {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rxnet-cdash-'))
  cleanups.push(() => fs.rmSync(tmp, { recursive: true, force: true }))
  const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: tmp }
  delete env.XDG_RUNTIME_DIR
  return { tmp, env }
}

function start(args: string[], env: NodeJS.ProcessEnv): { proc: ChildProcess; line: Promise<string>; exited: Promise<number | null>; stderr: () => string } {
  const proc = spawn(process.execPath, ['--import', 'tsx', ...args], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()))
  const exited = new Promise<number | null>((resolve) => proc.once('exit', resolve))
  const line = new Promise<string>((resolve, reject) => {
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString()
      const nl = out.indexOf('\n')
      if (nl >= 0) resolve(out.slice(0, nl))
    })
    void exited.then((code) => reject(new Error(`exited ${code} before printing: ${err}`)))
  })
  line.catch(() => {}) // awaited by the tests that want it
  cleanups.push(async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM')
      await exited
    }
  })
  return { proc, line, exited, stderr: () => err }
}

interface View {
  nodes: { id: string }[]
  links: { a: string; b: string; state: string }[]
  workers: { id: number; pid: number | null; state: string; restarts: number; node: string }[]
}

/** Reads /view.json until `ok` holds (each read awaits the previous; bounded to 30 s). */
async function viewUntil(url: string, ok: (v: View) => boolean): Promise<View> {
  const end = Date.now() + 30_000
  let last: View | undefined
  while (Date.now() < end) {
    last = (await (await fetch(`${url}view.json`)).json()) as View
    if (ok(last)) return last
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`view never matched: ${JSON.stringify(last)}`)
}

const online = (v: View, id: number): boolean => v.workers.some((w) => w.id === id && (w.state === 'online' || w.state === 'listening'))

describe('rxnet dashboard --cluster', () => {
  it('a separate process shows the primary, its workers and the links between them; a killed worker shows its restart; the socket goes with the primary', async () => {
    const { tmp, env } = privateTmp()
    const app = start([fixture], env)
    const { pid } = JSON.parse(await app.line) as { pid: number }
    const sock = clusterSocketPath(pid, path.join(tmp, `rxnet-${process.getuid!()}`))
    expect(fs.statSync(sock).mode & 0o777).toBe(0o600)
    expect(fs.statSync(path.dirname(sock)).mode & 0o777).toBe(0o700)

    const dash = start([cli, 'dashboard', '--cluster', '--port', '0'], env)
    const url = /dashboard: (\S+)/.exec(await dash.line)![1]!
    const v = await viewUntil(url, (x) => online(x, 1) && online(x, 2) && ['0', '1', '2'].every((id) => x.nodes.some((n) => n.id === id)) && x.links.filter((l) => l.state !== 'down').length === 3) // idle links (no heartbeats) turn suspect after 1 s
    expect(v.nodes.map((n) => n.id)).toEqual(['0', '1', '2'])
    expect(v.links.map((l) => `${l.a}-${l.b}`).sort()).toEqual(['0-1', '0-2', '1-2'])
    expect(v.workers.map((w) => [w.id, w.restarts, w.node])).toEqual([[1, 0, '0'], [2, 0, '0']])

    const victim = v.workers.find((w) => w.id === 1)!.pid!
    process.kill(victim, 'SIGKILL')
    const after = await viewUntil(url, (x) => x.workers.some((w) => w.id === 1 && w.restarts === 1 && w.pid !== victim) && online(x, 1))
    expect(after.workers.find((w) => w.id === 2)!.restarts).toBe(0)

    app.proc.kill('SIGTERM')
    expect(await app.exited).toBe(0)
    expect(fs.existsSync(sock)).toBe(false)
  }, 90_000)

  it('with no cluster running: ERR_NO_CLUSTER, exit 1; a PID without --cluster is a usage error, exit 2', async () => {
    const { env } = privateTmp()
    const none = start([cli, 'dashboard', '--cluster'], env)
    expect(await none.exited).toBe(1)
    expect(none.stderr()).toMatch(/ERR_NO_CLUSTER: no cluster running/)
    const given = start([cli, 'dashboard', '--cluster', String(process.pid)], env)
    expect(await given.exited).toBe(1)
    expect(given.stderr()).toMatch(/ERR_NO_CLUSTER: no cluster running/)
    const usage = start([cli, 'dashboard', '--bus', '/tmp/x.sock', '1234'], env)
    expect(await usage.exited).toBe(2)
    expect(usage.stderr()).toMatch(/a PID goes after --cluster/)
  }, 60_000)

  it.skipIf(process.getuid?.() !== 0)('refuses a socket another user owns in the private directory (ERR_UNSAFE_PATH), skips one whose primary died', async () => {
    const { tmp } = privateTmp()
    const saved = { TMPDIR: process.env.TMPDIR, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR }
    process.env.TMPDIR = tmp
    delete process.env.XDG_RUNTIME_DIR
    cleanups.push(() => {
      for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k]
      else process.env[k] = v
    })
    const dir = path.join(tmp, `rxnet-${process.getuid!()}`)
    fs.mkdirSync(dir, { mode: 0o700 })
    // A dead primary's socket file (SIGKILL leaves it): not a running cluster.
    const dead = spawn(process.execPath, ['-e', ''])
    const deadPid = dead.pid!
    await new Promise((r) => dead.once('exit', r))
    const stale = net.createServer()
    await new Promise<void>((r) => stale.listen(clusterSocketPath(deadPid, dir), r))
    cleanups.push(() => new Promise((r) => stale.close(r)))
    expect(() => findCluster()).toThrow(expect.objectContaining({ code: 'ERR_NO_CLUSTER' }))
    // Another user's socket, named for a live process (ours): refused, never connected.
    const theirs = net.createServer(() => expect.fail('connected to another user\u2019s socket'))
    const theirPath = clusterSocketPath(process.pid, dir)
    await new Promise<void>((r) => theirs.listen(theirPath, r))
    cleanups.push(() => new Promise((r) => theirs.close(r)))
    fs.chownSync(theirPath, 65534, 65534)
    await expect(firstValueFrom(watchCluster(process.pid))).rejects.toMatchObject({ code: 'ERR_UNSAFE_PATH' })
    expect(() => findCluster()).toThrow(expect.objectContaining({ code: 'ERR_UNSAFE_PATH' }))
  })
})
