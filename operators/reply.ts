/**
 * `reply(via, handler)`: answers the requests in a stream; passes everything else through.
 * @module
 */
import { Observable, Subscription, from, isObservable, take, type MonoTypeOperatorFunction, type ObservableInput } from 'rxjs'
import type { Channel } from '../src/channel.js'
import { isChannel, isRequest, type BusLike, type ReplyEnvelope, type RequestEnvelope } from '../src/rpc.js'
import { validateTopic } from '../src/bus/topics.js'

/**
 * What a {@link reply} handler may return: a value, a Promise, or an Observable (its first value is the reply).
 * @example
 * ```ts
 * const handler = (q: string): ReplyResult<string> => fetchAnswer(q) // a Promise<string>
 * ```
 */
export type ReplyResult<Res> = Res | PromiseLike<Res> | ObservableInput<Res>

/**
 * Answers every request (sent by {@link request}) in the stream it is applied to with
 * `handler(body)`, sent back through `via`; values that are not requests pass through unchanged,
 * so one stream can carry both. A handler that throws, rejects or errors sends an error reply
 * (the requester gets `ERR_REMOTE` with the error's message and `code`), and so does a result that
 * cannot be sent (not JSON-serialisable, too large). Requests are handled concurrently;
 * unsubscribing drops the ones in progress. Over a bus, a request whose `to` is not a valid topic
 * is ignored (nobody to answer): one bad requester never stops the replier.
 *
 * - Bus: apply it to `bus.messages$(topic)`; replies go to the request's `to` topic.
 * - Channel of values: apply it to `channel.source`; replies go out with `channel.send`.
 *
 * @example
 * ```ts
 * import { reply } from 'rxnet/operators'
 * bus.messages$('math.add').pipe(reply(bus, ({ a, b }: { a: number; b: number }) => a + b)).subscribe()
 * link.source.pipe(reply(link, async (q: string) => q.toUpperCase())).subscribe((other) => console.log('not a request:', other))
 * ```
 */
export function reply<Req, Res>(via: Channel<unknown, unknown> | BusLike, handler: (body: Req) => ReplyResult<Res>): MonoTypeOperatorFunction<unknown> {
  const channel = isChannel(via) ? via : null
  const send = (req: RequestEnvelope, res: ReplyEnvelope): void => {
    if (channel !== null) channel.send(res)
    else if (typeof req.to === 'string') (via as BusLike).emit(req.to, res)
  }
  return (source) =>
    new Observable<unknown>((subscriber) => {
      const inFlight = new Set<Subscription>()
      let upstreamDone = false
      const maybeComplete = (): void => {
        if (upstreamDone && inFlight.size === 0) subscriber.complete()
      }
      const fail = (req: RequestEnvelope, e: unknown): void => {
        const err = e as { message?: unknown; code?: unknown }
        const error = { message: String(err?.message ?? e), ...(typeof err?.code === 'string' ? { code: err.code } : {}) }
        try {
          send(req, { $rx: 'res', id: req.id, error })
        } catch (e2) {
          subscriber.error(e2) // not even an error reply goes out (closed bus / channel)
        }
      }
      const answer = (req: RequestEnvelope, res: ReplyEnvelope): void => {
        try {
          send(req, res)
        } catch (e) {
          fail(req, e) // the result could not be sent (unencodable, too large): tell the requester
        }
      }
      const answerable = (req: RequestEnvelope): boolean => {
        if (channel !== null) return true
        try {
          validateTopic(req.to as string)
          return true
        } catch {
          return false
        }
      }
      const upstream = source.subscribe({
        next: (value) => {
          if (!isRequest(value)) {
            subscriber.next(value)
            return
          }
          if (!answerable(value)) return // over a bus with no valid `to` topic: nobody to answer
          let result: ReplyResult<Res>
          try {
            result = handler(value.body as Req)
          } catch (e) {
            fail(value, e)
            return
          }
          const async = isObservable(result) || (typeof result === 'object' && result !== null && typeof (result as PromiseLike<Res>).then === 'function')
          if (!async) {
            answer(value, { $rx: 'res', id: value.id, body: result as Res })
            return
          }
          let replied = false
          const sub = new Subscription()
          inFlight.add(sub)
          const done = (): void => {
            inFlight.delete(sub)
            maybeComplete()
          }
          sub.add(
            from(result as ObservableInput<Res>)
              .pipe(take(1))
              .subscribe({
                next: (body) => {
                  replied = true
                  answer(value, { $rx: 'res', id: value.id, body })
                },
                error: (e) => {
                  fail(value, e)
                  done()
                },
                complete: () => {
                  if (!replied) fail(value, new Error('handler completed without a value'))
                  done()
                },
              }),
          )
        },
        error: (e) => subscriber.error(e),
        complete: () => {
          upstreamDone = true
          maybeComplete()
        },
      })
      return () => {
        upstream.unsubscribe()
        for (const s of inFlight) s.unsubscribe()
        inFlight.clear()
      }
    })
}
