/**
 * `membership()`: a stream of peers to the live member map.
 * @module
 */
import { from, ignoreElements, Observable, Subscription, type OperatorFunction } from 'rxjs'

/** What {@link membership} needs of a peer: an `id`, and a way to tell that it left. */
export interface MemberLike {
  readonly id: string
  /** Completes or errors when the peer leaves (used when `left` is absent). */
  readonly source: Observable<unknown>
  /** Resolves when the peer leaves (preferred over `source` when present: mesh peers have it). */
  readonly left?: PromiseLike<unknown>
}

/**
 * Turns a stream of peers (e.g. `mesh.peers$`) into the live member map: emits a new
 * `ReadonlyMap<id, peer>` when a peer joins and again when it leaves (its `left` promise settles,
 * or else its `source` ends). A later peer with the same id replaces the earlier one. Completes
 * once the peer stream has completed and every member has left; unsubscribing stops watching
 * every member.
 *
 * @example
 * ```ts
 * import { createMesh } from 'rxnet'
 * import { membership } from 'rxnet/operators'
 * const mesh = createMesh({ name: 'my-cluster', interface: '127.0.0.1' })
 * mesh.peers$.pipe(membership()).subscribe((members) => console.log('members:', [...members.keys()]))
 * await mesh.listen()
 * ```
 */
export function membership<P extends MemberLike>(): OperatorFunction<P, ReadonlyMap<string, P>> {
  return (peers) =>
    new Observable<ReadonlyMap<string, P>>((subscriber) => {
      const members = new Map<string, P>()
      const watches = new Map<P, Subscription>()
      let outerDone = false
      const maybeComplete = (): void => {
        if (outerDone && watches.size === 0) subscriber.complete()
      }
      const leave = (peer: P): void => {
        watches.get(peer)?.unsubscribe()
        if (!watches.delete(peer)) return
        if (members.get(peer.id) === peer) {
          members.delete(peer.id)
          subscriber.next(new Map(members))
        }
        maybeComplete()
      }
      const outer = peers.subscribe({
        next(peer) {
          const previous = members.get(peer.id)
          if (previous !== undefined && previous !== peer) {
            watches.get(previous)?.unsubscribe()
            watches.delete(previous)
          }
          members.set(peer.id, peer)
          subscriber.next(new Map(members))
          // Registered before subscribing, so a source that has already ended (and leaves at once) is seen.
          const watch = new Subscription()
          watches.set(peer, watch)
          const leaves = peer.left !== undefined ? from(Promise.resolve(peer.left)) : peer.source.pipe(ignoreElements())
          const end = (): void => leave(peer)
          watch.add(leaves.subscribe({ next: end, error: end, complete: end }))
        },
        error: (e) => subscriber.error(e),
        complete: () => {
          outerDone = true
          maybeComplete()
        },
      })
      return () => {
        outer.unsubscribe()
        for (const s of watches.values()) s.unsubscribe()
        watches.clear()
      }
    })
}
