/**
 * The socket side of the mesh handshake: wait for a dialled socket to connect (TCP or TLS) and
 * read one handshake message off a fresh socket, with a deadline and typed errors. The bytes
 * that followed the handshake are put back on the socket for the framed channel.
 * @module
 */
import type net from 'node:net'
import tls from 'node:tls'
import { AuthenticationError, ConnectionError, type RxnetError, TimeoutError } from '../errors.js'
import { HandshakeDecoder, type HandshakeMessage } from './handshake.js'

/** Builds the error for a socket that failed or closed before the handshake completed. */
export type LostError = (message: string, cause?: unknown) => RxnetError

/**
 * Resolves once a dialled socket is connected (after the TLS handshake for a TLSSocket); rejects
 * with `ERR_CONNECTION` (refused, reset, timed out) or, for TLS, `ERR_AUTH`.
 */
export function whenConnected(socket: net.Socket, what: string, timeoutMs: number): Promise<void> {
  const secure = socket instanceof tls.TLSSocket
  const event = secure ? 'secureConnect' : 'connect'
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => done(new ConnectionError(`connect to ${what} timed out`, new TimeoutError('connect', timeoutMs))), timeoutMs)
    const done = (e?: RxnetError): void => {
      clearTimeout(timer)
      socket.off(event, onConnect)
      socket.off('error', onError)
      socket.off('close', onClose)
      if (e === undefined) resolve()
      else reject(e)
    }
    const onConnect = (): void => done()
    const onError = (e: Error): void =>
      done(secure && !socket.connecting ? new AuthenticationError(`TLS handshake with ${what} failed: ${e.message}`, e) : new ConnectionError(`dial ${what}: ${e.message}`, e))
    const onClose = (): void => done(new ConnectionError(`${what} closed the connection`))
    socket.once(event, onConnect)
    socket.on('error', onError)
    socket.on('close', onClose)
  })
}

/**
 * Reads one handshake message from `socket` within `timeoutMs`. Malformed, oversized or truncated
 * input rejects with `ERR_HANDSHAKE`, silence with `ERR_TIMEOUT`; a socket that fails or closes first rejects with `lost(...)`.
 * On success the socket is paused and every byte after the handshake is unshifted back onto it.
 */
export function readHandshake(socket: net.Socket, timeoutMs: number, lost: LostError): Promise<HandshakeMessage> {
  return new Promise<HandshakeMessage>((resolve, reject) => {
    const decoder = new HandshakeDecoder()
    // Silence is a timeout (ERR_TIMEOUT), not a malformed handshake.
    const timer = setTimeout(() => done(new TimeoutError('handshake', timeoutMs)), timeoutMs)
    const done = (e: unknown, message?: HandshakeMessage, rest?: Buffer): void => {
      clearTimeout(timer)
      socket.off('data', onData)
      socket.off('end', onEnd)
      socket.off('error', onError)
      socket.off('close', onClose)
      socket.pause()
      if (e !== undefined) return reject(e)
      if (rest !== undefined && rest.length > 0) socket.unshift(rest)
      resolve(message!)
    }
    const onData = (chunk: Buffer): void => {
      let r
      try {
        r = decoder.push(chunk)
      } catch (e) {
        return done(e)
      }
      if (r !== null) done(undefined, r.message, r.rest)
    }
    const onEnd = (): void => {
      try {
        decoder.end()
      } catch (e) {
        done(e)
      }
    }
    const onError = (e: Error): void => done(lost(`connection failed during the handshake: ${e.message}`, e))
    const onClose = (): void => done(lost('connection closed during the handshake'))
    socket.on('data', onData)
    socket.on('end', onEnd)
    socket.on('error', onError)
    socket.on('close', onClose)
  })
}
