/**
 * A hand-rolled mesh peer for tests: dials `seed`, says hello with `flags` (0: what rxnet 0.1
 * sends), answers pings, records every control type it receives. Its socket is destroyed by the
 * cleanup it pushes.
 */
import net from 'node:net'
import { encodeHandshake, HandshakeDecoder } from '../../src/mesh/handshake.js'

export interface FakePeer {
  socket: net.Socket
  /** The control types received, in order (1 ping, 2 pong, 4 goodbye, 5 summary ...). */
  controls: number[]
  /** Sends one frame (length-prefixed). */
  send: (frame: Uint8Array) => void
  /** Resolves when the far side ended its stream (FIN). */
  ended: Promise<void>
}

/** A hand-rolled peer: says hello with `flags`, answers pings, records every control type it receives. */
export async function fakePeer(name: string, seed: string, flags: number, cleanups: (() => unknown)[], id = `fake-${flags}`): Promise<FakePeer> {
  const [host, port] = seed.split(':')
  const socket = net.connect({ host: host!, port: Number(port) })
  cleanups.push(() => socket.destroy())
  await new Promise((r) => socket.once('connect', r))
  socket.write(encodeHandshake({ kind: 'hello', name, id, port: 0, flags }))
  const controls: number[] = []
  const frame = (f: Uint8Array): Buffer => {
    const len: number[] = []
    for (let n = f.length; ; n >>>= 7) {
      if (n < 0x80) {
        len.push(n)
        break
      }
      len.push((n & 0x7f) | 0x80)
    }
    return Buffer.concat([Buffer.from(len), f])
  }
  const send = (f: Uint8Array): void => void socket.write(frame(f))
  const decoder = new HandshakeDecoder()
  let welcomed = false
  let buf = Buffer.alloc(0)
  let marker = false
  socket.on('data', (chunk: Buffer) => {
    if (!welcomed) {
      const r = decoder.push(chunk)
      if (r === null) return
      welcomed = true
      chunk = r.rest
    }
    buf = Buffer.concat([buf, chunk])
    for (;;) {
      let n = 0
      let shift = 0
      let o = 0
      while (o < buf.length && buf[o]! & 0x80) n |= (buf[o++]! & 0x7f) << (shift += 7) - 7
      if (o >= buf.length) return
      n |= buf[o++]! << shift
      if (buf.length < o + n) return
      const f = buf.subarray(o, o + n)
      buf = buf.subarray(o + n)
      if (marker) {
        marker = false
        controls.push(f[0]!)
        if (f[0] === 1) send(Buffer.from([0])), send(Buffer.concat([Buffer.from([2]), f.subarray(1)])) // pong
      } else if (f.length === 0) marker = true
    }
  })
  const ended = new Promise<void>((resolve) => socket.once('end', () => resolve()))
  return { socket, controls, send, ended }
}

