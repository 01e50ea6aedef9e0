import { constants, hkdfSync } from 'node:crypto'
import net from 'node:net'
import { once } from 'node:events'
import tls from 'node:tls'
import { afterEach, describe, expect, it } from 'vitest'
import { firstValueFrom } from 'rxjs'
import { createMesh, type Mesh, type MeshEvent } from 'rxnet'
import { meshPsk, PSK_TLS } from '../../src/mesh/options.js'

const meshes: Mesh<any, any>[] = []
afterEach(async () => {
  await Promise.all(meshes.splice(0).map((m) => m.close()))
})

function node(id: string, secret: string | undefined, seeds: string[] = []): Mesh {
  const m = createMesh({ name: 'psk', id, secret, interface: '127.0.0.1', discovery: false, seeds, handshakeTimeout: 500 })
  meshes.push(m)
  return m
}

/** A TCP proxy to `port` on loopback that keeps every byte the server sent. */
async function recordingProxy(port: number): Promise<{ port: number; serverBytes: () => Buffer; close: () => Promise<void> }> {
  const chunks: Buffer[] = []
  const sockets = new Set<net.Socket>()
  const server = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1')
    for (const s of [client, upstream]) {
      sockets.add(s)
      s.on('error', () => {})
      s.on('close', () => sockets.delete(s))
    }
    upstream.on('data', (d: Buffer) => chunks.push(d))
    client.pipe(upstream).pipe(client)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    port: (server.address() as net.AddressInfo).port,
    serverBytes: () => Buffer.concat(chunks),
    close: () => {
      for (const s of sockets) s.destroy()
      return new Promise((r) => server.close(() => r()))
    },
  }
}

/** The extension types of the ServerHello at the start of `bytes` (a TLS handshake record). */
function serverHelloExtensions(bytes: Buffer): number[] {
  expect(bytes[0]).toBe(0x16) // handshake record
  const hs = bytes.subarray(5)
  expect(hs[0]).toBe(0x02) // ServerHello
  let o = 4 + 2 + 32 // handshake header, legacy_version, random
  o += 1 + hs[o]! // legacy_session_id
  o += 2 + 1 // cipher_suite, legacy_compression_method
  const end = o + 2 + hs.readUInt16BE(o)
  const types: number[] = []
  for (o += 2; o < end; o += 4 + hs.readUInt16BE(o + 2)) types.push(hs.readUInt16BE(o))
  return types
}

function firstDialFailure(m: Mesh): Promise<MeshEvent> {
  return new Promise((resolve) => m.events$.subscribe((e) => e.type === 'dial-failed' && resolve(e)))
}

describe('mesh with a pre-shared key (TLS 1.3 PSK with ECDHE, TLS 1.2 ECDHE-PSK)', () => {
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
  // PSK key exchange) gets no session, and the refusal is counted.
  it.each([['plain PSK suites only', { ciphers: 'PSK-AES128-GCM-SHA256:PSK-AES256-GCM-SHA384:PSK-CHACHA20-POLY1305', maxVersion: 'TLSv1.2' as const }]])(
    'a client with the right key but %s is refused and counted as ERR_AUTH',
    async (_label, offer) => {
    const a = node('a', 'sesame')
    const { port } = await a.listen(0, '127.0.0.1')
    const psk = meshPsk('sesame', 'psk')
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
    },
  )

  // Forward secrecy under TLS 1.3: the server's hello carries a key_share (an X25519 exchange)
  // next to pre_shared_key, i.e. psk_dhe_ke, even for a client that would accept psk_ke (no
  // ephemeral exchange). Read off the wire through a recording proxy, not from the client's view.
  it.each([
    ['a default client', 0],
    ['a client that allows psk_ke', constants.SSL_OP_ALLOW_NO_DHE_KEX],
  ])('TLS 1.3 with %s: AES-128-GCM, the PSK and an ECDHE key share in the ServerHello', async (_label, secureOptions) => {
    const a = node('a', 'sesame')
    const { port } = await a.listen(0, '127.0.0.1')
    const { port: proxyPort, serverBytes, close } = await recordingProxy(port)
    try {
      const psk = meshPsk('sesame', 'psk')
      const socket = tls.connect({ host: '127.0.0.1', port: proxyPort, ...PSK_TLS, secureOptions, checkServerIdentity: () => undefined, pskCallback: () => ({ psk, identity: 'rxnet-mesh' }) })
      await once(socket, 'secureConnect')
      expect(socket.getProtocol()).toBe('TLSv1.3')
      expect(socket.getCipher().name).toBe('TLS_AES_128_GCM_SHA256')
      socket.destroy()
      const ext = serverHelloExtensions(serverBytes())
      expect(ext).toContain(0x0029) // pre_shared_key: the session is keyed from the secret
      expect(ext).toContain(0x0033) // key_share: and from an ephemeral exchange
    } finally {
      await close()
    }
  })

  it('the pre-shared key is the documented HKDF-SHA256(secret, salt "rxnet-mesh-psk", info mesh name), 32 bytes (what the raw TLS clients here use)', () => {
    expect(meshPsk('sesame', 'psk')).toEqual(Buffer.from(hkdfSync('sha256', 'sesame', 'rxnet-mesh-psk', 'psk', 32)))
  })

  it('a TLS 1.2-only client (rxnet 0.1) with the right key still gets an ECDHE-PSK session', async () => {
    const a = node('a', 'sesame')
    const { port } = await a.listen(0, '127.0.0.1')
    const psk = meshPsk('sesame', 'psk')
    const v01 = { ciphers: 'ECDHE-PSK-CHACHA20-POLY1305:ECDHE-PSK-AES256-CBC-SHA384:ECDHE-PSK-AES128-CBC-SHA256', minVersion: 'TLSv1.2' as const, maxVersion: 'TLSv1.2' as const }
    const socket = tls.connect({ host: '127.0.0.1', port, ...v01, checkServerIdentity: () => undefined, pskCallback: () => ({ psk, identity: 'rxnet-mesh' }) })
    await once(socket, 'secureConnect')
    expect(socket.getProtocol()).toBe('TLSv1.2')
    expect(socket.getCipher().name).toBe('ECDHE-PSK-CHACHA20-POLY1305')
    expect(socket.getEphemeralKeyInfo()).toMatchObject({ type: 'ECDH' })
    socket.destroy()
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
