/**
 * `fromPeers()`: every peer's messages, merged, each with its sender.
 * @module
 */
import { catchError, EMPTY, map, mergeMap, type Observable, type OperatorFunction } from 'rxjs'

/** One message and the peer it came from. */
export interface PeerMessage<P, M> {
  peer: P
  message: M
}

/**
 * Merges the messages of every peer of a peer stream (e.g. `mesh.peers$`) into one stream of
 * `{ peer, message }`. A peer whose `source` ends, cleanly or with an error, simply stops
 * contributing (its leave is a membership event, not a failure of the merged stream). Completes
 * when the peer stream and every peer's source have completed; unsubscribing unsubscribes from
 * every peer.
 *
 * @example
 * ```ts
 * import { createMesh } from 'rxnet'
 * import { fromPeers } from 'rxnet/operators'
 * const mesh = createMesh({ name: 'chat', interface: '127.0.0.1' })
 * mesh.peers$.pipe(fromPeers()).subscribe(({ peer, message }) => console.log(`${peer.id}: ${Buffer.from(message).toString()}`))
 * await mesh.listen()
 * ```
 */
export function fromPeers<P extends { readonly source: Observable<unknown> }>(): OperatorFunction<P, PeerMessage<P, P extends { readonly source: Observable<infer M> } ? M : never>> {
  type M = P extends { readonly source: Observable<infer X> } ? X : never
  return mergeMap((peer: P) =>
    (peer.source as Observable<M>).pipe(
      map((message) => ({ peer, message })),
      catchError(() => EMPTY),
    ),
  )
}
