// A missing hub is loud (issue 8 item 13): flush({ timeout }) says why, close() reports what it
// could not deliver, the CLI says "no hub at <path>" and how to start one, and startHub on a
// regular file or in a missing directory names the real reason.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { firstValueFrom, filter } from 'rxjs'
import { afterEach, describe, expect, it } from 'vitest'
import { connectBus, startHub, type Bus } from 'rxnet'
import { run as tail } from '../../src/cli/tail.js'
import { run as emit } from '../../src/cli/emit.js'
import { run as hubCli } from '../../src/cli/hub.js'
import { tmpSocket } from './helpers.js'

const open: { close(): unknown }[] = []
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await Promise.resolve(o.close()).catch(() => {})
})
function bus(path = tmpSocket()): Bus {
  const b = connectBus(path, { minReconnectDelay: 5, maxReconnectDelay: 20, closeTimeout: 50 })
  open.push(b)
  return b
}
function tempFile(content: string): string {
  const f = tmpSocket()
  fs.writeFileSync(f, content)
  open.push({ close: () => fs.rmSync(f, { force: true }) })
  return f
}

describe('a missing hub', () => {
  it('status$ and flush({ timeout }) say ERR_NO_HUB (the flush error is ERR_TIMEOUT with it as cause); a hub started later is found', async () => {
    const path = tmpSocket()
    const b = bus(path)
    expect(await firstValueFrom(b.status$.pipe(filter((s) => s.type === 'disconnected')))).toMatchObject({ error: { code: 'ERR_NO_HUB', path } })
    const err = await b.flush({ timeout: 50 }).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'ERR_TIMEOUT', cause: { code: 'ERR_NO_HUB' }, message: expect.stringContaining(`no hub at ${path}`) })
    await expect(b.flush({ timeout: 'soon' as unknown as number })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('the string "soon"') })
    const h = await startHub({ path })
    open.splice(open.indexOf(b), 0, h)
    await b.flush({ timeout: 5000 })
    expect(b.connected).toBe(true)
  })

  it('close() rejects with ERR_UNDELIVERED carrying the count and why; stats.undelivered counts; a later close() resolves', async () => {
    const b = bus()
    for (let i = 0; i < 3; i++) b.emit('t', i)
    const err = await b.close().catch((e: unknown) => e)
    expect(err).toMatchObject({ name: 'UndeliveredError', code: 'ERR_UNDELIVERED', count: 3, cause: { code: 'ERR_NO_HUB' } })
    expect(b.stats).toMatchObject({ undelivered: 3, buffered: 0 })
    await expect(b.close()).resolves.toBeUndefined()
    // Nothing undelivered: close() resolves.
    const h = await startHub({ path: tmpSocket() })
    open.push(h)
    const ok = connectBus(h.path)
    ok.emit('t', 1)
    await expect(ok.close()).resolves.toBeUndefined()
    expect(ok.stats.undelivered).toBe(0)
  })

  it('a socket file nobody listens on is ERR_NO_HUB too (nothing listens on the socket)', async () => {
    const stale = tmpSocket()
    const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(stale)}, () => process.kill(process.pid, 'SIGKILL'))`])
    await new Promise((r) => child.once('exit', r))
    open.push({ close: () => fs.rmSync(stale, { force: true }) })
    const b = bus(stale)
    expect(await firstValueFrom(b.status$.pipe(filter((s) => s.type === 'disconnected')))).toMatchObject({ error: { code: 'ERR_NO_HUB', message: expect.stringContaining('nothing listens') } })
  })

  it('rxnet emit / tail: "no hub at <path>" with how to start one, within --timeout (in-process and as a real process exit code)', async () => {
    const path = tmpSocket()
    const hint = `start one with: rxnet hub --path ${path}`
    await expect(emit(['log', '1', '--path', path, '--timeout', '100'])).rejects.toMatchObject({ code: 'ERR_NO_HUB', message: expect.stringContaining(`no hub at ${path}`) })
    await expect(tail(['log.>', '--path', path, '--timeout', '100'])).rejects.toMatchObject({ code: 'ERR_NO_HUB', message: expect.stringContaining(hint) })
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'tail', 'log.>', '--path', path, '--timeout', '100'], { cwd: new URL('../..', import.meta.url).pathname, stdio: ['ignore', 'pipe', 'pipe'] })
    let err = ''
    child.stderr.on('data', (d) => (err += d))
    const code = await new Promise((r) => child.once('exit', r))
    expect(code).toBe(1)
    expect(err).toContain(`rxnet: ERR_NO_HUB: no hub at ${path}`)
    expect(err).toContain(hint)
  })

  it('startHub on a regular file: ERR_NOT_A_SOCKET naming it (the file is kept); in a missing directory: ERR_PATH_NOT_FOUND naming the directory', async () => {
    const file = tempFile('keep me')
    await expect(startHub({ path: file })).rejects.toMatchObject({ code: 'ERR_NOT_A_SOCKET', message: expect.stringContaining('a regular file') })
    expect(fs.readFileSync(file, 'utf8')).toBe('keep me')
    await expect(hubCli(['--path', file])).rejects.toMatchObject({ code: 'ERR_NOT_A_SOCKET' })
    const missing = join(os.tmpdir(), `rxnet-missing-${process.pid}`, 'x.sock')
    await expect(startHub({ path: missing })).rejects.toMatchObject({ code: 'ERR_PATH_NOT_FOUND', message: expect.stringContaining(`directory ${join(os.tmpdir(), `rxnet-missing-${process.pid}`)} does not exist`) })
    await expect(startHub({ path: join(file, 'x.sock') })).rejects.toMatchObject({ code: 'ERR_PATH_NOT_FOUND' }) // a file where a directory should be
    const b = bus(missing)
    expect(await firstValueFrom(b.status$.pipe(filter((s) => s.type === 'disconnected')))).toMatchObject({ error: { code: 'ERR_NO_HUB', message: expect.stringContaining('directory does not exist') } })
  })
})
