/**
 * `broadcast(members$)`: fan a stream out to the current members, encoded once.
 * @module
 */
import { Observable, type OperatorFunction } from 'rxjs'
import { encodeWith, resolveCodec, type CodecLike } from '../src/codec/index.js'

/** What {@link broadcast} needs of a member: a `send` that takes bytes (mesh peers with the default raw codec). */
export interface ByteSink {
  send(bytes: Uint8Array): void
}

/** Options of {@link broadcast}. */
export interface BroadcastOptions<T> {
  /** How each value is encoded, once, before it goes to every member. @default 'raw' */
  codec?: CodecLike<T>
}

/** Defaults of {@link BroadcastOptions}. */
export const DEFAULT_BROADCAST_OPTIONS = { codec: 'raw' } as const

/**
 * Sends every value of the source to every current member of `members$` (a live member map such
 * as `mesh.members$` or the output of `membership()`). Each value is encoded **once** and the same
 * bytes are handed to each member's own bounded send queue, so a slow member never holds up the
 * others (its overflow policy applies to it alone). Emits, per value, how many members it was
 * sent to. A value the codec refuses errors the stream with `ERR_ENCODE`; unsubscribing stops
 * following `members$`.
 *
 * @example
 * ```ts
 * import { interval, map } from 'rxjs'
 * import { createMesh } from 'rxnet'
 * import { broadcast } from 'rxnet/operators'
 * const mesh = createMesh({ name: 'ticks', interface: '127.0.0.1' })
 * await mesh.listen()
 * interval(1000).pipe(map((n) => ({ tick: n })), broadcast(mesh.members$, { codec: 'json' })).subscribe((n) => console.log(`sent to ${n}`))
 * ```
 */
export function broadcast<T>(members$: Observable<ReadonlyMap<string, ByteSink>>, options: BroadcastOptions<T> = {}): OperatorFunction<T, number> {
  const codec = resolveCodec<T>((options.codec ?? DEFAULT_BROADCAST_OPTIONS.codec) as CodecLike<T>)
  return (source) =>
    new Observable<number>((subscriber) => {
      let members: ReadonlyMap<string, ByteSink> = new Map()
      const membersSub = members$.subscribe({
        next: (m) => (members = m),
        error: (e) => subscriber.error(e),
      })
      const sub = source.subscribe({
        next(value) {
          let bytes: Uint8Array
          try {
            bytes = encodeWith(codec, value)
            for (const peer of members.values()) peer.send(bytes)
          } catch (e) {
            subscriber.error(e)
            return
          }
          subscriber.next(members.size)
        },
        error: (e) => subscriber.error(e),
        complete: () => subscriber.complete(),
      })
      return () => {
        sub.unsubscribe()
        membersSub.unsubscribe()
      }
    })
}
