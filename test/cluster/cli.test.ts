import { spawn } from 'node:child_process'
import net from 'node:net'
import { fileURLToPath } from 'node:url'
import { describe, expect, it, vi } from 'vitest'
import { main } from '../../src/cli/main.js'
import { get } from './harness.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const app = fileURLToPath(new URL('./fixtures/serve-app.mjs', import.meta.url))

describe('rxnet serve', () => {
  it('runs an app as a supervised cluster, reports workers live, answers from every process, stops on SIGTERM', { timeout: 90_000 }, async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve', app, '--workers', '2', '--port', '0'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c))
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)))
    try {
      const deadline = Date.now() + 45_000
      const up = (): boolean => out.match(/worker \d listening/g)?.length === 2 && /127\.0\.0\.1:\d+/.test(out)
      while (!up() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
      expect(up(), `rxnet serve did not come up; output so far:\n${out}`).toBe(true)
      const port = Number(/127\.0\.0\.1:(\d+)/.exec(out)![1])
      const ids = new Set<number>()
      for (let i = 0; i < 200 && ids.size < 3; i++) ids.add((await get(port)).body.id)
      expect(ids).toEqual(new Set([0, 1, 2]))
      child.kill('SIGTERM')
      expect(await exited).toBe(0)
      expect(out).toMatch(/worker 1 exited .*requested/)
    } finally {
      child.kill('SIGKILL')
    }
  })

  it.each([
    [['--workers', 'zero'], /--workers wants a positive integer/],
    [['--workers', '2.5'], /--workers wants a positive integer/],
    [['--port', ''], /--port wants an integer in 0\.\.65535, got ""/], // not port 0 (a random port) by accident
    [['--port', '8e3'], /--port wants an integer in 0\.\.65535, got "8e3"/],
    [['--port'], /--port needs a value/],
    [['--wrokers', '2'], /unknown option --wrokers \(did you mean --workers\?\)/],
    [['--shutdown-timeout', '0'], /--shutdown-timeout wants a positive integer/],
    [['--distribution', 'random'], /--distribution must be round-robin or shared/],
  ])('refuses bad options with exit code 2 and the reason on one line, before starting anything: %j', async (argv, message) => {
    // In-process: options are checked before the app is loaded or a worker forked.
    const errors = vi.spyOn(console, 'error').mockImplementation(() => {})
    try {
      expect(await main(['serve', app, ...argv])).toBe(2)
      expect(errors.mock.calls).toHaveLength(1)
      expect(String(errors.mock.calls[0]?.[0])).toMatch(/^rxnet serve: [^\n]+$/)
      expect(String(errors.mock.calls[0]?.[0])).toMatch(message)
    } finally {
      errors.mockRestore()
    }
  })

  it('a port already in use: says so, stops the workers it forked, exits 1 (no hang)', async () => {
    const busy = net.createServer()
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve))
    const port = (busy.address() as net.AddressInfo).port
    try {
      const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve', app, '--workers', '2', '--port', String(port)], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
      let err = ''
      child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c))
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
      const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)))
      clearTimeout(timer)
      expect(code).toBe(1)
      expect(err).toMatch(/EADDRINUSE/)
    } finally {
      await new Promise((r) => busy.close(r))
    }
  })

  it('workers that cannot listen (--no-primary-serves --distribution shared, port in use) exit 1, give up, and the CLI exits 1', { timeout: 60_000 }, async () => {
    const busy = net.createServer()
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve))
    const port = (busy.address() as net.AddressInfo).port
    try {
      const argv = ['--import', 'tsx', 'src/cli/main.ts', 'serve', app, '--workers', '1', '--port', String(port), '--no-primary-serves', '--distribution', 'shared']
      const child = spawn(process.execPath, argv, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
      let out = ''
      child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c))
      const timer = setTimeout(() => child.kill('SIGKILL'), 45_000)
      const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)))
      clearTimeout(timer)
      expect(out).toMatch(/worker 1 exited \(pid \d+, code 1,/) // the worker left instead of hanging
      expect(out).toMatch(/worker 1 gave up: ERR_CRASH_LOOP/)
      expect(code).toBe(1)
    } finally {
      await new Promise((r) => busy.close(r))
    }
  })

  it('an app that fails to load: exit 1 before forking anything', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve', 'test/cluster/fixtures/no-such-app.mjs', '--port', '0'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
    let err = ''
    let out = ''
    child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c))
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c))
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)))
    expect(code).toBe(1)
    expect(err).toMatch(/cannot load/)
    expect(out).not.toMatch(/online/)
  })
})
