// Socket path rules that need no second user: directories anyone can write (not sticky) are
// refused by both sides, a symlink at the hub's path is never replaced, a client follows a
// symlink of its own to the real socket, and a hub removes only its own socket on close.
import fs from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { firstValueFrom, filter } from 'rxjs'
import net from 'node:net'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { connectBus, startHub, type Hub } from 'rxnet'

let dir: string
const open: { close(): unknown }[] = []
beforeEach(() => {
  dir = fs.mkdtempSync(join(os.tmpdir(), 'rxnet-paths-'))
})
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await Promise.resolve(o.close()).catch(() => {})
  fs.rmSync(dir, { recursive: true, force: true })
})
async function hub(path: string): Promise<Hub> {
  const h = await startHub({ path })
  open.push(h)
  return h
}

describe.skipIf(process.platform === 'win32')('bus socket paths', () => {
  it('a directory writable by others without the sticky bit is ERR_UNSAFE_PATH for the hub and for connectBus', async () => {
    const open777 = join(dir, 'open')
    fs.mkdirSync(open777)
    fs.chmodSync(open777, 0o777)
    await expect(startHub({ path: join(open777, 'app.sock') })).rejects.toMatchObject({ code: 'ERR_UNSAFE_PATH', message: expect.stringContaining('not sticky') })
    expect(() => connectBus(join(open777, 'app.sock'))).toThrow(expect.objectContaining({ code: 'ERR_UNSAFE_PATH' }))
    fs.chmodSync(open777, 0o1777) // sticky, like /tmp: fine
    const h = await hub(join(open777, 'app.sock'))
    const b = connectBus(h.path)
    open.push(b)
    await b.flush({ timeout: 5000 })
  })

  it('the hub never replaces a symlink at its path; a client follows its own symlink to the real socket', async () => {
    const h = await hub(join(dir, 'real.sock'))
    const link = join(dir, 'link.sock')
    fs.symlinkSync(h.path, link)
    await expect(startHub({ path: link })).rejects.toMatchObject({ code: 'ERR_UNSAFE_PATH', message: expect.stringContaining('symbolic link') })
    expect(fs.lstatSync(link).isSymbolicLink()).toBe(true)
    const b = connectBus(link)
    open.push(b)
    await b.flush({ timeout: 5000 })
    expect(h.stats.clients).toBe(1)
  })

  it('the socket is 0600 from the start in a shared directory, no temporary entry is left, and close() removes only its own socket', async () => {
    const path = join(dir, 'app.sock')
    fs.chmodSync(dir, 0o1777)
    const old = process.umask(0)
    let h: Hub
    try {
      h = await startHub({ path })
    } finally {
      process.umask(old)
    }
    expect(fs.statSync(path).mode & 0o777).toBe(0o600)
    expect(fs.readdirSync(dir)).toEqual(['app.sock'])
    // A successor took the path over (as after a stale-socket replacement): closing the first must not delete it.
    fs.renameSync(path, join(dir, 'moved.sock'))
    const h2 = await hub(path)
    await h!.close()
    expect(fs.lstatSync(path).isSocket()).toBe(true)
    await h2.close()
    expect(fs.existsSync(path)).toBe(false)
  })

  it('a client re-checks the path before every attempt: a non-socket that appears there is ERR_NOT_A_SOCKET', async () => {
    const h = await hub(join(dir, 'app.sock'))
    const b = connectBus(h.path, { minReconnectDelay: 5, maxReconnectDelay: 10 })
    open.push(b)
    await b.flush({ timeout: 5000 })
    expect(b.connected).toBe(true)
    await h.close()
    fs.writeFileSync(h.path, 'x')
    expect(await firstValueFrom(b.status$.pipe(filter((s) => s.type === 'disconnected' && s.error?.code === 'ERR_NOT_A_SOCKET')))).toBeTruthy()
  })

  it('a client refuses a socket file swapped while it connects (checked by inode once connected), and says nothing to it', async () => {
    const a = await hub(join(dir, 'a.sock'))
    const b = await hub(join(dir, 'b.sock'))
    const path = join(dir, 'app.sock')
    fs.renameSync(a.path, path) // hub a answers at `path`
    const connect = net.connect
    const spy = vi.spyOn(net, 'connect').mockImplementationOnce(((...args: Parameters<typeof net.connect>) => {
      const socket = connect(...args) // a Unix socket connects inside this call; its 'connect' event comes later
      fs.renameSync(b.path, path) // meanwhile another socket takes the name
      return socket
    }) as typeof net.connect)
    open.push({ close: () => spy.mockRestore() })
    const bus = connectBus(path, { minReconnectDelay: 5, maxReconnectDelay: 10 })
    open.push(bus)
    const first = await firstValueFrom(bus.status$.pipe(filter((s) => s.type === 'disconnected' || s.type === 'connected')))
    expect(first).toMatchObject({ type: 'disconnected', error: { code: 'ERR_UNSAFE_PATH', message: expect.stringContaining('replaced while connecting') } })
    expect(spy).toHaveBeenCalledTimes(1)
    await bus.flush({ timeout: 5000 }) // the next attempt checks the new socket and uses it
    expect([a.stats.clients, b.stats.clients]).toEqual([0, 1])
  })
})
