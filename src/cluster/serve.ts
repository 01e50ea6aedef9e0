/**
 * Serving helpers shared by primary and workers: listening and graceful draining of any
 * `net.Server` (`http.Server` included).
 * @module
 */
import http from 'node:http'
import net from 'node:net'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { deadline } from '../wait.js'

const NetServerClose = net.Server.prototype.close

/** Key under which primary and workers agree on one served port. */
export function serveKey(port: number, host: string | undefined): string {
  return `${host ?? '*'}|${port}`
}

/** Listens `server` with node:net `listen(...args)` and resolves once it is listening. */
export function listenAsync(server: net.Server, arg: unknown, signal?: AbortSignal): Promise<void> {
  return deadline<void>(
    ({ resolve, reject }) => {
      server.on('error', reject)
      server.on('listening', resolve)
      server.listen(arg as net.ListenOptions)
      return () => {
        server.off('error', reject)
        server.off('listening', resolve)
        if (signal?.aborted) server.close() // settled by the abort: stop listening
      }
    },
    { signal },
  )
}

type HttpLike = net.Server & { closeIdleConnections?: () => void }

/** What a drain needs to know about one connection. */
interface Conn {
  /** Requests in flight on it (HTTP). */
  active: number
  /** Requests answered on it so far (HTTP). */
  served: number
}

/** How long a drain lets a fresh connection (accepted, no request yet) send its request. */
const FRESH_CONNECTION_GRACE = 1_000

/**
 * Tracks a server's connections so a drain can tell in-flight work from idle connections, and end
 * what outlives the timeout.
 */
export class ServedServer {
  private readonly conns = new Map<net.Socket, Conn>()
  private readonly isHttp: boolean
  private draining = false
  private drainPromise: Promise<void> | null = null

  constructor(readonly server: net.Server) {
    // Plain HTTP: requests are tracked per connection. HTTPS (requests arrive on the TLS socket, not
    // the tracked TCP one) gets Node's own close(), which also ends idle connections.
    this.isHttp = server instanceof http.Server
    server.on('connection', this.onConnection)
    if (typeof (server as HttpLike).closeIdleConnections === 'function') server.prependListener('request', this.onRequest)
  }

  private readonly onConnection = (socket: net.Socket): void => {
    this.conns.set(socket, { active: 0, served: 0 })
    socket.once('close', () => this.conns.delete(socket))
  }

  private readonly onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const socket = req.socket
    const conn = this.conns.get(socket)
    if (this.draining) res.shouldKeepAlive = false // the client will not reuse this connection
    if (conn === undefined) return
    conn.active++
    res.once('close', () => {
      conn.active--
      conn.served++
      // A keep-alive connection that went idle while draining: end it (its response is flushed first).
      if (this.draining && conn.active === 0) socket.end()
    })
  }

  /**
   * Stops accepting, lets in-flight connections finish, and after `timeout` ms destroys what is
   * left. HTTP: responses carry `Connection: close` from now on, idle keep-alive connections are
   * ended, and a connection accepted but without a request yet gets a short grace to send it (Node's
   * own `http.Server.close()` would drop it, failing that client's request). Resolves when the
   * server has closed. Idempotent.
   */
  drain(timeout: number): Promise<void> {
    this.drainPromise ??= this.doDrain(timeout)
    return this.drainPromise
  }

  private doDrain(timeout: number): Promise<void> {
    const server = this.server
    this.draining = true
    return new Promise<void>((resolve) => {
      const timers: NodeJS.Timeout[] = []
      timers.push(
        setTimeout(() => {
          for (const s of this.conns.keys()) s.destroy()
        }, timeout),
      )
      server.once('close', () => {
        for (const t of timers) clearTimeout(t)
        server.off('connection', this.onConnection)
        server.off('request', this.onRequest)
        resolve()
      })
      if (!this.isHttp) {
        server.close() // raw connections are in flight by definition: they end by themselves or at the timeout
        return
      }
      // net.Server's close stops accepting; http.Server's would also drop connections that have not sent their request yet.
      NetServerClose.call(server)
      for (const [socket, conn] of this.conns) {
        if (conn.active > 0) continue
        if (conn.served > 0) socket.end() // idle keep-alive
        else {
          const grace = setTimeout(() => {
            if (conn.active === 0 && conn.served === 0) socket.destroy()
          }, Math.min(FRESH_CONNECTION_GRACE, timeout))
          timers.push(grace)
        }
      }
    })
  }
}
