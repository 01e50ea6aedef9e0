/**
 * `rxnet/net`: a drop-in for `node:net` that behaves sanely in a cluster (replaces net-cluster).
 *
 * Everything is `node:net`, except that in a node:cluster worker a server asked for "any port"
 * (`listen()`, `listen(cb)`, `listen(0)`, `listen(null)`, `listen({ port: 0 })`, ...) binds a port
 * of that worker's own (`exclusive: true`), instead of node:cluster handing every worker the same
 * "random" port. A fixed port stays shared through the primary, as in Node. Every argument form
 * of `listen` keeps working, and `createServer(listener)` keeps its listener.
 *
 * The same trick for UDP: `dgram.createSocket('udp4').bind({ port: 0, exclusive: true })` in a worker.
 *
 * @example
 * ```ts
 * import nodeCluster from 'node:cluster'
 * import net from 'rxnet/net'
 *
 * if (nodeCluster.isPrimary) {
 *   nodeCluster.fork()
 *   nodeCluster.fork()
 * } else {
 *   const server = net.createServer((socket) => socket.end('hi\n'))
 *   server.listen(() => console.log('listening on port', (server.address() as net.AddressInfo).port))
 * }
 * ```
 * @module rxnet/net
 */
import * as api from './net.js'

export * from './net.js'
/**
 * This module as a namespace: node:net with the cluster-aware `Server` and `createServer` (types included).
 * @example
 * ```ts
 * import net from 'rxnet/net'
 * const server = net.createServer((socket) => socket.end('hi\n'))
 * server.listen(0, '127.0.0.1', () => console.log((server.address() as net.AddressInfo).port))
 * ```
 */
export default api
