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

/** Encodes values of type `T` to bytes and decodes them back. `decode` may throw; callers wrap it in `ERR_DECODE`. */
export interface Codec<T> {
  /** Short name, used in error messages and handshakes. */
  readonly name: string
  encode(value: T): Uint8Array
  decode(bytes: Uint8Array): T
}

const textEncoder = new TextEncoder()
const textDecoder = new TextDecoder('utf-8', { fatal: true })

/** JSON text in UTF-8. Values must be JSON-serialisable (`undefined` is refused). */
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

/** MessagePack (msgpackr, records off so any msgpack implementation can read it). */
export const msgpack: Codec<unknown> = {
  name: 'msgpack',
  encode(value) {
    return packr.pack(value)
  },
  decode(bytes) {
    return packr.unpack(bytes instanceof Buffer ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength))
  },
}

/** Bytes as they are (`string` is sent as UTF-8; `source` emits `Uint8Array`). */
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

/** Strings as UTF-8 (invalid UTF-8 on decode is an error, not U+FFFD). */
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

/** The built-in codecs by name. */
export const codecs = { json, msgpack, raw, utf8 } as const

/** A codec name or a codec. */
export type CodecLike<T = unknown> = keyof typeof codecs | Codec<T>

/** Resolves a codec name (`'json'`, `'msgpack'`, `'raw'`, `'utf8'`) or returns the codec given. */
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
