/**
 * The Connection contract: what every connection of every rxnet transport is (a mesh `Peer`, a
 * cluster `Link`, a `socketChannel`, a duplex channel, a multicast channel, `bus.channel(topic)`).
 *
 * The rules, the same on every transport:
 * - `source` emits inbound messages; it **completes** only when the connection closed cleanly and
 *   **errors** with a typed {@link RxnetError} when it failed. Inbound messages are held (bounded)
 *   while nobody subscribes, on every connection-oriented transport.
 * - `send(x)` is `sink.next(x)` and **never throws**: a value the codec refuses fails the
 *   connection with `ERR_ENCODE`; a value sent after the connection ended is dropped and counted
 *   in `stats.dropped`; a full send buffer applies the overflow policy (`'error'` fails the
 *   connection with `ERR_BUFFER_OVERFLOW`).
 * - `sink.complete()` is `close()` (flush, then end); `sink.error(e)` is `abort(e)`: the connection
 *   fails with `ERR_ABORTED`, `cause: e`.
 * - `close({ signal, timeout })` ends gracefully and, if that does not finish in time (or `signal`
 *   aborts), aborts. `closed` never rejects: it resolves with `undefined` after a clean close and
 *   with the error that ended the connection otherwise (nats.js `closed()` style).
 * - Byte budgets are named `...Bytes` or `highWaterMark` (always bytes); message-count budgets
 *   are named `...Messages`.
 *
 * @example
 * ```ts
 * import net from 'node:net'
 * import { socketChannel } from 'rxnet'
 * await using ch = socketChannel(net.connect(9000, '127.0.0.1'))  // closed when the scope ends
 * ch.source.subscribe({ error: (e) => console.error(e.code) })
 * ch.send(new Uint8Array([1, 2, 3]))
 * if (!ch.writable) await ch.whenWritable({ signal: AbortSignal.timeout(1000) })
 * const how = await ch.closed                                   // undefined, or the error that ended it
 * ```
 * @module
 */
import type { Channel, ChannelStats } from './channel.js'
import type { RxnetError } from './errors.js'

/**
 * Default time `close()` waits for a graceful end before it aborts, ms.
 * @example
 * ```ts
 * await peer.close({ timeout: 2 * DEFAULT_CONNECTION_CLOSE_TIMEOUT })
 * ```
 */
export const DEFAULT_CONNECTION_CLOSE_TIMEOUT = 1_000

/**
 * Options of {@link Connection.close}.
 * @example
 * ```ts
 * await link.close({ timeout: 500 })                         // graceful for 500 ms, then abort
 * await link.close({ signal: AbortSignal.timeout(500) })     // the same, with a signal
 * ```
 */
export interface CloseOptions {
  /** Aborts the connection (instead of waiting for the graceful end) when it fires. */
  signal?: AbortSignal
  /** Longest wait for the graceful end before aborting, ms. @default 1000 ({@link DEFAULT_CONNECTION_CLOSE_TIMEOUT}) */
  timeout?: number
}

/**
 * Options of {@link Connection.whenWritable}.
 * @example
 * ```ts
 * await ch.whenWritable({ signal: AbortSignal.timeout(1000) })
 * ```
 */
export interface WaitOptions {
  /** Stops waiting with `ERR_ABORTED` when it fires (the connection itself is left alone). */
  signal?: AbortSignal
}

/**
 * Counters every connection keeps, live.
 * @example
 * ```ts
 * setInterval(() => console.log(`${peer.stats.messagesIn} in, ${peer.stats.dropped} dropped`), 1000).unref()
 * ```
 */
export interface ConnectionStats extends ChannelStats {
  /**
   * Inbound messages discarded: held while nobody subscribed beyond `maxHeldMessages`, or
   * arriving unobserved after `close()` (read and dropped so the far side's end can be seen).
   */
  droppedIn: number
}

/**
 * One connection of any transport: a {@link Channel} with counters, write readiness, graceful
 * close-then-abort, and a promise that tells how it ended.
 * @typeParam In - what `source` emits.
 * @typeParam Out - what `sink` / `send` accept.
 *
 * @example
 * ```ts
 * import type { Connection } from 'rxnet'
 * async function pump(conn: Connection<Uint8Array>, chunks: Uint8Array[]): Promise<void> {
 *   for (const c of chunks) {
 *     conn.send(c)
 *     if (!conn.writable) await conn.whenWritable()
 *   }
 *   await conn.close()
 *   const error = await conn.closed
 *   if (error !== undefined) console.error('ended with', error.code)
 * }
 * ```
 */
export interface Connection<In, Out = In> extends Channel<In, Out> {
  /** Live counters. */
  readonly stats: ConnectionStats
  /** True while the connection is open and its send buffer is under half its high-water mark. */
  readonly writable: boolean
  /**
   * Resolves once `writable` is true; rejects with `ERR_CLOSED` if the connection ends first and
   * with `ERR_ABORTED` if `signal` fires first.
   */
  whenWritable(options?: WaitOptions): Promise<void>
  /**
   * Flushes what was sent and ends gracefully; aborts when that takes longer than `timeout` or
   * `signal` fires. Resolves when the connection has ended, however it ended (idempotent).
   */
  close(options?: CloseOptions): Promise<void>
  /** Ends the connection now: `source` errors with `ERR_ABORTED` (`cause: err`), queued output is dropped and counted. */
  abort(err?: unknown): void
  /** Settles when the connection has ended: `undefined` after a clean close, else the error that ended it. Never rejects. */
  readonly closed: Promise<RxnetError | undefined>
  /** `close()`, for `await using`. */
  [Symbol.asyncDispose](): Promise<void>
}
