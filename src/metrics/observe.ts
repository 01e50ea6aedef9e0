/**
 * Watching a mesh from outside: {@link observeMesh} dials the nodes it finds as an observer (the
 * handshake says `observe`: it is never one of their members) and emits the stats summary each
 * node sends, plus the summaries each node holds of its peers (tagged `via`), newest per node:
 * an observer that reaches one node of a full mesh sees every node and every link between them.
 * @module
 */
import { Observable } from 'rxjs'
import { createMesh } from '../mesh/mesh.js'
import type { MeshOptions } from '../mesh/options.js'
import type { Peer } from '../mesh/peer.js'
import { checkKeys } from '../options.js'
import type { MetricsSnapshot } from './snapshot.js'
import { MAX_SUMMARY_BYTES, decodeSummary } from './summary.js'

/**
 * Options of {@link observeMesh}: how to find and reach the nodes (the mesh's own settings).
 * @example
 * ```ts
 * observeMesh('demo', { interface: '127.0.0.1', secret: process.env.MESH_SECRET })
 * ```
 */
export type ObserveMeshOptions = Pick<MeshOptions, 'id' | 'interface' | 'seeds' | 'discovery' | 'secret' | 'tls' | 'heartbeatInterval' | 'failureTimeout' | 'handshakeTimeout' | 'connectTimeout' | 'mdnsPort'> & {
  /** Called with each summary that did not decode (it is skipped). @default ignore */
  onBadSummary?: (error: unknown, from: string) => void
}

/** Most distinct nodes one observer tracks (summaries of more are skipped, reported to `onBadSummary`). */
const MAX_OBSERVED_NODES = 1024

const KEYS = ['id', 'interface', 'seeds', 'discovery', 'secret', 'tls', 'heartbeatInterval', 'failureTimeout', 'handshakeTimeout', 'connectTimeout', 'mdnsPort', 'onBadSummary']

/**
 * The stats summaries of every node of mesh `name`, as snapshots with `state` (`'up'` while the
 * observer's link to the node lives; one last snapshot with `'down'` when it ends). Cold: the
 * observer starts on subscribe and leaves on unsubscribe. With a wrong secret nothing arrives.
 * @example
 * ```ts
 * import { observeMesh, withRates } from 'rxnet'
 * observeMesh('demo', { interface: '127.0.0.1' }).pipe(withRates()).subscribe((s) => {
 *   console.log(s.node, s.state, s.links.map((l) => `${l.to} ${l.state} ${l.rttSeconds ?? '-'} s`))
 * })
 * ```
 */
export function observeMesh(name: string, options: ObserveMeshOptions = {}): Observable<MetricsSnapshot> {
  checkKeys('observeMesh', options, KEYS)
  const { onBadSummary, ...rest } = options
  return new Observable<MetricsSnapshot>((subscriber) => {
    let mesh
    try {
      mesh = createMesh<Uint8Array, Uint8Array>({ ...rest, id: rest.id ?? `observer-${process.pid}-${Math.random().toString(16).slice(2, 8)}`, name, observer: true, advertise: false, codec: 'raw', maxLength: MAX_SUMMARY_BYTES })
    } catch (e) {
      subscriber.error(e)
      return
    }
    /** Newest origin time seen per node (relayed summaries arrive through several nodes). */
    const newest = new Map<string, number>()
    const watch = (peer: Peer<Uint8Array, Uint8Array>): void => {
      let last: MetricsSnapshot | undefined
      peer.source.subscribe({
        next: (bytes) => {
          let s: MetricsSnapshot
          try {
            s = { ...decodeSummary(bytes), state: 'up' }
          } catch (e) {
            onBadSummary?.(e, peer.id)
            return
          }
          if (s.node !== peer.id) s.via = peer.id
          const at = s.sentAt ?? s.time
          if ((newest.get(s.node) ?? -Infinity) >= at) return // an older or the same summary through another node
          if (newest.size >= MAX_OBSERVED_NODES && !newest.has(s.node)) return onBadSummary?.(new RangeError(`more than ${MAX_OBSERVED_NODES} nodes`), peer.id)
          newest.set(s.node, at)
          if (s.via === undefined) last = s
          subscriber.next(s)
        },
        error: () => gone(),
        complete: () => gone(),
      })
      const gone = (): void => {
        if (last !== undefined) subscriber.next({ ...last, time: Date.now(), state: 'down', links: last.links.map((l) => ({ ...l, state: 'down', rttSeconds: undefined })) })
      }
    }
    const peers = mesh.peers$.subscribe(watch)
    const address = rest.interface !== undefined && rest.interface !== 'localhost' && rest.interface !== '::1' ? rest.interface : undefined
    mesh.listen(0, address).catch((e: unknown) => subscriber.error(e))
    return () => {
      peers.unsubscribe()
      void mesh.close()
    }
  })
}
