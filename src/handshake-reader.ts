/**
 * Reading a handshake off a fresh socket, written once (the mesh and cluster links each had
 * their own): read one handshake message with a deadline and a size limit checked before
 * buffering, then stop reading and put back every byte that followed it, so the framed channel
 * built on the socket next sees them first.
 *
 * The message format is a small pure decoder ({@link HandshakeDecoder}): the default is one
 * length-prefixed frame (the it-length-prefixed wire format, {@link frameHandshake});
 * {@link lineHandshake} reads one `'\n'`-terminated line; a transport with its own format passes
 * its own decoder.
 * @module
 */
import type { Duplex } from 'node:stream'
import { HandshakeError, type RxnetError, TimeoutError } from './errors.js'
import { VarintReader } from './framing/varint.js'
import { deadline } from './wait.js'

/**
 * A pure, incremental handshake decoder: `push` returns the message and the bytes after it once
 * complete (null while more is needed) and throws a typed error on bad input; `end` is called
 * if the stream ends first and throws.
 * @example
 * ```ts
 * const decoder: HandshakeDecoder<Uint8Array> = frameHandshake(1024)
 * ```
 */
export interface HandshakeDecoder<T> {
  push(chunk: Uint8Array): { message: T; rest: Uint8Array } | null
  end(): void
}

/**
 * Options of {@link readHandshake}.
 * @example
 * ```ts
 * const options: ReadHandshakeOptions<Uint8Array> = { timeout: 5000, maxBytes: 1024 }
 * ```
 */
export interface ReadHandshakeOptions<T> {
  /** Longest wait for the whole message, ms (`ERR_HANDSHAKE`, `cause`: `ERR_TIMEOUT`). */
  timeout: number
  /** Largest message accepted, bytes, checked on the declared length (default decoder only). @default 4096 ({@link DEFAULT_MAX_HANDSHAKE_BYTES}) */
  maxBytes?: number
  /** Stops waiting with `ERR_ABORTED` when it fires. */
  signal?: AbortSignal
  /** The message format. @default frameHandshake(maxBytes) */
  decoder?: HandshakeDecoder<T>
  /** Builds the error a deadline miss rejects with. @default ERR_HANDSHAKE (`cause`: ERR_TIMEOUT) */
  onTimeout?: () => RxnetError
  /** Builds the error for a socket that failed or closed before the message was complete. @default ERR_HANDSHAKE */
  lost?: (message: string, cause?: unknown) => RxnetError
}

/**
 * Default largest handshake, bytes.
 * @example
 * ```ts
 * await readHandshake(socket, { timeout: 5000, maxBytes: 2 * DEFAULT_MAX_HANDSHAKE_BYTES })
 * ```
 */
export const DEFAULT_MAX_HANDSHAKE_BYTES = 4096

/**
 * Reads one handshake message from `socket`. Malformed, oversized or truncated input rejects with
 * the decoder's error (`ERR_HANDSHAKE` for the built-in ones), a deadline miss with
 * `ERR_HANDSHAKE` (`cause`: `ERR_TIMEOUT`), a socket that fails or closes first with
 * `lost(...)`. However it ends, the socket is left paused with no listener of ours; on success
 * the bytes after the message are unshifted back onto it.
 *
 * @example
 * ```ts
 * import net from 'node:net'
 * import { readHandshake, socketChannel } from 'rxnet'
 * net.createServer(async (socket) => {
 *   const hello = await readHandshake(socket, { timeout: 5000, maxBytes: 512 }) // one length-prefixed frame
 *   console.log(new TextDecoder().decode(hello))
 *   const ch = socketChannel(socket)  // sees what followed the handshake first
 * })
 * ```
 */
export function readHandshake<T = Uint8Array>(socket: Duplex, options: ReadHandshakeOptions<T>): Promise<T> {
  const { timeout } = options
  const decoder = options.decoder ?? (frameHandshake(options.maxBytes ?? DEFAULT_MAX_HANDSHAKE_BYTES) as unknown as HandshakeDecoder<T>)
  const lost = options.lost ?? ((message: string, cause?: unknown) => new HandshakeError(message, cause))
  return deadline<T>(
    ({ resolve, reject }) => {
      const onData = (chunk: Buffer): void => {
        let r: { message: T; rest: Uint8Array } | null
        try {
          r = decoder.push(chunk)
        } catch (e) {
          return reject(e)
        }
        if (r === null) return
        done()
        if (r.rest.length > 0) socket.unshift(r.rest)
        resolve(r.message)
      }
      const onEnd = (): void => {
        try {
          decoder.end()
          reject(new HandshakeError('connection ended during the handshake'))
        } catch (e) {
          reject(e)
        }
      }
      const onError = (e: Error): void => reject(lost(`connection failed during the handshake: ${e.message}`, e))
      const onClose = (): void => reject(lost('connection closed during the handshake'))
      const done = (): void => {
        socket.off('data', onData)
        socket.off('end', onEnd)
        socket.off('error', onError)
        socket.off('close', onClose)
        socket.pause()
      }
      socket.on('data', onData)
      socket.on('end', onEnd)
      socket.on('error', onError)
      socket.on('close', onClose)
      return done
    },
    { timeout, signal: options.signal, onTimeout: options.onTimeout ?? (() => new HandshakeError(`no handshake within ${timeout} ms`, new TimeoutError('handshake', timeout))) },
  )
}

/**
 * The default {@link HandshakeDecoder}: one unsigned-varint length-prefixed frame whose declared
 * length is checked against `maxBytes` before anything is buffered.
 *
 * @example
 * ```ts
 * const hello = await readHandshake(socket, { timeout: 5000, decoder: frameHandshake(256) })
 * ```
 */
export function frameHandshake(maxBytes: number): HandshakeDecoder<Uint8Array> {
  const header = new VarintReader()
  let body: Buffer | null = null
  let filled = 0
  return {
    push(chunk) {
      let o = 0
      while (body === null) {
        if (o >= chunk.length) return null
        const n = header.push(chunk[o++]!)
        if (n < 0) continue
        if (n > maxBytes) throw new HandshakeError(`handshake of ${n} bytes exceeds ${maxBytes}`)
        body = Buffer.allocUnsafe(n)
      }
      const take = Math.min(body.length - filled, chunk.length - o)
      body.set(chunk.subarray(o, o + take), filled)
      filled += take
      if (filled < body.length) return null
      return { message: body, rest: chunk.subarray(o + take) }
    },
    end() {
      throw new HandshakeError(body === null && !header.pending ? 'connection ended before the handshake' : 'handshake truncated')
    },
  }
}

/**
 * A {@link HandshakeDecoder} of one `'\n'`-terminated UTF-8 line (without the newline), at most
 * `maxBytes` long.
 *
 * @example
 * ```ts
 * const line = await readHandshake(socket, { timeout: 5000, decoder: lineHandshake(4096) })
 * const hello = JSON.parse(line)
 * ```
 */
export function lineHandshake(maxBytes: number): HandshakeDecoder<string> {
  let buf: Buffer = Buffer.alloc(0)
  return {
    push(chunk) {
      const start = buf.length
      buf = start === 0 ? Buffer.from(chunk) : Buffer.concat([buf, chunk])
      const nl = buf.indexOf(0x0a, start)
      if (nl < 0 ? buf.length > maxBytes : nl > maxBytes) throw new HandshakeError(`handshake line longer than ${maxBytes} bytes`)
      if (nl < 0) return null
      return { message: buf.subarray(0, nl).toString('utf8'), rest: buf.subarray(nl + 1) }
    },
    end() {
      throw new HandshakeError(buf.length === 0 ? 'connection ended before the handshake' : 'handshake line truncated')
    },
  }
}
