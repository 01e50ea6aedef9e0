/**
 * The sending process of the mesh bench (forked by mesh.bench.ts: compiled, or under tsx with `npm run bench:tsx`). IPC commands:
 * - `tcp`: hand-written batched framed sender on a plain socket (the baseline), until `maxCount`
 *   messages or `durationMs`; answers `{ sent }`.
 * - `tls`: the same sender over raw `node:tls` with the mesh's `secret` settings (PSK_TLS, the
 *   PSK `psk` given in hex, identity PSK_IDENTITY): the TLS baseline; answers `{ sent }`.
 * - `mesh`: a mesh node (seeded to the bench's node, optional `secret`) sending with
 *   `peer.send` / `whenWritable`; answers `{ sent }`.
 * - `fanout`: a mesh node joined to `ports.length` receivers broadcasting `count` messages; answers
 *   the sender's CPU time per broadcast in µs.
 * - `rawwrite`: one `socket.write(frame)` per message on a plain socket; answers CPU µs per write.
 * - `zmq`: a zeromq PUSH socket connected to `endpoint`, `await send` per message; answers `{ sent }`.
 * - `many`: `count` idle mesh nodes seeded to `port` (kept until the process ends); answers once all joined.
 */
import tls from 'node:tls'
import { createMesh, type Mesh } from '../../src/index.js'
import { PSK_IDENTITY, PSK_TLS } from '../../src/mesh/options.js'
import { baseline, connect, drained, ended } from './framing.peer.js'
import { varintLength, writeVarint } from '../../src/framing/varint.js'

export interface PeerCommand {
  cmd: 'tcp' | 'tls' | 'mesh' | 'fanout' | 'rawwrite' | 'many' | 'zmq'
  endpoint?: string
  size: number
  port?: number
  ports?: number[]
  durationMs?: number
  maxCount?: number
  count?: number
  secret?: string
  /** `tls`: the PSK, hex (derived from the secret as the mesh does). */
  psk?: string
  /** Mesh name. @default 'bench' */
  name?: string
}

const cpuMicros = (): number => {
  const u = process.cpuUsage()
  return u.user + u.system
}

/** The baseline: the framing bench's hand-written batched framed sender on a plain socket. */
function tcp(c: PeerCommand): Promise<number> {
  return baseline({ impl: 'baseline', size: c.size, port: c.port!, durationMs: c.durationMs!, maxCount: c.maxCount! })
}

/** The TLS baseline: the same sender on a `tls.connect` socket with the mesh's secret-mode client options (src/mesh/sockets.ts `connect`). */
async function tlsSend(c: PeerCommand): Promise<number> {
  const psk = Buffer.from(c.psk!, 'hex')
  const s = await new Promise<tls.TLSSocket>((resolve, reject) => {
    const t = tls.connect({ host: '127.0.0.1', port: c.port!, ...PSK_TLS, checkServerIdentity: () => undefined, pskCallback: () => ({ psk, identity: PSK_IDENTITY }) })
    t.once('secureConnect', () => resolve(t))
    t.once('error', reject)
  })
  return baseline({ impl: 'baseline', size: c.size, port: c.port!, durationMs: c.durationMs!, maxCount: c.maxCount! }, s)
}

let seq = 0
async function joined(c: PeerCommand, ports: number[]): Promise<Mesh> {
  const mesh = createMesh({ name: c.name ?? 'bench', id: `sender-${process.pid}-${seq++}`, discovery: false, interface: '127.0.0.1', secret: c.secret, seeds: ports.map((p) => `127.0.0.1:${p}`) })
  const all = new Promise<void>((resolve) => {
    const sub = mesh.members$.subscribe((m) => {
      if (m.size === ports.length) {
        queueMicrotask(() => sub.unsubscribe())
        resolve()
      }
    })
  })
  await mesh.listen(0, '127.0.0.1')
  await all
  return mesh
}

async function meshSend(c: PeerCommand): Promise<number> {
  const mesh = await joined(c, [c.port!])
  const peer = [...mesh.members.values()][0]!
  const payload = Buffer.alloc(c.size, 0x61)
  const deadline = Date.now() + c.durationMs!
  let sent = 0
  while (sent < c.maxCount! && Date.now() < deadline) {
    while (peer.writable && sent < c.maxCount!) {
      peer.send(payload)
      if (++sent % 4096 === 0 && Date.now() >= deadline) break
    }
    await peer.whenWritable()
  }
  await mesh.close()
  return sent
}

async function fanout(c: PeerCommand): Promise<number> {
  const mesh = await joined(c, c.ports!)
  const peers = [...mesh.members.values()]
  const payload = Buffer.alloc(c.size, 0x61)
  const t0 = cpuMicros()
  for (let i = 0; i < c.count!; ) {
    if (!peers.every((p) => p.writable)) {
      await Promise.all(peers.map((p) => p.whenWritable()))
      continue
    }
    mesh.broadcast(payload)
    i++
    if (i % 256 === 0) await new Promise((r) => setImmediate(r)) // let the batches flush
  }
  await Promise.all(peers.map((p) => p.whenWritable()))
  const cpu = cpuMicros() - t0
  await mesh.close()
  return cpu / c.count!
}

async function rawwrite(c: PeerCommand): Promise<number> {
  const s = await connect(c.port!)
  const frame = Buffer.allocUnsafe(varintLength(c.size) + c.size)
  writeVarint(frame, 0, c.size)
  const t0 = cpuMicros()
  for (let i = 0; i < c.count!; i++) {
    if (!s.write(frame)) await drained(s)
    else if (i % 256 === 0) await new Promise((r) => setImmediate(r))
  }
  const cpu = cpuMicros() - t0
  await ended(s)
  return cpu / c.count!
}

async function zmq(c: PeerCommand): Promise<number> {
  const { Push } = await import('zeromq')
  const sock = new Push({ linger: 2000 })
  sock.connect(c.endpoint!)
  const payload = Buffer.alloc(c.size, 0x61)
  const deadline = Date.now() + c.durationMs!
  let sent = 0
  while (sent < c.maxCount! && Date.now() < deadline) {
    for (let i = 0; i < 256; i++) await sock.send(payload)
    sent += 256
  }
  sock.close()
  return sent
}

const idle: Mesh[] = []
async function many(c: PeerCommand): Promise<number> {
  const nodes = await Promise.all(Array.from({ length: c.count! }, () => joined(c, [c.port!])))
  idle.push(...nodes)
  return nodes.length
}

const handlers = { tcp, tls: tlsSend, mesh: meshSend, fanout, rawwrite, many, zmq }
process.on('message', (c: PeerCommand) => {
  handlers[c.cmd](c).then(
    (value) => process.send!({ value }),
    (e: Error) => process.send!({ error: `${(e as { code?: string }).code ?? ''} ${e.message}` }),
  )
})
process.send!('ready')
