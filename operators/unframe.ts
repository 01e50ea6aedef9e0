/**
 * `unframe()`: splits a stream of byte chunks back into the messages {@link frame} delimited.
 * @module
 */
import { Observable, type OperatorFunction } from 'rxjs'
import { DEFAULT_MAX_LENGTH, FrameDecoder } from '../src/framing/decoder.js'
import { checkInt } from '../src/options.js'

/**
 * Options of {@link unframe}.
 *
 * @example
 * ```ts
 * import { unframe, type UnframeOptions } from 'rxnet/operators'
 * const options: UnframeOptions = { maxLength: 64 * 1024 }
 * // chunks.pipe(unframe(options))
 * ```
 */
export interface UnframeOptions {
  /** Largest frame accepted, checked on the declared length before anything is buffered. @default 4 MiB */
  maxLength?: number
}

/**
 * Reassembles length-prefixed frames from arbitrarily split chunks (it-length-prefixed's wire
 * format). A frame inside one chunk is emitted without copying. Errors with `ERR_FRAME_TOO_LONG`
 * when a frame declares more than `maxLength`, `ERR_INVALID_LENGTH` on a bad prefix and
 * `ERR_TRUNCATED_FRAME` when the input completes inside a frame; frames before the fault are
 * delivered first.
 *
 * @example
 * ```ts
 * import { of } from 'rxjs'
 * import { unframe } from 'rxnet/operators'
 * of(new Uint8Array([3, 1, 2]), new Uint8Array([3, 0])).pipe(unframe({ maxLength: 1024 }))
 *   .subscribe((msg) => console.log(msg)) // Uint8Array [1, 2, 3], Uint8Array []
 * ```
 */
export function unframe(options: UnframeOptions = {}): OperatorFunction<Uint8Array, Uint8Array> {
  const maxLength = checkInt('maxLength', options.maxLength ?? DEFAULT_MAX_LENGTH, 0)
  return (source) =>
    new Observable<Uint8Array>((subscriber) => {
      const decoder = new FrameDecoder(maxLength)
      const emit = (frame: Uint8Array): void => subscriber.next(frame)
      return source.subscribe({
        next(chunk) {
          try {
            decoder.push(chunk, emit)
          } catch (e) {
            subscriber.error(e)
          }
        },
        error: (e) => subscriber.error(e),
        complete() {
          try {
            decoder.end()
          } catch (e) {
            subscriber.error(e)
            return
          }
          subscriber.complete()
        },
      })
    })
}
