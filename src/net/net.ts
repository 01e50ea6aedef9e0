/**
 * The implementation behind `rxnet/net`: node:net re-exported, with a cluster-aware `Server`.
 * @module
 */
import net from 'node:net'
import nodeCluster from 'node:cluster'

export * from 'node:net'

/** True when `port` means "any port" to `listen` (0, '0', null, undefined). */
function isAnyPort(port: unknown): boolean {
  return port === undefined || port === null || port === 0 || port === '0'
}

/**
 * Rewrites the arguments of `listen(...)` so that "any port" becomes an exclusive bind in a cluster
 * worker; anything else (fixed port, path, handle, fd, explicit `exclusive`) is passed through.
 * Use it for servers rxnet/net does not create, e.g. `http.Server`.
 * @example
 * ```ts
 * import http from 'node:http'
 * import { exclusiveListenArgs } from 'rxnet/net'
 * const server = http.createServer((req, res) => res.end('ok'))
 * server.listen(...(exclusiveListenArgs([0, '127.0.0.1']) as [number, string]))
 * ```
 */
export function exclusiveListenArgs(args: unknown[]): unknown[] {
  if (!nodeCluster.isWorker) return args
  const [first] = args
  // listen() / listen(cb)
  if (args.length === 0 || typeof first === 'function') return [{ port: 0, exclusive: true }, ...args]
  // listen(options[, cb])
  if (typeof first === 'object' && first !== null) {
    const o = first as net.ListenOptions & { _handle?: unknown; handle?: unknown; fd?: unknown }
    if (o._handle !== undefined || o.handle !== undefined || o.fd !== undefined || o.path !== undefined) return args
    if (!('port' in o) || !isAnyPort(o.port) || o.exclusive !== undefined) return args
    return [{ ...o, port: 0, exclusive: true }, ...args.slice(1)]
  }
  // listen(port[, host][, backlog][, cb]); listen(null[, cb])
  if (isAnyPort(first) && (typeof first === 'number' || typeof first === 'string' || first === null || first === undefined)) {
    const rest = args.slice(1)
    const options: net.ListenOptions = { port: 0, exclusive: true }
    let i = 0
    if (typeof rest[i] === 'string') options.host = rest[i++] as string
    if (typeof rest[i] === 'number') options.backlog = rest[i++] as number
    return [options, ...rest.slice(i)]
  }
  return args
}

/**
 * `net.Server` whose `listen` gives a cluster worker a port of its own when asked for any port.
 * @example
 * ```ts
 * import { Server } from 'rxnet/net'
 * const server = new Server((socket) => socket.end('hi\n'))
 * server.listen(0, '127.0.0.1') // in a cluster worker: a port no other worker shares
 * ```
 */
export class Server extends net.Server {
  override listen(...args: unknown[]): this {
    return super.listen(...(exclusiveListenArgs(args) as Parameters<net.Server['listen']>))
  }
}

/**
 * `net.createServer`, returning an rxnet/net {@link Server} (the connection listener is kept).
 * @example
 * ```ts
 * import net from 'rxnet/net'
 * const server = net.createServer((socket) => socket.end('hello\n')).listen(0, '127.0.0.1')
 * ```
 */
export function createServer(connectionListener?: ((socket: net.Socket) => void)): Server
export function createServer(options?: net.ServerOpts, connectionListener?: ((socket: net.Socket) => void)): Server
export function createServer(a?: net.ServerOpts | ((socket: net.Socket) => void), b?: ((socket: net.Socket) => void)): Server {
  if (typeof a === 'function') return new Server(a)
  return new Server(a ?? {}, b)
}

