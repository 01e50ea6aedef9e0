// A mesh node and a peer that knows no goodbye exchange (rxnet 0.1: its handshake carries no
// CAPABILITIES.goodbye): closing toward it just ends the stream (no goodbye sent, nothing waited
// for), and its stream ending is a clean leave, not a failure.
import { afterEach, describe, expect, it } from 'vitest'
import { firstValueFrom } from 'rxjs'
import { createMesh, type Mesh, type Peer } from 'rxnet'
import { CAPABILITIES } from '../../src/mesh/handshake.js'
import { fakePeer } from './fake-peer.js'

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

/** A real node on loopback, no discovery (the fake peer dials it). */
async function node(name: string): Promise<{ mesh: Mesh; seed: string }> {
  const mesh = createMesh({ name, id: 'real', interface: '127.0.0.1', discovery: false, heartbeatInterval: 50 })
  cleanups.push(() => mesh.close())
  const { port } = await mesh.listen(0, '127.0.0.1')
  return { mesh, seed: `127.0.0.1:${port}` }
}

describe('a peer without the goodbye capability (rxnet 0.1)', () => {
  it('the node advertises CAPABILITIES.goodbye in its handshake', () => {
    expect(CAPABILITIES.goodbye).toBe(2)
  })

  it('closing the node ends the stream toward it at once: no goodbye sent, the peer left cleanly', async () => {
    const { mesh, seed } = await node('compat-close')
    const joined = firstValueFrom(mesh.peers$)
    const old = await fakePeer('compat-close', seed, CAPABILITIES.summaries, cleanups, 'old')
    const peer: Peer = await joined
    const left = peer.closed
    await mesh.close()
    await old.ended
    expect(await left).toBeUndefined()
    expect(old.controls).not.toContain(4)
  }, 20_000)

  it('its stream ending is a clean close: source completes, the peer leaves with no error', async () => {
    const { mesh, seed } = await node('compat-end')
    const joined = firstValueFrom(mesh.peers$)
    const old = await fakePeer('compat-end', seed, 0, cleanups, 'old')
    const peer = await joined
    const ended = new Promise<string>((resolve) => peer.source.subscribe({ complete: () => resolve('complete'), error: (e: { code?: string }) => resolve(`error ${e.code}`) }))
    old.socket.end()
    expect(await ended).toBe('complete')
    expect(await peer.closed).toBeUndefined()
  }, 20_000)
})
