/**
 * `encode(codec)`: values to bytes.
 * @module
 */
import { map, type OperatorFunction } from 'rxjs'
import { encodeWith, resolveCodec, type Codec } from '../src/codec/index.js'

/**
 * Encodes each value with a codec (`'json'`, `'msgpack'`, `'raw'`, `'utf8'` or your own
 * {@link Codec}). A value the codec refuses errors the stream with `ERR_ENCODE` (its `cause` is
 * the codec's error).
 *
 * @example
 * ```ts
 * import { of } from 'rxjs'
 * import { encode, frame } from 'rxnet/operators'
 * of({ n: 1 }).pipe(encode('json'), frame()).subscribe((bytes) => socket.write(bytes))
 * ```
 */
export function encode<T>(codec: 'json' | 'msgpack' | Codec<T>): OperatorFunction<T, Uint8Array>
export function encode(codec: 'utf8'): OperatorFunction<string, Uint8Array>
export function encode(codec: 'raw'): OperatorFunction<Uint8Array | string, Uint8Array>
export function encode<T>(codec: string | Codec<T>): OperatorFunction<T, Uint8Array> {
  const c = resolveCodec(codec as Codec<T>)
  // map() routes a throwing project to subscriber.error (with rxjs' own lean subscriber)
  return map((value: T) => encodeWith(c, value))
}
