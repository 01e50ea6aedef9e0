/**
 * `frame()`: length-prefixes every message, so a byte stream can carry message boundaries.
 * @module
 */
import { map, type OperatorFunction } from 'rxjs'
import { encodeFrame } from '../src/framing/encoder.js'

/**
 * Prefixes each `Uint8Array` with its unsigned-varint length: byte-identical to
 * it-length-prefixed's `encode`. Pair with {@link unframe} on the far side.
 *
 * @example
 * ```ts
 * import { of } from 'rxjs'
 * import { frame } from 'rxnet/operators'
 * of(new Uint8Array([1, 2, 3])).pipe(frame()).subscribe((bytes) => console.log(bytes)) // Uint8Array [3, 1, 2, 3]
 * ```
 */
export function frame(): OperatorFunction<Uint8Array, Uint8Array> {
  return map((payload) => encodeFrame(payload))
}
