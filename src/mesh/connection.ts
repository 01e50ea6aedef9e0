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
import { readHandshake as readSocketHandshake } from '../handshake-reader.js'
import { deadline } from '../wait.js'

/** Builds the error for a socket that failed or closed before the handshake completed. */
export type LostError = (message: string, cause?: unknown) => RxnetError

/**
 * Resolves once a dialled socket is connected (after the TLS handshake for a TLSSocket); rejects
 * with `ERR_CONNECTION` (refused, reset, timed out) or, for TLS, `ERR_AUTH`.
 */
export function whenConnected(socket: net.Socket, what: string, timeoutMs: number): Promise<void> {
  const secure = socket instanceof tls.TLSSocket
  const event = secure ? 'secureConnect' : 'connect'
  return deadline<void>(
    ({ resolve, reject }) => {
      const onError = (e: Error): void =>
        reject(secure && !socket.connecting ? new AuthenticationError(`TLS handshake with ${what} failed: ${e.message}`, e) : new ConnectionError(`dial ${what}: ${e.message}`, e))
      const onClose = (): void => reject(new ConnectionError(`${what} closed the connection`))
      socket.once(event, resolve)
      socket.on('error', onError)
      socket.on('close', onClose)
      return () => {
        socket.off(event, resolve)
        socket.off('error', onError)
        socket.off('close', onClose)
      }
    },
    { timeout: timeoutMs, onTimeout: () => new ConnectionError(`connect to ${what} timed out`, new TimeoutError('connect', timeoutMs)) },
  )
}

/**
 * Reads one handshake message from `socket` within `timeoutMs`. Malformed, oversized or truncated
 * input rejects with `ERR_HANDSHAKE`, silence with `ERR_TIMEOUT`; a socket that fails or closes first rejects with `lost(...)`.
 * On success the socket is paused and every byte after the handshake is unshifted back onto it.
 */
export function readHandshake(socket: net.Socket, timeoutMs: number, lost: LostError): Promise<HandshakeMessage> {
  // The shared reader with the mesh's own decoder; silence is a timeout (ERR_TIMEOUT), not a malformed handshake.
  return readSocketHandshake(socket, { timeout: timeoutMs, decoder: new HandshakeDecoder(), lost, onTimeout: () => new TimeoutError('handshake', timeoutMs) })
}
