/**
 * The mesh's sockets before they are links: the listening server and outbound sockets (plain,
 * TLS-PSK from `secret`, or TLS certificates), what is refused before the mesh handshake (a
 * foreign address on a loopback mesh, more than `maxPendingHandshakes`, a failed TLS handshake),
 * how a refusal is answered and counted, and the sets of sockets shutdown has to destroy. The
 * handshake itself and what follows it is the state machine's (`./mesh.ts`).
 * @module
 */
import net from 'node:net'
import os from 'node:os'
import tls from 'node:tls'
import { AuthenticationError, ForeignAddressError, LimitError, type RxnetError, TimeoutError } from '../errors.js'
import { isLoopback, isWildcard } from './discovery.js'
import type { HandshakeKind, RefuseReason } from './handshake.js'
import { type MeshAddress, type MeshEvent, type MeshStats, meshPsk, PSK_IDENTITY, PSK_TLS, type Resolved } from './options.js'

/** What the sockets need from the mesh. */
export interface SocketsHost {
  /** True once the mesh is closing: new sockets are destroyed. */
  readonly closing: boolean
  /** An accepted socket (past TLS, if any) that may start the mesh handshake. */
  accepted(socket: net.Socket): void
  /** Our handshake message of `kind` (here: a refusal's answer). */
  answer(kind: HandshakeKind, reason: RefuseReason): Buffer
  /** A `refused` event. */
  event(e: Extract<MeshEvent, { type: 'refused' }>): void
  /** An error worth a human's attention (`errors$`). */
  error(e: RxnetError): void
}

/** The server, the outbound sockets and every socket of the mesh that is not a link yet. */
export class MeshSockets {
  private readonly psk: Buffer | undefined
  /** Every accepted TCP socket still open (TLS ones included, before their handshake). */
  private readonly inbound = new Set<net.Socket>()
  /** Accepted TCP sockets whose handshake (TLS and mesh) has not finished: at most `maxPendingHandshakes`. */
  private readonly pendingIn = new Set<net.Socket>()
  /** Raw sockets refused before TLS: their TLS wrapper's error is not counted twice. */
  private readonly refusedRaw = new WeakSet<net.Socket>()
  /** Sockets in the mesh handshake, either way. */
  private readonly handshaking = new Set<net.Socket>()

  constructor(
    private readonly o: Resolved,
    private readonly stats: MeshStats,
    private readonly host: SocketsHost,
  ) {
    this.psk = o.secret === undefined ? undefined : meshPsk(o.secret, o.name)
  }

  /** The listening server (not listening yet), with the mesh's security. */
  createServer(): net.Server {
    const timeout = this.o.handshakeTimeout
    if (this.psk !== undefined || this.o.tls !== undefined) {
      const psk = this.psk
      const s =
        psk !== undefined
          ? tls.createServer({ ...PSK_TLS, handshakeTimeout: timeout, pskCallback: (_s, identity) => (identity === PSK_IDENTITY ? psk : null) })
          : tls.createServer({ ...this.o.tls, requestCert: true, rejectUnauthorized: true, handshakeTimeout: timeout })
      s.on('secureConnection', this.onConnection)
      s.on('tlsClientError', this.onTlsClientError)
      s.prependListener('connection', this.onRawConnection) // before TLS starts on it
      return s
    }
    const s = net.createServer()
    s.on('connection', this.onRawConnection)
    s.on('connection', this.onConnection)
    return s
  }

  /** Removes what {@link createServer} put on `server`. */
  detach(server: net.Server): void {
    server.off('connection', this.onRawConnection)
    server.off('connection', this.onConnection)
    server.off('secureConnection', this.onConnection)
    server.off('tlsClientError', this.onTlsClientError)
  }

  /** An outbound socket to `host:port`, with the mesh's security; in its handshake until {@link admitted} or {@link drop}. */
  connect(host: string, port: number): net.Socket {
    let socket: net.Socket
    if (this.psk !== undefined) {
      const psk = this.psk
      socket = tls.connect({ host, port, ...PSK_TLS, checkServerIdentity: () => undefined, pskCallback: () => ({ psk, identity: PSK_IDENTITY }) })
    } else if (this.o.tls !== undefined) {
      socket = tls.connect({ ...this.o.tls, host, port, rejectUnauthorized: true, checkServerIdentity: () => undefined })
    } else {
      socket = net.connect({ host, port })
    }
    this.handshaking.add(socket)
    return socket
  }

  /**
   * The handshake on `socket` succeeded: it is a link or an observer's connection now, and no
   * longer holds a handshake slot (observers have their own cap, MAX_OBSERVERS: however many
   * watch, peers still get in).
   */
  admitted(socket: net.Socket): void {
    this.handshaking.delete(socket)
    this.pendingIn.delete(rawOf(socket))
  }

  /** Destroys a socket whose handshake failed or lost the tie-break (nothing counted). */
  drop(socket: net.Socket): void {
    socket.destroy()
    this.handshaking.delete(socket)
  }

  /** A socket held during the tie-break was closed meanwhile. */
  forget(socket: net.Socket): void {
    this.handshaking.delete(socket)
  }

  /** Refuses a connection: counted, reported (on `errors$` too unless `routine`), answered with `reason` when given. */
  refuse(socket: net.Socket, error: RxnetError, reason: RefuseReason | undefined, routine = false): void {
    this.stats.refused++
    this.stats.refusedByCode[error.code] = (this.stats.refusedByCode[error.code] ?? 0) + 1
    this.host.event({ type: 'refused', error, remote: `${normalize(socket.remoteAddress)}:${socket.remotePort ?? 0}` })
    if (!routine) this.host.error(error)
    if (reason !== undefined && socket.writable) this.answer(socket, reason)
    else this.drop(socket)
    this.pendingIn.delete(rawOf(socket))
  }

  /** Ends `socket` with a refusal `reason`, gives it a moment to flush, then makes sure it is gone. */
  answer(socket: net.Socket, reason: RefuseReason): void {
    socket.end(this.host.answer('refuse', reason))
    socket.on('error', noop)
    socket.resume()
    const t = setTimeout(() => socket.destroy(), 1000)
    t.unref()
    socket.once('close', () => {
      clearTimeout(t)
      this.handshaking.delete(socket)
    })
  }

  /** Shutdown, first step: every handshake in progress is cut. */
  abortHandshakes(): void {
    for (const s of this.handshaking) s.destroy()
    this.handshaking.clear()
  }

  /**
   * Shutdown, after the links closed: every accepted socket still open (refused ones included) is
   * destroyed, since `server.close()` waits for all of them and a refused far side may never hang up.
   */
  destroyInbound(): void {
    for (const s of this.inbound) s.destroy()
  }

  private readonly onRawConnection = (socket: net.Socket): void => {
    this.stats.accepted++
    if (this.host.closing) {
      socket.destroy()
      return
    }
    const remote = normalize(socket.remoteAddress)
    const iface = this.o.interface
    let refusal: RxnetError | undefined
    if (iface !== undefined && isLoopback(iface) && !isLoopback(remote)) refusal = new ForeignAddressError(remote, iface)
    else if (this.pendingIn.size >= this.o.maxPendingHandshakes) refusal = new LimitError('mesh handshakes in progress', this.o.maxPendingHandshakes)
    this.inbound.add(socket)
    socket.once('close', () => {
      this.inbound.delete(socket)
      this.pendingIn.delete(socket)
    })
    if (refusal !== undefined) {
      this.refusedRaw.add(socket)
      this.refuse(socket, refusal, undefined)
      return
    }
    this.pendingIn.add(socket)
  }

  private readonly onTlsClientError = (e: Error & { code?: string }, socket: tls.TLSSocket): void => {
    if (this.refusedRaw.has(rawOf(socket))) return // refused (and counted) before TLS started
    // A client that sends nothing is a timeout, not a failed authentication.
    // (A hang-up stays ERR_AUTH: a client that rejects our certificate, or whose certificate we
    // reject, is often seen here as nothing more than a reset.)
    const error = e.code === 'ERR_TLS_HANDSHAKE_TIMEOUT' ? new TimeoutError('TLS handshake', this.o.handshakeTimeout) : new AuthenticationError(`TLS handshake failed: ${e.message}`, e)
    this.refuse(socket, error, undefined)
  }

  private readonly onConnection = (socket: net.Socket): void => {
    if (socket.destroyed) return // refused in onRawConnection
    if (this.host.closing) {
      socket.destroy()
      return
    }
    this.handshaking.add(socket)
    socket.setNoDelay(true)
    this.host.accepted(socket)
  }
}

/** The addresses a server bound to `host:port` is reached at (every interface's for a wildcard). */
export function listenAddresses(port: number, host: string): MeshAddress {
  if (!isWildcard(host)) return { port, addresses: [host] }
  const v6 = host === '::'
  const addresses: string[] = []
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' || v6) addresses.push(a.address)
  }
  return { port, addresses }
}

/** An IPv4-mapped IPv6 address as plain IPv4 (`::ffff:10.0.0.1` → `10.0.0.1`). */
export function normalize(a: string | undefined): string {
  if (a === undefined) return ''
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a
}

/** The TCP socket under a TLS socket (the socket itself for plain TCP). */
function rawOf(socket: net.Socket): net.Socket {
  return (socket as net.Socket & { _parent?: net.Socket })._parent ?? socket
}

function noop(): void {}
