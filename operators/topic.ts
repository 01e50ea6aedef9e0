/**
 * `topic(pattern)`: keeps the messages whose `topic` matches a NATS-style pattern.
 * @module
 */
import { Observable, type MonoTypeOperatorFunction } from 'rxjs'
import { compileTopic } from '../src/bus/topics.js'

/**
 * Keeps the values whose `topic` matches `pattern`: `*` matches exactly one token, a final `>`
 * one or more (`log.*` matches `log.error`; `log.>` also matches `log.error.disk`). The same
 * matcher the bus hub uses. An invalid pattern errors the stream with `ERR_INVALID_ARGUMENT`
 * on subscribe.
 *
 * @example
 * ```ts
 * import { topic } from 'rxnet/operators'
 * bus.envelopes$('log.>').pipe(topic('log.*.disk')).subscribe((m) => console.log(m.topic, m.data))
 * ```
 */
export function topic<T extends { readonly topic: string }>(pattern: string): MonoTypeOperatorFunction<T> {
  return (source) =>
    new Observable<T>((subscriber) => {
      let matcher
      try {
        matcher = compileTopic(pattern)
      } catch (e) {
        subscriber.error(e)
        return
      }
      const m = matcher
      return source.subscribe({
        next: (value) => {
          if (typeof value?.topic === 'string' && m.matches(value.topic)) subscriber.next(value)
        },
        error: (e) => subscriber.error(e),
        complete: () => subscriber.complete(),
      })
    })
}
