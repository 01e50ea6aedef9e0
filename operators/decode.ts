/**
 * `decode(codec)`: bytes to values.
 * @module
 */
import { map, type OperatorFunction } from 'rxjs'
import { decodeWith, resolveCodec, type Codec } from '../src/codec/index.js'

/**
 * Decodes each message with a codec (`'json'`, `'msgpack'`, `'raw'`, `'utf8'` or your own
 * {@link Codec}). Undecodable input errors the stream with `ERR_DECODE`, its `cause` the codec's
 * own error; values decoded before it were delivered.
 *
 * @example
 * ```ts
 * import { decode } from 'rxnet/operators'
 * peer.source.pipe(decode('json')).subscribe((value) => console.log(value))
 * ```
 */
export function decode<T = unknown>(codec: 'json' | 'msgpack' | Codec<T>): OperatorFunction<Uint8Array, T>
export function decode(codec: 'utf8'): OperatorFunction<Uint8Array, string>
export function decode(codec: 'raw'): OperatorFunction<Uint8Array, Uint8Array>
export function decode<T>(codec: string | Codec<T>): OperatorFunction<Uint8Array, T> {
  const c = resolveCodec(codec as Codec<T>)
  // map() routes a throwing project to subscriber.error (with rxjs' own lean subscriber)
  return map((bytes: Uint8Array) => decodeWith(c, bytes))
}
