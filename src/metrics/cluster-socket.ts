/**
 * The cluster view for processes outside the cluster: with `cluster({ metricsSocket: true })` the
 * primary serves {@link clusterView} (its own snapshots and every worker's) on a Unix socket of
 * this user, `<private dir>/rxnet-cluster-<pid>.sock` (0600, inside a 0700 directory only this user
 * can enter, removed on close), one JSON value per frame; {@link watchCluster} reads it from
 * another process (`rxnet dashboard --cluster`), which never becomes a member of the cluster.
 * @module
 */
import fs from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'
import { Observable, share } from 'rxjs'
import type { ClusterNode } from '../cluster/index.js'
import { decodeWith, json } from '../codec/index.js'
import { existingSocket, fallbackBusDirectory, isPrivateDirectory, myUid, privateDirectory, resolveSocketPath } from '../bus/paths.js'
import { ClusterNotRunningError, InvalidArgumentError, UnsafePathError } from '../errors.js'
import { socketChannel } from '../socket.js'
import { clusterView } from './cluster.js'
import type { MetricsOptions } from './sources.js'
import type { MetricsSnapshot } from './snapshot.js'

const PREFIX = 'rxnet-cluster-'
const SUFFIX = '.sock'
/** Send budget per watcher: snapshots beyond it drop the oldest (a slow watcher never holds the primary back). */
const WATCHER_HIGH_WATER_MARK = 1024 * 1024

function runtimeDirectory(): string | undefined {
  const runtime = process.env.XDG_RUNTIME_DIR
  return runtime !== undefined && runtime !== '' && isPrivateDirectory(runtime) ? runtime : undefined
}

/**
 * The directory of the cluster view sockets: `$XDG_RUNTIME_DIR` when only this user can enter it,
 * else `$TMPDIR/rxnet-<uid>` (the bus's fallback directory, created 0700 when `create` and missing).
 * @example
 * ```ts
 * import { clusterSocketDirectory } from 'rxnet'
 * console.log(clusterSocketDirectory(false))
 * ```
 */
export function clusterSocketDirectory(create = true): string {
  const runtime = runtimeDirectory()
  if (runtime !== undefined) return runtime
  return create ? privateDirectory(fallbackBusDirectory()) : fallbackBusDirectory()
}

/**
 * Where the primary of process `pid` serves its cluster view.
 * @example
 * ```ts
 * import { clusterSocketPath } from 'rxnet'
 * console.log(clusterSocketPath(process.pid))
 * ```
 */
export function clusterSocketPath(pid: number, dir = clusterSocketDirectory(false)): string {
  return join(dir, `${PREFIX}${pid}${SUFFIX}`)
}

/**
 * A running cluster view server (see {@link serveClusterView}).
 * @example
 * ```ts
 * const served = await serveClusterView(node)
 * console.log(served.path); await served.close()
 * ```
 */
export interface ClusterViewServer {
  /** The socket path. */
  readonly path: string
  /** Stops serving, ends every watcher and removes the socket. */
  close(): Promise<void>
}

/**
 * In the primary: serves {@link clusterView} on {@link clusterSocketPath}(process.pid), created 0600
 * in the private directory, to any process of this user that connects. `cluster({ metricsSocket: true })`
 * calls it (and starts {@link reportClusterMetrics} in every worker).
 * @example
 * ```ts
 * import { cluster, serveClusterView } from 'rxnet'
 * const node = cluster({ workers: 2 })
 * if (node.isPrimary) await serveClusterView(node)
 * ```
 */
export async function serveClusterView(node: ClusterNode, options: MetricsOptions = {}): Promise<ClusterViewServer> {
  if (!node.isPrimary) throw new InvalidArgumentError('serveClusterView(): only the primary serves the cluster view')
  const path = clusterSocketPath(process.pid, clusterSocketDirectory(true))
  const { real } = resolveSocketPath(path)
  if (existingSocket(real, path) !== null) fs.unlinkSync(real) // ours (checked), left by an earlier process with this pid
  const view = clusterView(node, options).pipe(share())
  const watchers = new Set<net.Socket>()
  const server = net.createServer((socket) => {
    watchers.add(socket)
    const ch = socketChannel(socket, { overflow: 'drop-oldest', highWaterMark: WATCHER_HIGH_WATER_MARK })
    const sub = view.subscribe((s) => ch.send(json.encode(s)))
    // A watcher sends nothing; whatever it does, its end (clean or not) ends its subscription.
    ch.source.subscribe({ error: () => {} })
    void ch.closed.then(
      () => sub.unsubscribe(),
      () => sub.unsubscribe(),
    )
    socket.once('close', () => watchers.delete(socket))
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(real, () => {
      server.off('error', reject)
      resolve()
    })
  })
  fs.chmodSync(real, 0o600)
  const remove = (): void => fs.rmSync(real, { force: true })
  process.on('exit', remove) // an uncaught error in the primary still removes it (SIGKILL aside: watchers skip those)
  let closing: Promise<void> | undefined
  return {
    path: real,
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        process.off('exit', remove)
        for (const s of watchers) s.destroy()
        server.close(() => resolve())
        remove()
      })),
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * The socket of the running cluster primary `pid`, or of the one running cluster when `pid` is not
 * given. Throws `ERR_NO_CLUSTER` when there is none (sockets of primaries that died are skipped),
 * `ERR_INVALID_ARGUMENT` when several run and no pid is given, `ERR_UNSAFE_PATH` for a socket or a
 * directory another user could control.
 * @example
 * ```ts
 * import { findCluster } from 'rxnet'
 * console.log(findCluster()) // e.g. /run/user/1000/rxnet-cluster-4242.sock
 * ```
 */
export function findCluster(pid?: number): string {
  const dir = clusterSocketDirectory(false)
  if (!fs.existsSync(dir)) throw new ClusterNotRunningError(`${dir} does not exist`)
  if (!isPrivateDirectory(dir)) throw new UnsafePathError(dir, `it is not a directory of uid ${myUid()} that only its owner can enter`)
  const check = (path: string): boolean => {
    const { real } = resolveSocketPath(path)
    return existingSocket(real, path) !== null // another user's socket throws ERR_UNSAFE_PATH
  }
  if (pid !== undefined) {
    const path = clusterSocketPath(pid, dir)
    if (!check(path) || !alive(pid)) throw new ClusterNotRunningError(`no primary with pid ${pid} serves its view in ${dir}`)
    return path
  }
  const found: number[] = []
  for (const name of fs.readdirSync(dir)) {
    if (!name.startsWith(PREFIX) || !name.endsWith(SUFFIX)) continue
    const n = Number(name.slice(PREFIX.length, -SUFFIX.length))
    if (Number.isSafeInteger(n) && n > 0 && check(join(dir, name)) && alive(n)) found.push(n)
  }
  if (found.length === 0) throw new ClusterNotRunningError(`no primary serves its view in ${dir}`)
  if (found.length > 1) throw new InvalidArgumentError(`${found.length} clusters are running (primary pids ${found.sort((a, b) => a - b).join(', ')}): name one`)
  return clusterSocketPath(found[0]!, dir)
}

/**
 * From any process of the same user: the snapshots a running cluster's primary serves (see
 * {@link serveClusterView}), its own and its workers'. Cold: finds the socket ({@link findCluster})
 * and connects on subscribe, disconnects on unsubscribe; completes when the primary closes it.
 * @example
 * ```ts
 * import { watchCluster, startDashboard } from 'rxnet'
 * await startDashboard({ sources: watchCluster(), title: 'cluster' })
 * ```
 */
export function watchCluster(pid?: number): Observable<MetricsSnapshot> {
  return new Observable<MetricsSnapshot>((subscriber) => {
    let path: string
    try {
      path = findCluster(pid)
    } catch (e) {
      subscriber.error(e)
      return
    }
    const ch = socketChannel(net.connect(path))
    const sub = ch.source.subscribe({
      next: (bytes) => {
        try {
          subscriber.next({ ...(decodeWith(json, bytes) as MetricsSnapshot), time: Date.now() })
        } catch (e) {
          subscriber.error(e)
        }
      },
      error: (e) => subscriber.error(e),
      complete: () => subscriber.complete(),
    })
    return () => {
      sub.unsubscribe()
      ch.abort()
    }
  })
}
