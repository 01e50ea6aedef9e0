/**
 * Cluster: N processes serving one port, supervised, with a direct link between every pair.
 *
 * @example
 * ```ts
 * import http from 'node:http'
 * import { cluster } from 'rxnet'
 * const node = cluster({ workers: 2 })
 * await node.serve(http.createServer((req, res) => res.end(String(node.id))), { port: 8080, host: '127.0.0.1' })
 * ```
 * @module
 */
export { cluster } from './node.js'
export {
  type ClusterNode,
  type ClusterOptions,
  type ClusterStats,
  type RestartOptions,
  type ServeOptions,
  type ServeInfo,
  type Link,
  type ClusterEvent,
  type WorkerEvent,
  type WorkerStatus,
  type IpcMessage,
  DEFAULT_CLUSTER_OPTIONS,
  DEFAULT_RESTART_OPTIONS,
  DEFAULT_PRIMARY_SERVES,
  DEFAULT_DISTRIBUTION,
} from './types.js'
