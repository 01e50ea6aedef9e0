/**
 * A codec over a {@link Connection}, keeping the contract: {@link mapConnection} re-types a
 * connection through a decode / encode pair, the way a transport puts its codec on top of a
 * `socketChannel` (so a mesh peer or a bus topic channel is a thin layer, not a second state
 * machine). Everything else — held messages, waiters, close-then-abort, `closed` — is the
 * underlying connection's.
 * @module
 */
import { catchError, Observable, throwError, type Observer } from 'rxjs'
import type { CloseOptions, Connection, ConnectionStats, WaitOptions } from './connection.js'
import { DecodeError, EncodeError, RxnetError } from './errors.js'

/**
 * Options of {@link mapConnection}.
 * @example
 * ```ts
 * const options: MapConnectionOptions = { codec: 'json' }
 * ```
 */
export interface MapConnectionOptions {
  /** Names the codec in `ERR_ENCODE` / `ERR_DECODE` messages. @default 'custom' */
  codec?: string
}

/**
 * Re-types `conn` through `decode` (inbound) and `encode` (outbound). A value `encode` throws on
 * fails the connection with `ERR_ENCODE` (`cause`: what it threw) — `send` never throws; an
 * inbound message `decode` throws on fails it with `ERR_DECODE`. In both cases `source` errors
 * and `closed` resolves with that error (the underlying connection is aborted with it as cause).
 *
 * @example
 * ```ts
 * import net from 'node:net'
 * import { codecs, mapConnection, socketChannel } from 'rxnet'
 * const json = mapConnection(socketChannel(net.connect(9000, '127.0.0.1')), codecs.json.decode, codecs.json.encode, { codec: 'json' })
 * json.source.subscribe((v) => console.log(v))
 * json.send({ hello: 'world' })
 * await json.close()
 * ```
 */
export function mapConnection<In, Out, In2, Out2>(
  conn: Connection<In, Out>,
  decode: (value: In) => In2,
  encode: (value: Out2) => Out,
  options: MapConnectionOptions = {},
): Connection<In2, Out2> {
  return new MappedConnection(conn, decode, encode, options.codec ?? 'custom')
}

class MappedConnection<In, Out, In2, Out2> implements Connection<In2, Out2> {
  readonly source: Observable<In2>
  readonly sink: Observer<Out2>
  readonly closed: Promise<RxnetError | undefined>
  /** The error this layer failed the connection with (ERR_ENCODE / ERR_DECODE). */
  private failure: RxnetError | undefined

  constructor(
    private readonly conn: Connection<In, Out>,
    private readonly decode: (value: In) => In2,
    private readonly encode: (value: Out2) => Out,
    private readonly codec: string,
  ) {
    const raw = conn.source.pipe(catchError((e: unknown) => throwError(() => this.failure ?? e)))
    this.source = new Observable<In2>((subscriber) =>
      raw.subscribe({
        next: (v) => {
          let mapped: In2
          try {
            mapped = this.decode(v)
          } catch (e) {
            this.fail(e instanceof DecodeError ? e : new DecodeError(this.codec, e))
            return
          }
          subscriber.next(mapped)
        },
        error: (e) => subscriber.error(e),
        complete: () => subscriber.complete(),
      }),
    )
    this.sink = { next: (v) => this.send(v), error: (e) => this.abort(e), complete: () => void this.close() }
    this.closed = conn.closed.then((how) => this.failure ?? how)
  }

  get stats(): ConnectionStats {
    return this.conn.stats
  }

  get writable(): boolean {
    return this.conn.writable
  }

  send(value: Out2): void {
    let mapped: Out
    try {
      mapped = this.encode(value)
    } catch (e) {
      this.fail(e instanceof EncodeError ? e : new EncodeError(this.codec, e))
      return
    }
    this.conn.send(mapped)
  }

  whenWritable(options?: WaitOptions): Promise<void> {
    return this.conn.whenWritable(options)
  }

  close(options?: CloseOptions): Promise<void> {
    return this.conn.close(options)
  }

  abort(err?: unknown): void {
    this.conn.abort(err)
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  private fail(error: RxnetError): void {
    if (this.failure !== undefined) return
    this.failure = error
    this.conn.abort(error)
  }
}
