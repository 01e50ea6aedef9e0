/**
 * Interop with async iterables: a {@link Channel} becomes an it-pipe Duplex
 * (`{ source: AsyncIterable, sink(source): Promise<void> }`) and back, so rxnet composes with
 * it-pipe, it-length-prefixed and libp2p streams.
 *
 * - {@link toDuplex}: Channel → Duplex. `source` buffers what the channel emits (bounded, with an
 *   overflow policy); `sink` sends, waiting on `whenWritable()` when the channel has one.
 * - {@link fromDuplex}: Duplex → Channel of the values as they are. Pull-based: the duplex source
 *   is only read while `source` has subscribers, so an unobserved channel pushes back.
 * - {@link fromByteDuplex}: a byte-stream Duplex (`Uint8Array` / `Uint8ArrayList` chunks, e.g. a
 *   libp2p stream) → framed `Channel<Uint8Array>` on the it-length-prefixed wire format.
 * @module
 */
import type { Observable, Subscription } from 'rxjs'
import { holdsWhileUnobserved, type Channel } from './channel.js'
import { checkDuplexOptions, type Duplex, type DuplexOptions } from './duplex.js'
import { BufferOverflowError } from './errors.js'
import { BoundedQueue } from './queue.js'

export {
  type Duplex,
  type DuplexOptions,
  type DuplexChannelOptions,
  type ByteDuplexOptions,
  type DuplexChannel,
  DEFAULT_DUPLEX_HIGH_WATER_MARK,
  DEFAULT_DUPLEX_HIGH_WATER_MARK_MESSAGES,
  fromDuplex,
  fromByteDuplex,
} from './duplex.js'

/**
 * The Duplex {@link toDuplex} returns: its `source` is always async.
 *
 * @example
 * ```ts
 * import { toDuplex, type ChannelDuplex } from 'rxnet'
 * declare const duplex: ChannelDuplex<Uint8Array>
 * for await (const message of duplex.source) console.log(message.length)
 * ```
 */
export interface ChannelDuplex<In, Out = In> extends Duplex<In, Out> {
  /** The channel's messages, buffered up to `highWaterMarkMessages`. */
  source: AsyncIterable<In>
}

/** What {@link toDuplex} can use from a channel beyond the {@link Channel} shape. */
type MaybeWritable = { readonly writable?: boolean; whenWritable?: () => Promise<void> }

const one = (): number => 1

/**
 * Turns a {@link Channel} into an it-pipe Duplex.
 *
 * Each iteration of `source` subscribes to `channel.source` and buffers up to `highWaterMarkMessages`
 * messages for the consumer; breaking out of the loop unsubscribes. When the buffer is full:
 * for channels that hold messages while unobserved (`socketChannel`, {@link fromDuplex},
 * {@link fromByteDuplex}) the iterator unsubscribes until the consumer has taken half of it, so
 * the far side is pushed back and nothing is lost; for other channels `overflow` applies
 * (`'error'` throws `ERR_BUFFER_OVERFLOW` from the iterator, the drop policies count). `sink(iterable)` sends every value,
 * awaiting `channel.whenWritable()` whenever the channel reports `writable === false`, then
 * completes the channel; if the iterable throws, the channel is aborted with that error.
 *
 * @example
 * ```ts
 * import net from 'node:net'
 * import { pipe } from 'it-pipe'
 * import { socketChannel, toDuplex } from 'rxnet'
 * const duplex = toDuplex(socketChannel(net.connect(9000, '127.0.0.1')))
 * await pipe([new Uint8Array([1, 2, 3])], duplex, async (replies) => {
 *   for await (const reply of replies) console.log(reply)
 * })
 * ```
 */
export function toDuplex<In, Out = In>(channel: Channel<In, Out>, options: DuplexOptions = {}): ChannelDuplex<In, Out> {
  const { highWaterMarkMessages: highWaterMark, overflow } = checkDuplexOptions('toDuplex', options)
  const ch = channel as Channel<In, Out> & MaybeWritable
  return {
    source: {
      [Symbol.asyncIterator]: () =>
        holdsWhileUnobserved(channel)
          ? iterate(channel.source, new BoundedQueue<In>(Number.POSITIVE_INFINITY, overflow, one), highWaterMark)
          : iterate(channel.source, new BoundedQueue<In>(highWaterMark, overflow, one, 'duplex source buffer'), 0),
    },
    async sink(source) {
      try {
        for await (const value of source) {
          if (ch.writable === false && typeof ch.whenWritable === 'function') await ch.whenWritable()
          ch.send(value)
        }
      } catch (e) {
        ch.sink.error(e)
        throw e
      }
      ch.sink.complete()
    },
  }
}

/**
 * An async iterator over a hot Observable, buffering in `queue`. With `pauseAt > 0` it
 * unsubscribes once `pauseAt` values wait and subscribes again when half were taken (for sources
 * that hold messages while unobserved).
 */
function iterate<T>(source: Observable<T>, queue: BoundedQueue<T>, pauseAt: number): AsyncIterator<T> {
  let done = false
  let failure: { error: unknown } | null = null
  let wake: (() => void) | null = null
  let subscription: Subscription | null = null
  let paused = false
  let subscribing = false
  const notify = (): void => {
    const w = wake
    wake = null
    w?.()
  }
  const stop = (): void => {
    subscription?.unsubscribe()
    subscription = null
  }
  const observer = {
    next(value: T) {
      try {
        queue.push(value)
      } catch (e) {
        failure = { error: e }
        queueMicrotask(stop)
      }
      if (pauseAt > 0 && !paused && queue.length >= pauseAt) {
        paused = true
        if (!subscribing) stop() // else: right after subscribe() returns
      }
      notify()
    },
    error(e: unknown) {
      failure = { error: e }
      notify()
    },
    complete() {
      done = true
      notify()
    },
  }
  const start = (): void => {
    subscribing = true
    subscription = source.subscribe(observer)
    subscribing = false
    if (done || failure !== null || paused) stop()
  }
  start()
  return {
    async next(): Promise<IteratorResult<T>> {
      for (;;) {
        // Under 'error', the overflow is reported at once; otherwise buffered values come first.
        if (failure !== null && (queue.length === 0 || failure.error instanceof BufferOverflowError)) {
          queue.clear()
          stop()
          throw failure.error
        }
        if (queue.length > 0) {
          const value = queue.shift() as T
          if (paused && !done && failure === null && queue.length <= pauseAt >> 1) {
            paused = false
            start()
          }
          return { value, done: false }
        }
        if (done) return { value: undefined, done: true }
        await new Promise<void>((resolve) => (wake = resolve))
      }
    },
    async return(): Promise<IteratorResult<T>> {
      done = true
      stop()
      queue.clear()
      notify()
      return { value: undefined, done: true }
    },
  }
}
