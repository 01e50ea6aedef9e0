/**
 * Serving helpers shared by primary and workers: listening and graceful draining of any
 * `net.Server` (`http.Server` included).
 * @module
 */
import type net from 'node:net'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { AbortError } from '../errors.js'

/** Key under which primary and workers agree on one served port. */
export function serveKey(port: number, host: string | undefined): string {
  return `${host ?? '*'}|${port}`
}

/** Listens `server` with node:net `listen(...args)` and resolves once it is listening. */
export function listenAsync(server: net.Server, arg: unknown, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(new AbortError(signal.reason))
    const cleanup = (): void => {
      server.off('error', onError)
      server.off('listening', onListening)
      signal?.removeEventListener('abort', onAbort)
    }
    const onError = (e: Error): void => {
      cleanup()
      reject(e)
    }
    const onListening = (): void => {
      cleanup()
      resolve()
    }
    const onAbort = (): void => {
      cleanup()
      server.close()
      reject(new AbortError(signal?.reason))
    }
    server.on('error', onError)
    server.on('listening', onListening)
    signal?.addEventListener('abort', onAbort, { once: true })
    server.listen(arg as net.ListenOptions)
  })
}

type HttpLike = net.Server & { closeIdleConnections?: () => void; closeAllConnections?: () => void }

/** Tracks a server's open connections so a drain can end the ones that outlive the timeout. */
export class ServedServer {
  private readonly sockets = new Set<net.Socket>()
  private drainPromise: Promise<void> | null = null

  constructor(readonly server: net.Server) {
    server.on('connection', this.onConnection)
  }

  private readonly onConnection = (socket: net.Socket): void => {
    this.sockets.add(socket)
    socket.once('close', () => this.sockets.delete(socket))
  }

  /**
   * Stops accepting, lets in-flight connections finish (HTTP: idle keep-alive connections are
   * closed and responses carry `Connection: close`), and after `timeout` ms destroys what is left.
   * Resolves when the server has closed. Idempotent.
   */
  drain(timeout: number): Promise<void> {
    this.drainPromise ??= this.doDrain(timeout)
    return this.drainPromise
  }

  private doDrain(timeout: number): Promise<void> {
    const server = this.server as HttpLike
    const isHttp = typeof server.closeIdleConnections === 'function'
    const noKeepAlive = (_req: IncomingMessage, res: ServerResponse): void => {
      res.shouldKeepAlive = false
    }
    if (isHttp) server.prependListener('request', noKeepAlive)
    return new Promise<void>((resolve) => {
      const sweep = isHttp ? setInterval(() => server.closeIdleConnections!(), 50) : undefined
      const timer = setTimeout(() => {
        if (isHttp) server.closeAllConnections?.()
        for (const s of this.sockets) s.destroy()
      }, timeout)
      server.once('close', () => {
        clearInterval(sweep)
        clearTimeout(timer)
        server.off('connection', this.onConnection)
        if (isHttp) server.off('request', noKeepAlive)
        resolve()
      })
      server.close()
      if (isHttp) server.closeIdleConnections!()
      // Raw net servers: open connections are in flight by definition; they end by themselves or at the timeout.
    })
  }
}
