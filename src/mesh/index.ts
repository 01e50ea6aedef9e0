/**
 * Mesh: a zero-config TCP mesh over mDNS / DNS-SD. Processes that share a name find each other and
 * keep exactly one connection between every pair; every connection is a {@link Peer} Channel.
 *
 * @example
 * ```ts
 * import { peers$ } from 'rxnet'
 * peers$('my-cluster', { interface: '127.0.0.1' }).subscribe((peer) => {
 *   peer.source.subscribe({ next: (m) => console.log(`${peer.id}: ${Buffer.from(m).toString()}`), error: (e) => console.log(peer.id, e.code) })
 *   peer.send('hello')
 * })
 * ```
 * @module
 */
import { Observable } from 'rxjs'
import { checkKeys } from '../options.js'
import { createMesh } from './mesh.js'
import { MESH_OPTION_KEYS, type MeshOptions } from './options.js'
import type { Peer } from './peer.js'

export { createMesh } from './mesh.js'
export { parseSeed, DEFAULT_MESH_OPTIONS, PSK_CIPHERS, type Mesh, type MeshOptions, type MeshAddress, type MeshEvent, type MeshStats } from './options.js'
export type { Peer, LeaveReason } from './peer.js'
export { SERVICE_TYPE } from './discovery.js'
export { PROTOCOL_VERSION, MAX_HANDSHAKE_BODY, CAPABILITIES } from './handshake.js'
export { PEER_SUMMARY_INTERVAL, MAX_PEER_SUMMARY_BYTES, MAX_PEER_SUMMARIES, type SummaryStats } from './summaries.js'

/**
 * Options of {@link peers$}: {@link MeshOptions} without `name`, plus where to listen.
 *
 * @example
 * ```ts
 * import { peers$, type PeersOptions } from 'rxnet'
 * const options: PeersOptions = { interface: '127.0.0.1', port: 0, codec: 'json' }
 * const sub = peers$('my-cluster', options).subscribe((peer) => peer.send({ hello: peer.id }))
 * ```
 */
export interface PeersOptions extends Omit<MeshOptions, 'name'> {
  /** Port to listen on. @default 0 (any free port) */
  port?: number
  /** Address to listen on. @default `interface` when it is an address, else '0.0.0.0' */
  address?: string
}

/**
 * Defaults of {@link PeersOptions} (beyond {@link DEFAULT_MESH_OPTIONS}).
 *
 * @example
 * ```ts
 * import { DEFAULT_PEERS_OPTIONS } from 'rxnet'
 * console.log(DEFAULT_PEERS_OPTIONS.port) // 0: any free port
 * ```
 */
export const DEFAULT_PEERS_OPTIONS = { port: 0 } as const

const PEERS_OPTION_KEYS = [...MESH_OPTION_KEYS.filter((k) => k !== 'name'), 'port', 'address']

/**
 * The peers of mesh `name` as a cold Observable: subscribing creates a mesh node and listens;
 * unsubscribing closes it. Emits every peer as it connects.
 *
 * @example
 * ```ts
 * import { peers$ } from 'rxnet'
 * const sub = peers$('my-cluster', { interface: '127.0.0.1' }).subscribe((peer) => peer.send(`hi ${peer.id}`))
 * setTimeout(() => sub.unsubscribe(), 5000)
 * ```
 */
export function peers$<In = Uint8Array, Out = Uint8Array | string>(name: string, options: PeersOptions = {}): Observable<Peer<In, Out>> {
  return new Observable<Peer<In, Out>>((subscriber) => {
    let mesh
    try {
      checkKeys('peers$', options, PEERS_OPTION_KEYS)
      const { port, address, ...rest } = options
      mesh = createMesh<In, Out>({ ...rest, name })
    } catch (e) {
      subscriber.error(e)
      return
    }
    const inner = mesh.peers$.subscribe(subscriber)
    mesh.listen(options.port ?? DEFAULT_PEERS_OPTIONS.port, options.address).catch((e: unknown) => subscriber.error(e))
    return () => {
      inner.unsubscribe()
      void mesh.close()
    }
  })
}
