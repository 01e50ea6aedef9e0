import { hkdfSync } from 'node:crypto'
import { once } from 'node:events'
import tls from 'node:tls'
import { afterEach, describe, expect, it } from 'vitest'
import { firstValueFrom } from 'rxjs'
import { createMesh, type Mesh, type MeshEvent } from 'rxnet'

const meshes: Mesh<any, any>[] = []
afterEach(async () => {
  await Promise.all(meshes.splice(0).map((m) => m.close()))
})

function node(id: string, secret: string | undefined, seeds: string[] = []): Mesh {
  const m = createMesh({ name: 'psk', id, secret, interface: '127.0.0.1', discovery: false, seeds, handshakeTimeout: 500 })
  meshes.push(m)
  return m
}

function firstDialFailure(m: Mesh): Promise<MeshEvent> {
  return new Promise((resolve) => m.events$.subscribe((e) => e.type === 'dial-failed' && resolve(e)))
}

describe('mesh with a pre-shared key (TLS 1.2 ECDHE-PSK)', () => {
  it('peers with the same secret connect and exchange messages', async () => {
    const a = node('a', 'sesame')
    const { port } = await a.listen(0, '127.0.0.1')
    const b = node('b', 'sesame', [`127.0.0.1:${port}`])
    const peerOfA = firstValueFrom(a.peers$)
    const peerOfB = firstValueFrom(b.peers$)
    await b.listen(0, '127.0.0.1')
    const p = await peerOfA
    const msg = firstValueFrom(p.source)
    await peerOfB
    expect(b.broadcast('over tls')).toBe(1)
    expect(Buffer.from(await msg).toString()).toBe('over tls')
  })

  it.each([
    ['a wrong secret', 'wrong'],
    ['no secret', undefined],
  ])('%s is refused on both sides, counted, and nothing reaches source', async (_label, secret) => {
    const a = node('a', 'sesame')
    const joins: unknown[] = []
    a.peers$.subscribe((p) => joins.push(p))
    const { port } = await a.listen(0, '127.0.0.1')
    const b = node('b', secret, [`127.0.0.1:${port}`])
    const failed = firstDialFailure(b)
    await b.listen(0, '127.0.0.1')
    const e = await failed
    expect(e.type === 'dial-failed' && ['ERR_AUTH', 'ERR_CONNECTION', 'ERR_HANDSHAKE']).toContain(e.type === 'dial-failed' && e.error.code)
    await new Promise<void>((resolve) => {
      const check = (): void => (a.stats.refused > 0 ? resolve() : void setTimeout(check, 20))
      check()
    })
    expect(a.stats.refusedByCode.ERR_AUTH).toBeGreaterThanOrEqual(1)
    expect(joins).toHaveLength(0)
    expect(b.members.size).toBe(0)
  })

  // The right key is not enough: a client that offers only non-forward-secret PSK suites (plain
  // PSK key exchange) or only TLS 1.3 gets no session, and the refusal is counted.
  it.each([
    ['plain PSK suites only', { ciphers: 'PSK-AES128-GCM-SHA256:PSK-AES256-GCM-SHA384:PSK-CHACHA20-POLY1305', maxVersion: 'TLSv1.2' as const }],
    ['TLS 1.3 only', { minVersion: 'TLSv1.3' as const }],
  ])('a client with the right key but %s is refused and counted as ERR_AUTH', async (_label, offer) => {
    const a = node('a', 'sesame')
    const { port } = await a.listen(0, '127.0.0.1')
    const psk = Buffer.from(hkdfSync('sha256', 'sesame', 'rxnet-mesh-psk', 'psk', 32))
    const socket = tls.connect({ host: '127.0.0.1', port, ...offer, checkServerIdentity: () => undefined, pskCallback: () => ({ psk, identity: 'rxnet-mesh' }) })
    const [err] = (await Promise.race([once(socket, 'error'), once(socket, 'secureConnect').then(() => [undefined])])) as [Error | undefined]
    socket.destroy()
    expect(err).toBeInstanceOf(Error)
    await new Promise<void>((resolve) => {
      const check = (): void => (a.stats.refused > 0 ? resolve() : void setTimeout(check, 20))
      check()
    })
    expect(a.stats.refusedByCode.ERR_AUTH).toBe(1)
    expect(a.members.size).toBe(0)
  })

  it('a secret node dialling a plaintext node is refused as a bad handshake', async () => {
    const a = node('a', undefined)
    const { port } = await a.listen(0, '127.0.0.1')
    const b = node('b', 'sesame', [`127.0.0.1:${port}`])
    const failed = firstDialFailure(b)
    await b.listen(0, '127.0.0.1')
    await failed
    await new Promise<void>((resolve) => {
      const check = (): void => (a.stats.refused > 0 ? resolve() : void setTimeout(check, 20))
      check()
    })
    expect(a.stats.refusedByCode.ERR_HANDSHAKE).toBeGreaterThanOrEqual(1)
    expect(a.members.size).toBe(0)
  })
})
