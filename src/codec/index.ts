/**
 * Codecs turn values into bytes and back. Built in: {@link json}, {@link msgpack}, {@link raw},
 * {@link utf8}; implement {@link Codec} for your own.
 *
 * @example
 * ```ts
 * import { codecs } from 'rxnet'
 * const bytes = codecs.json.encode({ hello: 'world' })
 * codecs.json.decode(bytes) // { hello: 'world' }
 * ```
 * @module
 */
import { Packr } from 'msgpackr'
import { DecodeError, EncodeError, InvalidArgumentError } from '../errors.js'

/**
 * Encodes values of type `T` to bytes and decodes them back. `decode` may throw; callers wrap it in `ERR_DECODE`.
 *
 * @example
 * ```ts
 * import { decode, encode } from 'rxnet/operators'
 * import type { Codec } from 'rxnet'
 * const point: Codec<{ x: number; y: number }> = {
 *   name: 'point',
 *   encode: (p) => new Uint8Array(new Float64Array([p.x, p.y]).buffer),
 *   decode: (b) => { const f = new Float64Array(b.slice().buffer); return { x: f[0]!, y: f[1]! } },
 * }
 * // values.pipe(encode(point)) ... bytes.pipe(decode(point))
 * ```
 */
export interface Codec<T> {
  /** Short name, used in error messages and handshakes. */
  readonly name: string
  /** Value to bytes; throws on a value it cannot encode. */
  encode(value: T): Uint8Array
  /** Bytes to value; throws on bytes it cannot decode. */
  decode(bytes: Uint8Array): T
}

const textEncoder = new TextEncoder()
const textDecoder = new TextDecoder('utf-8', { fatal: true })

/**
 * JSON text in UTF-8. Values must be JSON-serialisable (`undefined` is refused).
 *
 * @example
 * ```ts
 * import { json } from 'rxnet'
 * json.decode(json.encode({ n: 1 })) // { n: 1 }
 * ```
 */
export const json: Codec<unknown> = {
  name: 'json',
  encode(value) {
    const text = JSON.stringify(value)
    if (text === undefined) throw new TypeError(`${typeof value} is not JSON-serialisable`)
    return Buffer.from(text, 'utf8')
  },
  decode(bytes) {
    return JSON.parse(textDecoder.decode(bytes))
  },
}

const packr = new Packr({ useRecords: false, moreTypes: false })

/**
 * MessagePack (msgpackr, records off so any msgpack implementation can read it). Binary data
 * and 64-bit integers survive; a `__proto__` key is not revived (prototype-pollution guard).
 *
 * @example
 * ```ts
 * import { msgpack } from 'rxnet'
 * msgpack.decode(msgpack.encode({ blob: new Uint8Array([1, 2]), big: 2n ** 60n }))
 * ```
 */
export const msgpack: Codec<unknown> = {
  name: 'msgpack',
  encode(value) {
    return packr.pack(value)
  },
  decode(bytes) {
    return packr.unpack(bytes instanceof Buffer ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength))
  },
}

/**
 * Bytes as they are (`string` is sent as UTF-8; `source` emits `Uint8Array`).
 *
 * @example
 * ```ts
 * import { raw } from 'rxnet'
 * raw.encode('hi') // Uint8Array [104, 105]
 * ```
 */
export const raw: Codec<Uint8Array | string> = {
  name: 'raw',
  encode(value) {
    if (typeof value === 'string') return Buffer.from(value, 'utf8')
    if (value instanceof Uint8Array) return value
    throw new TypeError('raw codec takes a Uint8Array or a string')
  },
  decode(bytes) {
    return bytes
  },
}

/**
 * Strings as UTF-8 (invalid UTF-8 on decode is an error, not U+FFFD).
 *
 * @example
 * ```ts
 * import { utf8 } from 'rxnet'
 * utf8.decode(utf8.encode('héllo')) // 'héllo'
 * ```
 */
export const utf8: Codec<string> = {
  name: 'utf8',
  encode(value) {
    if (typeof value !== 'string') throw new TypeError('utf8 codec takes a string')
    return textEncoder.encode(value)
  },
  decode(bytes) {
    return textDecoder.decode(bytes)
  },
}

/**
 * The built-in codecs by name.
 *
 * @example
 * ```ts
 * import { codecs } from 'rxnet'
 * const bytes = codecs.msgpack.encode([1, 2, 3])
 * ```
 */
export const codecs = { json, msgpack, raw, utf8 } as const

/**
 * A codec name or a codec.
 *
 * @example
 * ```ts
 * import type { CodecLike } from 'rxnet'
 * const wire: CodecLike = 'msgpack'
 * ```
 */
export type CodecLike<T = unknown> = keyof typeof codecs | Codec<T>

/**
 * Resolves a codec name (`'json'`, `'msgpack'`, `'raw'`, `'utf8'`) or returns the codec given.
 * An unknown name or a malformed codec is `ERR_INVALID_ARGUMENT`.
 *
 * @example
 * ```ts
 * import { resolveCodec } from 'rxnet'
 * const codec = resolveCodec(process.env.CODEC === 'msgpack' ? 'msgpack' : 'json')
 * ```
 */
export function resolveCodec<T = unknown>(codec: CodecLike<T>): Codec<T> {
  if (typeof codec === 'string') {
    const c = (codecs as Record<string, Codec<unknown>>)[codec]
    if (c === undefined) throw new InvalidArgumentError(`unknown codec "${codec}" (built in: ${Object.keys(codecs).join(', ')})`)
    return c as Codec<T>
  }
  if (codec === null || typeof codec !== 'object' || typeof codec.encode !== 'function' || typeof codec.decode !== 'function') {
    throw new InvalidArgumentError('a codec needs encode() and decode()')
  }
  return codec
}

/** `codec.encode(value)`, with failures wrapped in {@link EncodeError}. */
export function encodeWith<T>(codec: Codec<T>, value: T): Uint8Array {
  try {
    return codec.encode(value)
  } catch (e) {
    throw new EncodeError(codec.name, e)
  }
}

/** `codec.decode(bytes)`, with failures wrapped in {@link DecodeError}. */
export function decodeWith<T>(codec: Codec<T>, bytes: Uint8Array): T {
  try {
    return codec.decode(bytes)
  } catch (e) {
    throw new DecodeError(codec.name, e)
  }
}
