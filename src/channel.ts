/**
 * The one shape every rxnet transport speaks.
 *
 * A {@link Channel} is a connection seen as RxJS: `source` is an Observable of inbound messages,
 * `sink` an Observer of outbound ones. `send(x)` is `sink.next(x)`; `sink.complete()` closes
 * gracefully after flushing what was sent; `sink.error(e)` aborts. `source` completes when the far
 * side closes cleanly and errors with a typed {@link RxnetError} when the link fails. Transports
 * differ only in how a Channel is born: dialled, accepted, forked or joined.
 *
 * @example
 * ```ts
 * import net from 'node:net'
 * import { socketChannel } from 'rxnet'
 *
 * const server = net.createServer((socket) => {
 *   const ch = socketChannel(socket)                 // framed messages over the byte stream
 *   ch.source.subscribe((msg) => ch.send(msg))       // echo every message back
 * }).listen(0, '127.0.0.1', () => {
 *   const { port } = server.address() as net.AddressInfo
 *   const ch = socketChannel(net.connect(port, '127.0.0.1'))
 *   ch.source.subscribe((msg) => { console.log(new TextDecoder().decode(msg)); ch.sink.complete(); server.close() })
 *   ch.send(new TextEncoder().encode('hello'))
 * })
 * ```
 * @module
 */
import { Observable, type Observer } from 'rxjs'
import type { RxnetError } from './errors.js'
import type { Waiters } from './wait.js'

/**
 * A bidirectional message connection: `source` in, `sink` out.
 * @typeParam In - what `source` emits.
 * @typeParam Out - what `sink` / `send` accept.
 *
 * @example
 * ```ts
 * import { interval, map, take } from 'rxjs'
 * import type { Channel } from 'rxnet'
 * function ticker(ch: Channel<Uint8Array>): void {
 *   ch.source.subscribe({ next: (m) => console.log(m.length), complete: () => console.log('closed') })
 *   interval(100).pipe(take(3), map((i) => new Uint8Array([i]))).subscribe(ch.sink) // completes the channel after 3
 * }
 * ```
 */
export interface Channel<In, Out = In> {
  /** Inbound messages. Completes on clean close; errors with an {@link RxnetError} on failure. */
  readonly source: Observable<In>
  /** Outbound messages. `complete()` flushes then closes; `error(e)` aborts. */
  readonly sink: Observer<Out>
  /** Shorthand for `sink.next(value)`. */
  send(value: Out): void
}

/**
 * Counters every buffered channel keeps, live (read them at any time).
 *
 * @example
 * ```ts
 * import net from 'node:net'
 * import { socketChannel } from 'rxnet'
 * const ch = socketChannel(net.connect(9000, '127.0.0.1'), { overflow: 'drop-oldest' })
 * setInterval(() => console.log(`out ${ch.stats.messagesOut}, dropped ${ch.stats.dropped}, buffered ${ch.stats.bufferedBytes} B`), 1000).unref()
 * ```
 */
export interface ChannelStats {
  /** Messages delivered to `source`. */
  messagesIn: number
  /** Payload bytes delivered to `source`. */
  bytesIn: number
  /** Messages handed to the wire. */
  messagesOut: number
  /** Payload bytes handed to the wire. */
  bytesOut: number
  /** Outbound messages discarded by the overflow policy, sent after close, or still queued when the connection closed. */
  readonly dropped: number
  /** Times the send buffer was full when a message arrived. */
  readonly overflows: number
  /** Bytes waiting in the send buffer right now (ours plus the socket's). */
  readonly bufferedBytes: number
}

/**
 * Builds a {@link Channel} from an Observable and an Observer (adds `send`).
 *
 * @example
 * ```ts
 * import { Subject } from 'rxjs'
 * import { createChannel } from 'rxnet'
 * const wire = new Subject<string>()
 * const loopback = createChannel(wire.asObservable(), wire) // what is sent comes back
 * loopback.source.subscribe((s) => console.log(s))
 * loopback.send('hello')
 * ```
 */
export function createChannel<In, Out = In>(source: Observable<In>, sink: Observer<Out>): Channel<In, Out> {
  return { source, sink, send: (value: Out) => sink.next(value) }
}

/**
 * Re-types a Channel through a pair of mapping functions (decode inbound, encode outbound).
 * A throwing `mapIn` errors that subscription of `source` with what it threw; a throwing `mapOut`
 * aborts the channel (`sink.error(e)`, so a socket channel errors with `ERR_ABORTED`, `cause: e`).
 *
 * @example
 * ```ts
 * import net from 'node:net'
 * import { codecs, mapChannel, socketChannel } from 'rxnet'
 * const bytes = socketChannel(net.connect(9000, '127.0.0.1'))
 * const text = mapChannel(bytes, codecs.utf8.decode, codecs.utf8.encode) // Channel<string>
 * text.send('hello')
 * ```
 */
export function mapChannel<In, Out, In2, Out2>(
  channel: Channel<In, Out>,
  mapIn: (value: In) => In2,
  mapOut: (value: Out2) => Out,
): Channel<In2, Out2> {
  const source = new Observable<In2>((subscriber) =>
    channel.source.subscribe({
      next: (v) => {
        let mapped: In2
        try {
          mapped = mapIn(v)
        } catch (e) {
          subscriber.error(e)
          return
        }
        subscriber.next(mapped)
      },
      error: (e) => subscriber.error(e),
      complete: () => subscriber.complete(),
    }),
  )
  const sink: Observer<Out2> = {
    next: (v) => {
      let mapped: Out
      try {
        mapped = mapOut(v)
      } catch (e) {
        channel.sink.error(e) // an Observer must not throw: abort the channel, `e` as the cause
        return
      }
      channel.sink.next(mapped)
    },
    error: (e) => channel.sink.error(e),
    complete: () => channel.sink.complete(),
  }
  return createChannel(source, sink)
}

export type { RxnetError }

/**
 * @internal Marks channels whose `source` holds messages while nobody subscribes (socketChannel,
 * the interop channels), so a consumer may unsubscribe to push back without losing anything.
 */
export const HOLDS_WHILE_UNOBSERVED: unique symbol = Symbol('rxnet.holdsWhileUnobserved')

/** @internal True when `channel` is marked with {@link HOLDS_WHILE_UNOBSERVED}. */
export function holdsWhileUnobserved(channel: object): boolean {
  return (channel as { [HOLDS_WHILE_UNOBSERVED]?: boolean })[HOLDS_WHILE_UNOBSERVED] === true
}
