import net from 'node:net'
import fc from 'fast-check'
import { afterEach, describe, expect, it } from 'vitest'
import { createMesh, RxnetError, type Mesh, type MeshEvent } from 'rxnet'
import { encodeHandshake, HandshakeDecoder, MAGIC, MAX_HANDSHAKE_BODY } from '../../src/mesh/handshake.js'

const meshes: Mesh<any, any>[] = []
const sockets: net.Socket[] = []
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy()
  await Promise.all(meshes.splice(0).map((m) => m.close()))
})

async function start(extra: Record<string, unknown> = {}): Promise<{ mesh: Mesh; port: number; events: MeshEvent[] }> {
  const mesh = createMesh({ name: 'bad', id: 'server', interface: '127.0.0.1', discovery: false, handshakeTimeout: 300, ...extra })
  meshes.push(mesh)
  const events: MeshEvent[] = []
  mesh.events$.subscribe((e) => events.push(e))
  const { port } = await mesh.listen(0, '127.0.0.1')
  return { mesh, port, events }
}

/** Connects, writes `bytes` (optionally ends), resolves with everything received once the server closes. */
function poke(port: number, bytes: Uint8Array, end = false): Promise<Buffer> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.write(bytes)
      if (end) s.end()
    })
    sockets.push(s)
    const got: Buffer[] = []
    s.on('data', (d) => got.push(d))
    s.on('error', () => {})
    s.on('close', () => resolve(Buffer.concat(got)))
  })
}

const hello = (over: Partial<Parameters<typeof encodeHandshake>[0]> = {}): Buffer => encodeHandshake({ kind: 'hello', name: 'bad', id: 'client', port: 0, ...over })

function answer(bytes: Buffer) {
  return new HandshakeDecoder().push(bytes)?.message
}

describe('mesh handshake against bad input', () => {
  it('refuses garbage, truncated, oversized and silent connections with typed, counted errors', async () => {
    const { mesh, port, events } = await start()
    await poke(port, Buffer.from('GET / HTTP/1.1\r\n\r\n'))
    await poke(port, hello().subarray(0, 11), true)
    const oversized = Buffer.alloc(8)
    MAGIC.copy(oversized)
    oversized[4] = 1
    oversized[5] = 1
    oversized.writeUInt16BE(MAX_HANDSHAKE_BODY + 1, 6)
    await poke(port, oversized) // refused on the declared length, before any body is sent
    await poke(port, new Uint8Array(0)) // says nothing: handshake timeout
    expect(mesh.stats.refusedByCode.ERR_HANDSHAKE).toBe(3)
    expect(mesh.stats.refusedByCode.ERR_TIMEOUT).toBe(1)
    expect(mesh.stats.refused).toBe(4)
    const refused = events.filter((e) => e.type === 'refused')
    expect(refused).toHaveLength(4)
    for (const e of refused) expect(e.type === 'refused' && e.error).toBeInstanceOf(RxnetError)
    expect(mesh.members.size).toBe(0)
  })

  it('answers a wrong mesh name, a wrong version and a duplicate id with a refusal the dialer can read', async () => {
    const { mesh, port } = await start()
    expect(answer(await poke(port, hello({ name: 'other' })))).toMatchObject({ kind: 'refuse', reason: 'name', name: 'bad' })
    expect(answer(await poke(port, hello({ version: 99 })))).toMatchObject({ kind: 'refuse', reason: 'version', version: 1 })
    expect(answer(await poke(port, hello({ id: 'server' })))).toMatchObject({ kind: 'refuse', reason: 'duplicate' })
    expect(mesh.stats.refusedByCode).toMatchObject({ ERR_NAME_MISMATCH: 1, ERR_VERSION_MISMATCH: 1, ERR_DUPLICATE_ID: 1 })
  })

  it('a node of another mesh is refused on both sides with ERR_NAME_MISMATCH', async () => {
    const { mesh, port } = await start()
    const other = createMesh({ name: 'other', id: 'o', interface: '127.0.0.1', discovery: false, seeds: [`127.0.0.1:${port}`] })
    meshes.push(other)
    const failed = new Promise<MeshEvent>((resolve) => other.events$.subscribe((e) => e.type === 'dial-failed' && resolve(e)))
    await other.listen(0, '127.0.0.1')
    const e = await failed
    expect(e.type === 'dial-failed' && e.error.code).toBe('ERR_NAME_MISMATCH')
    expect(mesh.stats.refusedByCode.ERR_NAME_MISMATCH).toBeGreaterThanOrEqual(1)
    expect(mesh.members.size).toBe(0)
  })

  it('random frames after a valid handshake end that link with a typed error, never the process', async () => {
    const { mesh, port, events } = await start()
    let n = 0
    await fc.assert(
      fc.asyncProperty(fc.array(fc.uint8Array({ minLength: 1, maxLength: 64 }), { minLength: 1, maxLength: 8 }), async (chunks) => {
        const id = `fuzz-${n++}`
        const s = net.connect(port, '127.0.0.1')
        sockets.push(s)
        s.on('error', () => {})
        const welcomed = new Promise<void>((resolve) => s.once('data', () => resolve()))
        s.write(hello({ id }))
        await welcomed
        const left = new Promise<void>((resolve) => {
          const sub = mesh.events$.subscribe((e) => {
            if (e.type === 'leave' && e.peer.id === id) {
              sub.unsubscribe()
              resolve()
            }
          })
        })
        for (const c of chunks) s.write(c)
        s.destroy() // ends the link whatever the bytes did
        await left
      }),
      { numRuns: 40 },
    )
    for (const e of events) if (e.type === 'leave' && e.reason.type === 'failed') expect(e.reason.error).toBeInstanceOf(RxnetError)
    expect(mesh.members.size).toBe(0)
    // Still serving: a proper node joins.
    const good = createMesh({ name: 'bad', id: 'good', interface: '127.0.0.1', discovery: false, seeds: [`127.0.0.1:${port}`] })
    meshes.push(good)
    const joined = new Promise((resolve) => good.peers$.subscribe(resolve))
    await good.listen(0, '127.0.0.1')
    await joined
  })
})
