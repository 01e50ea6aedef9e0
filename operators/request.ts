/**
 * `request(via)`: each upstream value becomes a request; emits the replies.
 * @module
 */
import { randomBytes } from 'node:crypto'
import { Observable, type OperatorFunction } from 'rxjs'
import type { Channel } from '../src/channel.js'
import { ClosedError, InvalidArgumentError, RemoteError, TimeoutError } from '../src/errors.js'
import { isChannel, isReply, type BusLike, type RequestEnvelope } from '../src/rpc.js'
import { validateTopic } from '../src/bus/topics.js'

/**
 * Default time a request waits for its reply, ms.
 * @example
 * ```ts
 * of(1).pipe(request(link, { timeout: 2 * DEFAULT_REQUEST_TIMEOUT }))
 * ```
 */
export const DEFAULT_REQUEST_TIMEOUT = 5_000

/**
 * Options of {@link request}.
 * @example
 * ```ts
 * const options: RequestOptions = { timeout: 1000 }
 * of(1).pipe(request(bus, 'math.double', options))
 * ```
 */
export interface RequestOptions {
  /** Time each request waits for its reply before the stream errors with `ERR_TIMEOUT`, ms. @default 5000 ({@link DEFAULT_REQUEST_TIMEOUT}) */
  timeout?: number
}

/**
 * Sends each upstream value as a request and emits the replies, as they arrive (several
 * requests may be in flight). The stream completes once upstream has completed and every reply
 * is in; it errors with `ERR_TIMEOUT` when a reply is late, with `ERR_REMOTE` ({@link RemoteError})
 * when the far side's handler failed, and with `ERR_CLOSED` when the bus / channel closes while
 * replies are still due. Unsubscribing forgets the pending requests.
 *
 * - Over a bus: `request(bus, 'math.add')` emits `{ $rx: 'req', id, body, to }` on the topic and
 *   listens on a private `_inbox.*` topic for the first reply to each request (several repliers
 *   may answer; the rest are ignored). A client never receives its own messages, so answer from
 *   another client.
 * - Over a Channel that carries values (a cluster link, a decoded mesh peer): sends the request
 *   with `send` and picks the replies out of `source`.
 *
 * The far side answers with {@link reply}.
 *
 * @example
 * ```ts
 * import { of } from 'rxjs'
 * import { request } from 'rxnet/operators'
 * of({ a: 1, b: 2 }).pipe(request<{ a: number; b: number }, number>(bus, 'math.add')).subscribe((sum) => console.log(sum)) // 3
 * of('ping').pipe(request(link, { timeout: 1000 })).subscribe(console.log)
 * ```
 */
export function request<Req, Res>(channel: Channel<unknown, unknown>, options?: RequestOptions): OperatorFunction<Req, Res>
export function request<Req, Res>(bus: BusLike, topic: string, options?: RequestOptions): OperatorFunction<Req, Res>
export function request<Req, Res>(via: Channel<unknown, unknown> | BusLike, topicOrOptions?: string | RequestOptions, maybeOptions?: RequestOptions): OperatorFunction<Req, Res> {
  const channel = isChannel(via) ? via : null
  const topic = channel === null ? (topicOrOptions as string) : undefined
  const options = (channel === null ? maybeOptions : (topicOrOptions as RequestOptions | undefined)) ?? {}
  const timeout = options.timeout ?? DEFAULT_REQUEST_TIMEOUT
  if (!Number.isFinite(timeout) || timeout <= 0) throw new InvalidArgumentError(`timeout must be a positive number, got ${timeout}`)
  if (channel === null) {
    if (typeof topic !== 'string') throw new InvalidArgumentError('request(bus, topic) needs a topic')
    validateTopic(topic)
  }
  return (source) =>
    new Observable<Res>((subscriber) => {
      const prefix = randomBytes(6).toString('hex')
      const inbox = `_inbox.${prefix}`
      const pending = new Map<string, NodeJS.Timeout>()
      let next = 0
      let upstreamDone = false
      const maybeComplete = (): void => {
        if (upstreamDone && pending.size === 0) subscriber.complete()
      }
      const replies$ = channel !== null ? channel.source : (via as BusLike).messages$(inbox)
      const replies = replies$.subscribe({
        next: (m) => {
          if (!isReply(m)) return
          const timer = pending.get(m.id)
          if (timer === undefined) return
          clearTimeout(timer)
          pending.delete(m.id)
          if (m.error !== undefined) subscriber.error(remoteError(m.error))
          else {
            subscriber.next(m.body as Res)
            maybeComplete()
          }
        },
        error: (e) => subscriber.error(e),
        // Replies can no longer arrive: a local close (ERR_CLOSED), not a failure of the far side's handler.
        complete: () => (pending.size > 0 || !upstreamDone ? subscriber.error(new ClosedError('the channel the replies come on')) : subscriber.complete()),
      })
      const upstream = source.subscribe({
        next: (body) => {
          const id = `${prefix}.${++next}`
          pending.set(
            id,
            setTimeout(() => subscriber.error(new TimeoutError(`request ${id}`, timeout)), timeout),
          )
          const envelope: RequestEnvelope = channel !== null ? { $rx: 'req', id, body } : { $rx: 'req', id, body, to: inbox }
          try {
            if (channel !== null) channel.send(envelope)
            else (via as BusLike).emit(topic!, envelope)
          } catch (e) {
            subscriber.error(e)
          }
        },
        error: (e) => subscriber.error(e),
        complete: () => {
          upstreamDone = true
          maybeComplete()
        },
      })
      return () => {
        for (const t of pending.values()) clearTimeout(t)
        pending.clear()
        upstream.unsubscribe()
        replies.unsubscribe()
      }
    })
}

/** The RemoteError for a reply's `error`, whatever the far side put there (it is untrusted input). */
function remoteError(error: unknown): RemoteError {
  const e = typeof error === 'object' && error !== null ? (error as { message?: unknown; code?: unknown }) : {}
  return new RemoteError(typeof e.message === 'string' ? e.message : 'the remote handler failed', typeof e.code === 'string' ? e.code : undefined)
}
