/**
 * The cluster link handshake: one JSON line each way (`{ rxnet: 'link', v, token, id, pid }`),
 * read from a fresh socket with a deadline; what follows the line is put back for the framer.
 * @module
 */
import type net from 'node:net'
import { AuthenticationError, HandshakeError, type RxnetError, VersionMismatchError } from '../errors.js'

/** Version of the link handshake. */
export const LINK_PROTOCOL_VERSION = 1
/** Longest handshake line accepted, in bytes. */
export const MAX_HANDSHAKE_BYTES = 1024
/** How long a handshake may take, in ms. */
export const HANDSHAKE_TIMEOUT = 5_000

/** The handshake line each side sends. */
export interface Hello {
  rxnet: 'link'
  v: number
  token: string
  id: number
  pid: number
}

/** The handshake line of this process, as sent. */
export function helloLine(token: string, id: number): string {
  return JSON.stringify({ rxnet: 'link', v: LINK_PROTOCOL_VERSION, token, id, pid: process.pid } satisfies Hello) + '\n'
}

/** Parses and checks a handshake line: shape, version, token (ERR_HANDSHAKE, ERR_VERSION_MISMATCH, ERR_AUTH). */
export function parseHello(line: string, token: string): Hello {
  let hello: Hello
  try {
    hello = JSON.parse(line) as Hello
  } catch (e) {
    throw new HandshakeError('link handshake is not JSON', e)
  }
  if (hello === null || typeof hello !== 'object' || hello.rxnet !== 'link') throw new HandshakeError('not an rxnet link handshake')
  if (hello.v !== LINK_PROTOCOL_VERSION) throw new VersionMismatchError(LINK_PROTOCOL_VERSION, Number(hello.v))
  if (hello.token !== token) throw new AuthenticationError('link handshake carries a wrong cluster token')
  if (!Number.isSafeInteger(hello.id) || hello.id < 0 || !Number.isSafeInteger(hello.pid)) throw new HandshakeError('link handshake has a bad id or pid')
  return hello
}

/** Reads one '\n'-terminated line from a fresh socket within `timeout` ms; puts back whatever followed it. */
export function readLine(socket: net.Socket, timeout = HANDSHAKE_TIMEOUT): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0)
    const cleanup = (): void => {
      clearTimeout(timer)
      socket.off('data', onData)
      socket.off('end', onEnd)
      socket.off('close', onEnd)
      socket.off('error', onError)
    }
    const fail = (e: RxnetError): void => {
      cleanup()
      reject(e)
    }
    const onData = (chunk: Buffer): void => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk])
      const nl = buf.indexOf(0x0a)
      if (nl < 0) {
        if (buf.length > MAX_HANDSHAKE_BYTES) fail(new HandshakeError(`link handshake longer than ${MAX_HANDSHAKE_BYTES} bytes`))
        return
      }
      if (nl > MAX_HANDSHAKE_BYTES) return fail(new HandshakeError(`link handshake longer than ${MAX_HANDSHAKE_BYTES} bytes`))
      cleanup()
      socket.pause()
      if (nl + 1 < buf.length) socket.unshift(buf.subarray(nl + 1))
      resolve(buf.subarray(0, nl).toString('utf8'))
    }
    const onEnd = (): void => fail(new HandshakeError('link closed during the handshake'))
    const onError = (e: Error): void => fail(new HandshakeError(`link failed during the handshake: ${e.message}`, e))
    const timer = setTimeout(() => fail(new HandshakeError(`link handshake not completed within ${timeout} ms`)), timeout)
    socket.on('data', onData)
    socket.on('end', onEnd)
    socket.on('close', onEnd)
    socket.on('error', onError)
  })
}
