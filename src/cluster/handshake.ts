/**
 * The cluster link handshake: one JSON line each way (`{ rxnet: 'link', v, token, id, pid }`),
 * read from a fresh socket with a deadline by the shared handshake reader (src/handshake-reader.ts,
 * also used by the mesh's); what follows the line is put back for the framer.
 * @module
 */
import type net from 'node:net'
import { AuthenticationError, HandshakeError, VersionMismatchError } from '../errors.js'
import { lineHandshake, readHandshake } from '../handshake-reader.js'

/** Version of the link protocol (2: json links carry the values of one tick in one frame). */
export const LINK_PROTOCOL_VERSION = 2
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

/**
 * Reads the handshake line from a fresh socket within `timeout` ms (the shared
 * {@link readHandshake} with a line decoder); what followed it is put back for the framer.
 */
export function readLine(socket: net.Socket, timeout = HANDSHAKE_TIMEOUT): Promise<string> {
  return readHandshake(socket, { timeout, decoder: lineHandshake(MAX_HANDSHAKE_BYTES) })
}
