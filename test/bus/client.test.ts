// The bus client's promise APIs without a hub: flush / whenWritable time out, abort and close
// cleanly (timers and abort listeners released, nothing left pending).
import { afterEach, describe, expect, it } from 'vitest'
import { connectBus, startHub, type Bus } from 'rxnet'
import { tmpSocket } from './helpers.js'

const open: { close(): unknown }[] = []
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close()
})
function bus(path = tmpSocket(), options: Parameters<typeof connectBus>[1] = {}): Bus {
  const b = connectBus(path, { minReconnectDelay: 10, maxReconnectDelay: 50, closeTimeout: 50, ...options })
  open.push(b)
  return b
}

/** An AbortSignal that counts its live 'abort' listeners (a `once` listener is gone after it fires). */
function countedSignal(): { ac: AbortController; listeners: () => number } {
  const ac = new AbortController()
  const live = new Map<unknown, boolean>() // listener -> once
  const add = ac.signal.addEventListener.bind(ac.signal)
  const remove = ac.signal.removeEventListener.bind(ac.signal)
  add('abort', () => {
    for (const [fn, once] of live) if (once) live.delete(fn)
  })
  ac.signal.addEventListener = ((type: string, fn: () => void, o?: { once?: boolean }) => {
    if (type === 'abort') live.set(fn, o?.once === true)
    add(type, fn, o)
  }) as typeof ac.signal.addEventListener
  ac.signal.removeEventListener = ((type: string, fn: () => void, o?: object) => {
    if (type === 'abort') live.delete(fn)
    remove(type, fn, o)
  }) as typeof ac.signal.removeEventListener
  return { ac, listeners: () => live.size }
}

describe('bus client promises', () => {
  it('flush: ERR_TIMEOUT with no hub, ERR_ABORTED on abort, resolves once a hub is up; abort listeners are removed every time', async () => {
    const path = tmpSocket()
    const b = bus(path)
    const t = countedSignal()
    await expect(b.flush({ timeout: 30, signal: t.ac.signal })).rejects.toMatchObject({ code: 'ERR_TIMEOUT' })
    expect(t.listeners()).toBe(0)
    const a = countedSignal()
    const aborted = b.flush({ signal: a.ac.signal })
    a.ac.abort()
    await expect(aborted).rejects.toMatchObject({ code: 'ERR_ABORTED' })
    expect(a.listeners()).toBe(0)
    await expect(b.flush({ signal: a.ac.signal })).rejects.toMatchObject({ code: 'ERR_ABORTED' }) // aborted on entry
    const ok = countedSignal()
    const pending = b.flush({ signal: ok.ac.signal, timeout: 5000 })
    const hub = await startHub({ path })
    open.splice(open.indexOf(b), 0, hub) // closed after the client
    await pending // the PING waited for the connection
    expect(ok.listeners()).toBe(0)
  })

  it('whenWritable: waits while the outbox is over half full, rejects ERR_ABORTED / ERR_CLOSED, removes its abort listener', async () => {
    const b = bus(tmpSocket(), { highWaterMark: 200, overflow: 'drop-newest' })
    for (let i = 0; i < 10; i++) b.emit('t', { i, pad: 'x'.repeat(20) }) // no hub: all stay in the outbox
    expect(b.writable).toBe(false)
    const s = countedSignal()
    const w1 = b.whenWritable({ signal: s.ac.signal })
    expect(s.listeners()).toBe(1)
    s.ac.abort()
    await expect(w1).rejects.toMatchObject({ code: 'ERR_ABORTED' })
    expect(s.listeners()).toBe(0)
    const w2 = b.whenWritable()
    const f = b.flush()
    // Both handlers are attached before close() rejects them (awaiting close() first could leave
    // them rejected and unhandled across a macrotask: an unhandled-rejection failure in vitest).
    // close() gives up on the messages no hub ever took, says how many and why.
    const held = b.stats.buffered
    expect(held).toBeGreaterThan(0)
    await Promise.all([expect(w2).rejects.toMatchObject({ code: 'ERR_CLOSED' }), expect(f).rejects.toMatchObject({ code: 'ERR_CLOSED' }), expect(b.close()).rejects.toMatchObject({ code: 'ERR_UNDELIVERED', count: held, cause: { code: 'ERR_NO_HUB' } })])
    expect(b.stats.undelivered).toBe(held)
    await expect(b.whenWritable()).rejects.toMatchObject({ code: 'ERR_CLOSED' })
  })
})
